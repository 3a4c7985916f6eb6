"""Single-process storage of the per-call families: flat values, one lock per call.

Why: prometheus-client spends most of a recorded call in its per-update
machinery (a child object, an observability check and a lock per update, two
locks and a linear bucket scan per histogram observation; benchmarks/README.md).
Here all values of one (provider, model, feature, operation) label set live in
one ``StoreBundle`` of plain floats and bucket lists; a call takes one lock and
finds buckets with ``bisect``. ``StoreCollector`` exposes the values to
prometheus-client (registry, ``get_sample_value``, OpenMetrics with exemplars,
``name[]`` filtering) and renders the text format itself with each series'
label text built once (``render_text``), byte-identical to ``generate_latest``.

Multi-process mode does not use this module: it needs prometheus-client's
file-backed values (``metrics.ClientBundle``), read by another process, so calls
are recorded as they finish there.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from typing import Any, Iterable, Iterator

from prometheus_client import Counter
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Exemplar
from prometheus_client.utils import floatToGoString

from . import contract, gcsafe
from .locks import new_lock

Key = tuple[str, str, str, str]
INF = float("inf")

#: Families whose values live in the store (all keyed by the common labels or a prefix of them).
FAMILIES = (
    "llm_requests_total", "llm_request_duration_seconds", "llm_time_to_first_token_seconds",
    "llm_time_per_output_token_seconds", "llm_tokens_total", "llm_tokens_per_request", "llm_cost_usd_total",
    "llm_cache_savings_usd_total", "llm_errors_total", "llm_retries_total", "llm_in_flight_requests",
    "llm_unpriced_requests_total", "llm_refusals_total",
)
_SPECS = tuple(s for s in contract.METRICS if s.name in FAMILIES)  # contract order


def upper_bounds(buckets: Iterable[float]) -> tuple[float, ...]:
    """Bucket bounds as prometheus-client keeps them (floats, +Inf appended)."""
    ub = [float(b) for b in buckets]
    if not ub or ub[-1] != INF:
        ub.append(INF)
    return tuple(ub)


class Cell:
    """One counter/gauge series: its value and creation time (for ``_created``)."""

    __slots__ = ("v", "created")

    def __init__(self) -> None:
        self.v = 0.0
        self.created = time.time()

    def snapshot(self) -> tuple[float, float]:
        return self.v, self.created


class Hist:
    """One histogram series: per-bucket counts (not cumulative), sum, last exemplar per bucket."""

    __slots__ = ("counts", "sum", "exemplars", "created")

    def __init__(self, n: int) -> None:
        self.counts = [0.0] * n
        self.sum = 0.0
        self.exemplars: list[Any] | None = None
        self.created = time.time()

    def observe(self, ub: tuple[float, ...], v: float, ex: dict[str, str] | None) -> None:
        i = bisect_left(ub, v)  # first bound >= v, as prometheus-client's `v <= bound` scan
        self.counts[i] += 1.0
        self.sum += v
        if ex is not None:
            e = self.exemplars
            if e is None:
                e = self.exemplars = [None] * len(self.counts)
            e[i] = Exemplar(ex, v, time.time())

    def snapshot(self) -> tuple[list[float], float, list[Any] | None, float]:
        e = self.exemplars
        return self.counts[:], self.sum, (e[:] if e is not None else None), self.created


class InFlight:
    """``llm_in_flight_requests`` of one (provider, model, feature), under its group's lock."""

    __slots__ = ("_lock", "_cell")

    def __init__(self, lock: Any, cell: Cell) -> None:
        self._lock = lock
        self._cell = cell

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._cell.v += amount

    def dec(self, amount: float = 1.0) -> None:
        with self._lock:
            self._cell.v -= amount


class Group:
    """Bundles sharing (provider, model): one lock, so series keyed by fewer labels
    (in-flight by provider/model/feature, unpriced by provider/model) share it too."""

    __slots__ = ("lock", "key", "bundles", "in_flight", "unpriced", "hists")

    def __init__(self, key: tuple[str, str]) -> None:
        self.lock = new_lock()
        self.key = key
        self.bundles: list[StoreBundle] = []
        self.in_flight: dict[str, Cell] = {}
        self.unpriced: Cell | None = None
        #: histogram key -> its histograms (insertion order: creation order)
        self.hists: dict[tuple[str, ...], Hists] = {}


class _Series:
    """The series a collector reads, by family: ``_out`` maps a family to its series, or, for a family
    with an extra label, to {extra label value: series}."""

    __slots__ = ("_out",)

    def _new(self, family: str, series: Any, extra: str | None = None) -> Any:
        if extra is None:
            self._out[family] = series
        else:
            self._out.setdefault(family, {})[extra] = series
        return series

    def snapshot(self) -> dict[str, Any]:
        """Copies of the values (caller holds the group lock): family -> value snapshot,
        or [(extra label value, value snapshot)]; only series that exist."""
        return {name: ([(x, o.snapshot()) for x, o in v.items()] if type(v) is dict else v.snapshot())
                for name, v in self._out.items()}


class Hists(_Series):
    """The histograms of one histogram key: (provider, model, operation), or the full label set
    with ``feature_histograms`` on. Shared by the label sets of that key; guarded by the group's lock."""

    __slots__ = ("key", "duration", "ttft", "tpot", "per_request")

    def __init__(self, store: Store, key: tuple[str, ...]) -> None:
        self.key = key
        self._out: dict[str, Any] = {}
        self.duration = self._new("llm_request_duration_seconds", Hist(len(store.ub_duration)))
        self.ttft: Hist | None = None  # streams only: made on first use
        self.tpot: Hist | None = None
        self.per_request: tuple[Hist, Hist] | None = None  # input, output

    def observe(self, s: Store, duration: float, ttft: float | None, tpot: float | None, parts: Any,
                ex: dict[str, str] | None) -> None:
        """A finished call's observations (caller holds the group lock)."""
        self.duration.observe(s.ub_duration, duration, ex)
        if ttft is not None:
            h = self.ttft
            if h is None:
                h = self.ttft = self._new("llm_time_to_first_token_seconds", Hist(len(s.ub_ttft)))
            h.observe(s.ub_ttft, ttft, ex)
            if tpot is not None:
                h = self.tpot
                if h is None:
                    h = self.tpot = self._new("llm_time_per_output_token_seconds", Hist(len(s.ub_tpot)))
                h.observe(s.ub_tpot, tpot, ex)
        if parts is not None:
            pr = self.per_request
            if pr is None:
                pr = self.per_request = (self._new("llm_tokens_per_request", Hist(len(s.ub_size)), "input"),
                                         self._new("llm_tokens_per_request", Hist(len(s.ub_size)), "output"))
            pr[0].observe(s.ub_size, parts[0] + parts[1] + parts[2], ex)
            pr[1].observe(s.ub_size, parts[3] + parts[4], ex)


class StoreBundle(_Series):
    """All values of one (provider, model, feature, operation) label set."""

    __slots__ = ("key", "lock", "_store", "_group", "in_flight", "hists", "cost", "retries",
                 "_requests", "_errors", "_tokens", "_savings", "_refusals")

    def __init__(self, store: Store, group: Group, key: Key) -> None:
        self.key = key
        self.lock = group.lock
        self._store = store
        self._group = group
        cell = group.in_flight.get(key[2])
        if cell is None:
            cell = group.in_flight[key[2]] = Cell()
        self.in_flight = InFlight(group.lock, cell)
        # Created eagerly (series at 0 from the first call on, so rate() sees the
        # first increment); stream-only histograms and rarer counters are lazy.
        # The series the collector reads, by family ({extra label value: series} for
        # families with an extra label). The attributes below are the record path's
        # references to the same objects.
        self._out: dict[str, Any] = {}
        hkey = key if store.feature_histograms else (key[0], key[1], key[3])
        hists = group.hists.get(hkey)
        if hists is None:
            hists = group.hists[hkey] = Hists(store, hkey)
        self.hists = hists
        self.cost = self._new("llm_cost_usd_total", Cell())
        self.retries = self._new("llm_retries_total", Cell())
        self._requests: dict[str, Cell] = {
            r: self._new("llm_requests_total", Cell(), r) for r in contract.EAGER_FINISH_REASONS}
        self._errors: dict[str, Cell] = {e: self._new("llm_errors_total", Cell(), e) for e in contract.EAGER_ERROR_TYPES}
        self._tokens: tuple[Cell, ...] | None = None  # contract.TOKEN_TYPES order
        self._savings: Cell | None = None
        self._refusals: Cell | None = None

    def apply(self, finish_reason: str, error_type: str | None, duration: float, ttft: float | None,
              tpot: float | None, parts: Any, cost: float | None, savings: float | None, unpriced: bool,
              retries: int, refused: bool, ex: dict[str, str] | None) -> None:
        """Every update of one finished call, under one lock (see ``recorder.record``)."""
        s = self._store
        with self.lock:
            c = self._requests.get(finish_reason)
            if c is None:
                c = self._requests[finish_reason] = self._new("llm_requests_total", Cell(), finish_reason)
            c.v += 1.0
            if error_type is not None:
                c = self._errors.get(error_type)
                if c is None:
                    c = self._errors[error_type] = self._new("llm_errors_total", Cell(), error_type)
                c.v += 1.0
            self.hists.observe(s, duration, ttft, tpot, parts, ex)
            if parts is not None:
                inp, cr, cw, out, rs = parts
                t = self._tokens
                if t is None:
                    t = self._tokens = tuple(self._new("llm_tokens_total", Cell(), tt) for tt in contract.TOKEN_TYPES)
                t[0].v += inp
                t[1].v += cr
                t[2].v += cw
                t[3].v += out
                t[4].v += rs
            if savings is not None:
                c = self._savings
                if c is None:
                    c = self._savings = self._new("llm_cache_savings_usd_total", Cell())
                c.v += savings
            if unpriced:
                c = self._group.unpriced
                if c is None:
                    c = self._group.unpriced = Cell()
                c.v += 1.0
            if cost:
                self.cost.v += cost
            if retries:
                self.retries.v += retries
            if refused:
                c = self._refusals
                if c is None:
                    c = self._refusals = self._new("llm_refusals_total", Cell())
                c.v += 1.0

    def mark_refusals(self) -> None:
        """Expose ``llm_refusals_total`` at 0 (the refusal detector is on)."""
        with self.lock:
            if self._refusals is None:
                self._refusals = self._new("llm_refusals_total", Cell())

    def mark_unpriced(self) -> None:
        """Expose ``llm_unpriced_requests_total`` at 0 for this (provider, model)."""
        with self.lock:
            if self._group.unpriced is None:
                self._group.unpriced = Cell()



class Store:
    """Bundles by label tuple, grouped by (provider, model)."""

    def __init__(self, buckets: dict[str, tuple[float, ...]], feature_histograms: bool = False) -> None:
        """``feature_histograms``: histograms per label set (with ``feature``), not per
        (provider, model, operation) (``configure(feature_histograms=True)``)."""
        self.feature_histograms = feature_histograms
        self.hist_labels = contract.COMMON_LABELS if feature_histograms else HIST_KEY_LABELS

        def ub(name: str) -> tuple[float, ...]:
            return upper_bounds(buckets.get(name) or contract.METRICS_BY_NAME[name].buckets or ())

        self.ub_duration = ub("llm_request_duration_seconds")
        self.ub_ttft = ub("llm_time_to_first_token_seconds")
        self.ub_tpot = ub("llm_time_per_output_token_seconds")
        self.ub_size = ub("llm_tokens_per_request")
        self._lock = new_lock()
        self.groups: dict[tuple[str, str], Group] = {}
        self.bundles: dict[Key, StoreBundle] = {}

    def bundle(self, key: Key) -> StoreBundle:
        b = self.bundles.get(key)
        if b is None:
            with self._lock:
                b = self.bundles.get(key)
                if b is None:
                    g = self.groups.get(key[:2])
                    if g is None:
                        g = self.groups[key[:2]] = Group(key[:2])  # type: ignore[index]
                    with g.lock:
                        b = StoreBundle(self, g, key)
                        g.bundles.append(b)
                    self.bundles[key] = b
        return b

    def snapshot(self) -> list[tuple[Group, list[tuple[Key, dict[str, Any]]], list[tuple[str, float, float]],
                                     tuple[float, float] | None]]:
        """A consistent copy per group: (group, [(key, values)], in-flight cells, unpriced)."""
        with gcsafe.section:
            with self._lock:
                groups = list(self.groups.values())
            out = []
            for g in groups:
                with g.lock:
                    bundles = [(b.key, b.snapshot()) for b in g.bundles]
                    bundles += [(h.key, h.snapshot()) for h in g.hists.values()]  # their families are the histograms
                    inflight = [(f, c.v, c.created) for f, c in g.in_flight.items()]
                    unpriced = (g.unpriced.v, g.unpriced.created) if g.unpriced is not None else None
                out.append((g, bundles, inflight, unpriced))
        return out


# --- exposition ------------------------------------------------------------------------

def fmt(v: float) -> str:
    """``floatToGoString`` with a fast path for plain values (repr is the same for them)."""
    r = repr(float(v))
    if "e" in r or "n" in r or r.find(".") > 6:  # exponents, inf, nan, Go's earlier exponent switch
        return floatToGoString(v)
    return r


def escape_label_value(value: str) -> str:
    """A label value as the text format writes it (backslash, newline and double quote escaped)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"')


def _label_text(pairs: Iterable[tuple[str, str]]) -> str:
    # sorted by name and escaped as prometheus-client's generate_latest does (our label names
    # are the contract's, plain identifiers: no quoting needed)
    return ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sorted(pairs))


_rendering = threading.local()


def rendering(collector: Any) -> None:
    """Mark ``collector`` as rendered by its own fast text path in this thread (None: clear), so
    the registry's ``collect`` that renders everything else skips it (``rendered_already``)."""
    _rendering.collector = collector


def rendered_already(collector: Any) -> bool:
    return getattr(_rendering, "collector", None) is collector


def created_series_enabled() -> bool:
    """Whether prometheus-client exposes ``_created`` series now (``disable_created_metrics()``
    is process-global and has no public getter): asked of a throwaway counter, once per scrape."""
    probe = Counter("llm_exporter_probe", "", registry=None)
    return any(s.name.endswith("_created") for s in probe.collect()[0].samples)


def _help(spec: contract.MetricSpec) -> str:
    doc = spec.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {spec.name} {doc}\n# TYPE {spec.name} {spec.type}\n"


_COMMON = contract.COMMON_LABELS
#: the labels of a histogram key by default (``contract``: histograms' labels without the extra one)
HIST_KEY_LABELS = ("provider", "model", "operation")
_HISTOGRAMS = frozenset(s.name for s in contract.METRICS if s.type == "histogram")
_EXTRA = {"llm_requests_total": "finish_reason", "llm_errors_total": "error_type",
          "llm_tokens_total": "token_type", "llm_tokens_per_request": "direction"}


class StoreCollector(Collector):
    """Exposes a ``Store`` to prometheus-client, and renders its text format fast."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._ub = {"llm_request_duration_seconds": store.ub_duration,
                    "llm_time_to_first_token_seconds": store.ub_ttft,
                    "llm_time_per_output_token_seconds": store.ub_tpot,
                    "llm_tokens_per_request": store.ub_size}
        self._le = {name: [floatToGoString(b) for b in ub] for name, ub in self._ub.items()}
        self._prefix: dict[tuple[str, tuple[str, ...]], Any] = {}
        self._headers = {s.name: _help(s) for s in _SPECS}

    def describe(self) -> list[Metric]:
        return [Metric(s.base_name, s.help, s.type) for s in _SPECS]

    # --- prometheus-client samples (registry.collect, OpenMetrics, get_sample_value) ---

    def collect(self) -> list[Metric]:
        if rendered_already(self):
            return []
        created = created_series_enabled()
        snap = self.store.snapshot()
        out = []
        for spec in _SPECS:
            m = Metric(spec.base_name, spec.help, spec.type)
            for labels, value in self._series(spec.name, snap):
                if spec.type == "histogram":
                    self._hist_samples(m, spec.name, labels, value, created)
                elif spec.type == "counter":
                    m.add_sample(spec.name, labels, value[0])
                    if created:
                        m.add_sample(spec.base_name + "_created", labels, value[1])
                else:
                    m.add_sample(spec.name, labels, value[0])
            out.append(m)
        return out

    def _hist_samples(self, m: Metric, name: str, labels: dict[str, str], h: Any, created: bool) -> None:
        counts, total, exemplars, ts = h
        acc = 0.0
        for i, le in enumerate(self._le[name]):
            acc += counts[i]
            m.add_sample(name + "_bucket", dict(labels, le=le), acc, None,
                         exemplars[i] if exemplars is not None else None)
        m.add_sample(name + "_count", labels, acc)
        if self._ub[name][0] >= 0:
            m.add_sample(name + "_sum", labels, total)
        if created:
            m.add_sample(name + "_created", labels, ts)

    def _series(self, name: str, snap: list[Any]) -> Iterator[tuple[dict[str, str], Any]]:
        """(labels, value) of one family's existing series, in creation order."""
        if name == "llm_in_flight_requests":
            for g, _, inflight, _ in snap:
                for feature, v, ts in inflight:
                    yield dict(zip(_COMMON, (*g.key, feature))), (v, ts)
            return
        if name == "llm_unpriced_requests_total":
            for g, _, _, unpriced in snap:
                if unpriced is not None:
                    yield dict(zip(_COMMON, g.key)), unpriced
            return
        extra = _EXTRA.get(name)
        names = self.store.hist_labels if name in _HISTOGRAMS else _COMMON
        for _, bundles, _, _ in snap:
            for key, values in bundles:
                v = values.get(name)
                if v is None:
                    continue
                if extra is not None:
                    for x, sv in v:
                        labels = dict(zip(names, key))
                        labels[extra] = x
                        yield labels, sv
                else:
                    yield dict(zip(names, key)), v

    # --- text format 0.0.4 with cached label text --------------------------------------

    def _pfx(self, name: str, labels: tuple[tuple[str, str], ...]) -> Any:
        k = (name, labels)
        p = self._prefix.get(k)
        if p is None:
            text = _label_text(labels)
            if name in self._ub:
                p = ([f'{name}_bucket{{{_label_text((*labels, ("le", le)))}}} ' for le in self._le[name]],
                     f"{name}_count{{{text}}} ",
                     f"{name}_sum{{{text}}} " if self._ub[name][0] >= 0 else None)
            else:
                p = f"{name}{{{text}}} "
            self._prefix[k] = p
        return p

    def render_text(self) -> str:
        """Our families in the text format, as ``generate_latest`` renders ``collect()``.

        Not for ``_created`` series (callers use the standard path when they are on).
        """
        snap = self.store.snapshot()
        out: list[str] = []
        add = out.append
        pfx = self._pfx
        for spec in _SPECS:
            name = spec.name
            add(self._headers[name])
            hist = spec.type == "histogram"
            extra = _EXTRA.get(name)
            names = self.store.hist_labels if hist else _COMMON
            if name == "llm_in_flight_requests":
                for g, _, inflight, _ in snap:
                    for feature, v, _ in inflight:
                        add(pfx(name, tuple(zip(_COMMON, (*g.key, feature)))) + fmt(v) + "\n")
                continue
            if name == "llm_unpriced_requests_total":
                for g, _, _, unpriced in snap:
                    if unpriced is not None:
                        add(pfx(name, tuple(zip(_COMMON, g.key))) + fmt(unpriced[0]) + "\n")
                continue
            for _, bundles, _, _ in snap:
                for key, values in bundles:
                    v = values.get(name)
                    if v is None:
                        continue
                    base = tuple(zip(names, key))
                    if extra is not None:
                        for x, sv in v:
                            p = pfx(name, (*base, (extra, x)))
                            if hist:
                                self._hist_lines(add, p, sv)
                            else:
                                add(p + fmt(sv[0]) + "\n")
                    elif hist:
                        self._hist_lines(add, pfx(name, base), v)
                    else:
                        add(pfx(name, base) + fmt(v[0]) + "\n")
        return "".join(out)

    @staticmethod
    def _hist_lines(add: Any, p: Any, h: Any) -> None:
        buckets, count_p, sum_p = p
        counts = h[0]
        acc = 0.0
        for i, prefix in enumerate(buckets):
            acc += counts[i]
            add(prefix + fmt(acc) + "\n")
        add(count_p + fmt(acc) + "\n")
        if sum_p is not None:
            add(sum_p + fmt(h[1]) + "\n")
