"""Prototype (benchmark only): a text-format renderer that caches each series' label text.

``prometheus_client.generate_latest`` rebuilds every sample line from scratch on
every scrape: it validates and escapes each label name and value, formats the
``le`` label and joins the pieces (profile: ~80 % of a scrape at the reference
cardinality). But a series' labels never change once the child exists, so the
text up to the value can be built once and kept. This renders the same text
format 0.0.4 output for prometheus-client Counter/Gauge/Histogram families,
reading the children's values directly, and is measured next to
``generate_latest`` in the scrape section to size the gain for the core.

Not used by the exporter. Limits of the prototype: text format only (no
OpenMetrics/exemplars), no ``_created`` series, families with labels only.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from prometheus_client.utils import floatToGoString


def _fmt(v: float) -> str:
    # repr matches floatToGoString for ordinary values; defer to it for the rest
    r = repr(float(v))
    if "e" in r or "n" in r:  # exponents, inf, nan
        return floatToGoString(v)
    return r


def _escape(v: str) -> str:
    return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


class CachedTextRenderer:
    """Renders a fixed list of prometheus-client metric objects, caching per-series prefixes."""

    def __init__(self, metrics: Iterable[Any]) -> None:
        self._metrics = list(metrics)
        self._prefix: dict[tuple[int, tuple[str, ...]], Any] = {}

    @staticmethod
    def _labels(pairs: Iterable[tuple[str, str]]) -> str:
        # sorted by name, as generate_latest does, so the bodies are byte-identical
        return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs))

    def _series_prefix(self, m: Any, values: tuple[str, ...]) -> Any:
        key = (id(m), values)
        p = self._prefix.get(key)
        if p is None:
            pairs = list(zip(m._labelnames, values))
            labels = self._labels(pairs)
            name = m._name
            if m._type == "histogram":
                bounds = [f'{name}_bucket{{{self._labels(pairs + [("le", floatToGoString(b))])}}} '
                          for b in m._upper_bounds]
                p = (bounds, f"{name}_count{{{labels}}} ", f"{name}_sum{{{labels}}} ")
            else:
                suffix = "_total" if m._type == "counter" else ""
                p = f"{name}{suffix}{{{labels}}} "
            self._prefix[key] = p
        return p

    def render(self) -> bytes:
        out: list[str] = []
        add = out.append
        for m in self._metrics:
            name, kind = m._name, m._type
            full = name + "_total" if kind == "counter" else name
            add(f"# HELP {full} {m._documentation}\n# TYPE {full} {kind}\n")
            with m._lock:
                children = list(m._metrics.items())
            if kind == "histogram":
                for values, child in children:
                    bounds, count_p, sum_p = self._series_prefix(m, values)
                    acc = 0.0
                    for prefix, bucket in zip(bounds, child._buckets):
                        acc += bucket.get()
                        add(prefix + _fmt(acc) + "\n")
                    add(count_p + _fmt(acc) + "\n")
                    add(sum_p + _fmt(child._sum.get()) + "\n")
            else:
                for values, child in children:
                    add(self._series_prefix(m, values) + _fmt(child._value.get()) + "\n")
        return "".join(out).encode()


def same_samples(a: bytes, b: bytes) -> bool:
    """True if two text exposition bodies carry the same sample lines (order-insensitive)."""
    def samples(body: bytes) -> list[str]:
        return sorted(line for line in body.decode().splitlines() if line and not line.startswith("#"))
    sa, sb = samples(a), samples(b)
    if sa == sb:
        return True
    # tolerate float formatting differences only
    if len(sa) != len(sb):
        return False
    for x, y in zip(sa, sb):
        kx, _, vx = x.rpartition(" ")
        ky, _, vy = y.rpartition(" ")
        if kx != ky or not math.isclose(float(vx), float(vy)):
            return False
    return True
