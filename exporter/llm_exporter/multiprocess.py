"""Multi-process servers (gunicorn, uvicorn workers) via prometheus-client's files.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory *before* the app
(or anything) imports prometheus-client, in every worker. Each worker writes its
values to files there; ``/metrics`` (``llm_exporter.exposition``) aggregates them
with ``FastMultiProcessCollector`` (below: ``MultiProcessCollector``'s samples, with
parsed keys, file layouts and label text cached across scrapes). Counters and histograms are summed;
``llm_in_flight_requests`` uses ``livesum`` (only live workers count).

When a worker exits, call ``mark_process_dead(pid)`` so its live gauges
disappear, e.g. in ``gunicorn.conf.py``::

    from llm_exporter import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)
"""

from __future__ import annotations

import glob
import json
import mmap
import os
import struct
import weakref
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as _mp
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from . import locks
from .store import escape_label_value, fmt, rendered_already

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def directory() -> str | None:
    """The multiprocess directory, or None when not in multiprocess mode."""
    return os.environ.get(ENV_VAR) or os.environ.get("prometheus_multiproc_dir") or None


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Drop the live-gauge files of a dead worker (``pid``). No-op outside multiprocess mode."""
    path = path or directory()
    if path is None:
        return
    _mp.mark_process_dead(pid, path)


_registries: dict[str, CollectorRegistry] = {}
_registries_lock = locks.new_lock()
#: registry -> the FastMultiProcessCollector registered in it (``fast_collector``)
_fast_by_registry: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def collecting_registry(path: str | None = None) -> CollectorRegistry:
    """A registry that aggregates every process's values from the directory.

    One per directory, kept across scrapes: its ``FastMultiProcessCollector``
    caches parsed keys and file layouts between them.
    """
    path = path or directory()
    if not path or not os.path.isdir(path):
        raise ValueError(f"{ENV_VAR} is not set or not a directory")
    with _registries_lock:
        registry = _registries.get(path)
        if registry is None:
            registry = _registries[path] = CollectorRegistry()
            FastMultiProcessCollector(path, registry)
        return registry


def fast_collector(registry: Any) -> FastMultiProcessCollector | None:
    """The ``FastMultiProcessCollector`` registered in ``registry``, if any."""
    if not isinstance(registry, CollectorRegistry):
        return None
    return _fast_by_registry.get(registry)


# --- the collector ------------------------------------------------------------------
#
# Same samples as prometheus-client's MultiProcessCollector, faster on repeated scrapes:
# worker files are append-only, so each file's layout (where each value sits, which
# output series it feeds) is parsed once and extended when the file grows; a scrape
# then unpacks all of a file's values with one precompiled struct and merges them by
# series index. Text is rendered with each series' label text built once.
# (Deviation only in pathological cases: a gauge whose files disagree on the
# multiprocess mode is merged per file's mode; MultiProcessCollector uses the last.)

_INT = struct.Struct("i").unpack_from
_SUM, _MIN, _MAX, _LAST, _RECENT = range(5)
_GAUGE_OPS = {"min": _MIN, "livemin": _MIN, "max": _MAX, "livemax": _MAX, "sum": _SUM, "livesum": _SUM,
              "mostrecent": _RECENT, "livemostrecent": _RECENT}  # others (all, liveall): per pid


class _Family:
    __slots__ = ("name", "typ", "help", "series", "hists", "header")

    def __init__(self, name: str, typ: str, help_text: str) -> None:
        self.name, self.typ, self.help = name, typ, help_text
        self.series: list[int] = []  # non-histogram slots, first-seen order
        self.hists: dict[tuple[tuple[str, str], ...], _Hist] = {}
        mname = name + "_total" if typ == "counter" else name
        doc = help_text.replace("\\", r"\\").replace("\n", r"\n")
        ename = mname  # metric and label names are plain identifiers: written as they are
        self.header = f"# HELP {ename} {doc}\n# TYPE {ename} {typ}\n"


class _Hist:
    __slots__ = ("buckets", "other", "count_prefix", "sorted")

    def __init__(self, count_prefix: str) -> None:
        self.buckets: list[tuple[float, int]] = []  # (le, slot)
        self.other: list[int] = []  # _sum (and any other non-bucket sample)
        self.count_prefix = count_prefix
        self.sorted = True


class _Layout:
    __slots__ = ("ino", "used", "parts", "unpack", "slots", "families")

    def __init__(self, ino: int) -> None:
        self.ino, self.used = ino, 8
        self.parts: list[str] = []
        self.unpack: Any = None
        self.slots: list[int] = []
        self.families: set[str] = set()


def _prefix(name: str, labels: tuple[tuple[str, str], ...]) -> str:
    """``name{labels} `` exactly as prometheus-client's generate_latest writes it."""
    ename = name
    if not labels:
        return ename + " "
    text = ",".join(f'{k}="{escape_label_value(v)}"'
                    for k, v in sorted(labels))
    return f"{ename}{{{text}}} "


class FastMultiProcessCollector(Collector):
    """Aggregates ``PROMETHEUS_MULTIPROC_DIR`` like ``MultiProcessCollector``, with caches."""

    def __init__(self, path: str, registry: CollectorRegistry | None = None) -> None:
        if not path or not os.path.isdir(path):
            raise ValueError(f"{ENV_VAR} is not set or not a directory")
        self._path = path
        self._lock = locks.new_lock()
        self._reset()
        if registry is not None:
            self.register_in(registry)

    def register_in(self, registry: CollectorRegistry) -> None:
        """Register in ``registry``, where ``exposition.generate_latest`` finds it for the fast text path."""
        registry.register(self)
        _fast_by_registry[registry] = self

    def _reset(self) -> None:
        self._keys: dict[bytes, tuple[str, str, tuple[tuple[str, str], ...], str]] = {}
        self._slot_of: dict[Any, int] = {}
        self._slot_name: list[str] = []  # sample name
        self._slot_labels: list[tuple[tuple[str, str], ...]] = []
        self._slot_prefix: list[str] = []
        self._families: dict[str, _Family] = {}
        self._files: dict[str, _Layout] = {}
        self._stamps: dict[int, float] = {}
        self._live = 0

    # --- reading ---------------------------------------------------------------------

    def _key(self, kb: bytes) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
        k = self._keys.get(kb)
        if k is None:
            metric_name, name, labels, help_text = json.loads(kb.decode("utf-8"))
            k = self._keys[kb] = (metric_name, name, tuple(sorted(labels.items())), help_text)
        return k

    def _new_slot(self, key: Any, name: str, labels: tuple[tuple[str, str], ...], prefix: str) -> int:
        s = self._slot_of[key] = len(self._slot_name)
        self._slot_name.append(name)
        self._slot_labels.append(labels)
        self._slot_prefix.append(prefix)
        return s

    def _slot(self, typ: str, mode: str, pid: str, key: tuple[Any, ...]) -> int:
        metric_name, name, labels, help_text = key
        fam = self._families.get(metric_name)
        if fam is None:
            fam = self._families[metric_name] = _Family(metric_name, typ, help_text)
        if typ == "gauge" and mode not in _GAUGE_OPS:
            labels = labels + (("pid", pid),)
        if fam.typ == "histogram":
            le = next((v for k, v in labels if k == "le"), None)
            base = labels if le is None else tuple(x for x in labels if x[0] != "le")
            h = fam.hists.get(base)
            if h is None:
                h = fam.hists[base] = _Hist(_prefix(metric_name + "_count", base))
            if le is not None:
                bound = float(le)
                skey = (metric_name, name, base, bound)
                s = self._slot_of.get(skey)
                if s is None:
                    full = base + (("le", floatToGoString(bound)),)
                    s = self._new_slot(skey, metric_name + "_bucket", full, _prefix(metric_name + "_bucket", full))
                    h.buckets.append((bound, s))
                    h.sorted = False
                return s
            skey = (metric_name, name, base)
            s = self._slot_of.get(skey)
            if s is None:
                s = self._new_slot(skey, name, base, _prefix(name, base))
                h.other.append(s)
            return s
        skey = (metric_name, name, labels)
        s = self._slot_of.get(skey)
        if s is None:
            s = self._new_slot(skey, name, labels, _prefix(name, labels))
            fam.series.append(s)
        return s

    def _read(self, path: str) -> tuple[_Layout, tuple[float, ...]] | None:
        base = os.path.basename(path)
        parts = base.split("_")
        typ = parts[0]
        try:
            with open(path, "rb") as fp:
                ino = os.fstat(fp.fileno()).st_ino
                data = fp.read(mmap.PAGESIZE)
                used = _INT(data, 0)[0]
                if used > len(data):
                    data += fp.read(used - len(data))
        except FileNotFoundError:
            if typ == "gauge" and parts[1].startswith("live"):
                return None  # removed by mark_process_dead since the glob
            raise
        lay = self._files.get(path)
        if lay is None or lay.ino != ino or used < lay.used:
            lay = self._files[path] = _Layout(ino)
        if used > lay.used:
            mode = parts[1] if typ == "gauge" else ""
            pid = parts[2][:-3] if typ == "gauge" else ""
            pos = lay.used
            while pos < used:
                n = _INT(data, pos)[0]
                if n + pos > used:
                    raise RuntimeError("Read beyond file size detected, file is corrupted.")
                kb = data[pos + 4:pos + 4 + n]
                padded = n + (8 - (n + 4) % 8)
                lay.parts.append(f"{4 + padded}xdd")
                key = self._key(kb)
                lay.families.add(key[0])
                lay.slots.append(self._slot(typ, mode, pid, key))
                pos += 4 + padded + 16
            lay.used = used
            lay.unpack = struct.Struct("=8x" + "".join(lay.parts)).unpack_from
        if lay.unpack is None:
            return lay, ()
        return lay, lay.unpack(data)

    # --- merging ---------------------------------------------------------------------

    def _merge(self) -> tuple[list[Any], set[str]]:
        if len(self._slot_name) > 100_000 and self._live * 2 < len(self._slot_name):
            self._reset()  # mostly series of files now gone (dead workers): start afresh
        files = glob.glob(os.path.join(self._path, "*.db"))
        read = []
        for f in files:
            r = self._read(f)
            if r is not None:
                read.append((f, r))
        seen = set(files)
        for f in [f for f in self._files if f not in seen]:
            del self._files[f]
        acc: list[Any] = [None] * len(self._slot_name)
        present: set[str] = set()
        for f, (lay, vals) in read:
            present |= lay.families
            parts = os.path.basename(f).split("_")
            op = _GAUGE_OPS.get(parts[1], _LAST) if parts[0] == "gauge" else _SUM
            slots = lay.slots
            if op == _SUM:
                for s, v in zip(slots, vals[0::2]):
                    a = acc[s]
                    acc[s] = 0.0 + v if a is None else a + v
            elif op == _LAST:
                for s, v in zip(slots, vals[0::2]):
                    acc[s] = v
            elif op == _MAX:
                for s, v in zip(slots, vals[0::2]):
                    a = acc[s]
                    if a is None or v > a:
                        acc[s] = v
            elif op == _MIN:
                for s, v in zip(slots, vals[0::2]):
                    a = acc[s]
                    if a is None or v < a:
                        acc[s] = v
            else:  # mostrecent: the value with the latest timestamp (none unless one is > 0)
                stamps = self._stamps
                for s, v, t in zip(slots, vals[0::2], vals[1::2]):
                    if stamps.get(s, 0.0) < t:
                        acc[s] = v
                        stamps[s] = t
        self._live = len(acc) - acc.count(None)
        return acc, present

    def _fams(self, present: set[str]) -> list[_Family]:
        fams = [f for n, f in self._families.items() if n in present]
        for fam in fams:
            for h in fam.hists.values():
                if not h.sorted:
                    h.buckets.sort()
                    h.sorted = True
        return fams

    # --- output ----------------------------------------------------------------------

    def collect(self) -> list[Metric]:
        if rendered_already(self):
            return []
        with self._lock:
            self._stamps: dict[int, float] = {}
            acc, present = self._merge()
            fams = self._fams(present)
            names, labels = self._slot_name, self._slot_labels
            out = []
            for fam in fams:
                m = Metric(fam.name, fam.help, fam.typ)
                add = m.samples.append
                for s in fam.series:
                    if acc[s] is not None:
                        add(Sample(names[s], dict(labels[s]), acc[s]))
                for base, h in fam.hists.items():
                    for s in h.other:
                        if acc[s] is not None:
                            add(Sample(names[s], dict(labels[s]), acc[s]))
                    total, any_bucket = 0.0, False
                    for _, s in h.buckets:
                        if acc[s] is not None:
                            total += acc[s]
                            any_bucket = True
                            add(Sample(names[s], dict(labels[s]), total))
                    if any_bucket:
                        add(Sample(fam.name + "_count", dict(base), total))
                out.append(m)
            return out

    def render_text(self) -> str:
        """Text format 0.0.4 of ``collect()``, as prometheus-client's generate_latest renders it."""
        with self._lock:
            self._stamps = {}
            acc, present = self._merge()
            fams = self._fams(present)
            pfx = self._slot_prefix
            out: list[str] = []
            add = out.append
            for fam in fams:
                add(fam.header)
                for s in fam.series:
                    v = acc[s]
                    if v is not None:
                        add(pfx[s] + fmt(v) + "\n")
                for h in fam.hists.values():
                    total, any_bucket = 0.0, False
                    for _, s in h.buckets:
                        v = acc[s]
                        if v is not None:
                            total += v
                            any_bucket = True
                            add(pfx[s] + fmt(total) + "\n")
                    if any_bucket:
                        add(h.count_prefix + fmt(total) + "\n")
                    for s in h.other:
                        v = acc[s]
                        if v is not None:
                            add(pfx[s] + fmt(v) + "\n")
            return "".join(out)
