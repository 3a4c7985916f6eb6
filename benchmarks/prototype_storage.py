"""Prototype (benchmark only): one flat value array per label set, one lock per call.

Why: the cached-children floor costs ~2x the bound-once floor, and both are
dominated by prometheus-client's per-update machinery, not by our code. Each of
the 15 updates of one call goes through a child object, an observability check
and a ``MutexValue`` with its own lock (a histogram observation takes two locks
and scans the bucket bounds linearly), and the ~25 child objects per label set
are scattered in memory, so 1,500 label sets miss the CPU caches.

This prototype keeps all values of one (provider, model, feature, operation)
label set in plain Python lists owned by one ``Bundle``: a call takes the
bundle's lock once, finds buckets with ``bisect`` and adds to list slots. A
collector-side renderer turns the arrays into the same text exposition as
prometheus-client, with each series' label text built once (see
``prototype_exposition``). It is measured next to the floors in the record and
scrape sections to size what this design would give the core.

Not used by the exporter. Limits of the prototype: single-process only (the
multiprocess mode would keep prometheus-client's mmap values), no exemplars,
text format only.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from typing import Any

from benchmarks import workload as W
from benchmarks.prototype_exposition import _escape, _fmt
from llm_exporter import contract as C
from prometheus_client.utils import floatToGoString

_S = C.METRICS_BY_NAME
DUR_B = _S["llm_request_duration_seconds"].buckets
TTFT_B = _S["llm_time_to_first_token_seconds"].buckets
TPOT_B = _S["llm_time_per_output_token_seconds"].buckets
TOK_B = _S["llm_tokens_per_request"].buckets
FR_INDEX = {fr: i for i, fr in enumerate(C.FINISH_REASONS)}


class Bundle:
    """All values of one label set: counters as list slots, histograms as bucket counts + sum."""

    __slots__ = ("key", "lock", "inflight", "req", "dur", "ttft", "tpot", "tok", "pin", "pout", "cost", "sav")

    def __init__(self, key: tuple[str, str, str, str]) -> None:
        self.key = key
        self.lock = threading.Lock()
        self.inflight = [0.0]
        self.req = [0.0] * len(C.FINISH_REASONS)
        # histogram arrays: one count per bucket (+Inf last), then the sum
        self.dur = [0.0] * (len(DUR_B) + 2)
        self.ttft = [0.0] * (len(TTFT_B) + 2)
        self.tpot = [0.0] * (len(TPOT_B) + 2)
        self.tok = [0.0] * len(C.TOKEN_TYPES)
        self.pin = [0.0] * (len(TOK_B) + 2)
        self.pout = [0.0] * (len(TOK_B) + 2)
        self.cost = [0.0, 0.0]  # cost, cache savings


def _observe(h: list[float], bounds: tuple[float, ...], v: float) -> None:
    h[bisect_left(bounds, v)] += 1.0
    h[-1] += v


class Store:
    """The prototype's state: bundles by label tuple."""

    def __init__(self) -> None:
        self.bundles: dict[tuple[str, str, str, str], Bundle] = {}
        self._lock = threading.Lock()

    def bundle(self, key: tuple[str, str, str, str]) -> Bundle:
        b = self.bundles.get(key)
        if b is None:
            with self._lock:
                b = self.bundles.setdefault(key, Bundle(key))
        return b

    def record(self, provider: str, model: str, feature: str, operation: str, finish_reason: str = "stop") -> None:
        """The same updates as ``workload.apply`` (one streamed chat call)."""
        b = self.bundle((provider, model, feature, operation))
        with b.lock:
            b.inflight[0] += 1.0
            b.req[FR_INDEX[finish_reason]] += 1.0
            _observe(b.dur, DUR_B, W.DURATION_S)
            _observe(b.ttft, TTFT_B, W.TTFT_S)
            _observe(b.tpot, TPOT_B, W.TPOT_S)
            tok = b.tok
            for i, v in enumerate(W.DISJOINT):
                tok[i] += v
            _observe(b.pin, TOK_B, W.INPUT_TOKENS)
            _observe(b.pout, TOK_B, W.OUTPUT_TOKENS)
            b.cost[0] += W.COST_USD
            if W.HAS_SAVINGS:
                b.cost[1] += W.SAVINGS_USD
            b.inflight[0] -= 1.0


def record_case(store: Store, sets: list[tuple[str, str, str, str]]) -> Any:
    return W.rotating(store.record, sets)


# --- rendering (text format 0.0.4), prefixes cached per label set ----------------------------

def _labels(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(pairs))


class Renderer:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[tuple[str, str, str, str], dict[str, Any]] = {}

    def _prefixes(self, key: tuple[str, str, str, str]) -> dict[str, Any]:
        p = self._cache.get(key)
        if p is None:
            base = list(zip(C.COMMON_LABELS, key))
            lab = _labels(base)

            def hist(name: str, bounds: tuple[float, ...], extra: list[tuple[str, str]]) -> tuple:
                pairs = base + extra
                le = [f'{name}_bucket{{{_labels(pairs + [("le", floatToGoString(b))])}}} '
                      for b in (*bounds, float("inf"))]
                return le, f"{name}_count{{{_labels(pairs)}}} ", f"{name}_sum{{{_labels(pairs)}}} "

            p = {
                "inflight": f"llm_in_flight_requests{{{_labels(base[:3])}}} ",
                "req": [f"llm_requests_total{{{_labels(base + [('finish_reason', fr)])}}} "
                        for fr in C.FINISH_REASONS],
                "dur": hist("llm_request_duration_seconds", DUR_B, []),
                "ttft": hist("llm_time_to_first_token_seconds", TTFT_B, []),
                "tpot": hist("llm_time_per_output_token_seconds", TPOT_B, []),
                "tok": [f"llm_tokens_total{{{_labels(base + [('token_type', t)])}}} " for t in C.TOKEN_TYPES],
                "pin": hist("llm_tokens_per_request", TOK_B, [("direction", "input")]),
                "pout": hist("llm_tokens_per_request", TOK_B, [("direction", "output")]),
                "cost": f"llm_cost_usd_total{{{lab}}} ",
                "sav": f"llm_cache_savings_usd_total{{{lab}}} ",
            }
            self._cache[key] = p
        return p

    def render(self) -> bytes:
        bundles = list(self.store.bundles.values())
        snap = []
        for b in bundles:  # copy values under each bundle's lock: a consistent call-level snapshot
            with b.lock:
                snap.append((b.key, b.inflight[:], b.req[:], b.dur[:], b.ttft[:], b.tpot[:], b.tok[:],
                             b.pin[:], b.pout[:], b.cost[:]))
        out: list[str] = []
        add = out.append
        pre = [self._prefixes(s[0]) for s in snap]

        def family(name: str, kind: str, help_: str) -> None:
            add(f"# HELP {name} {help_}\n# TYPE {name} {kind}\n")

        def hist_lines(p: tuple, h: list[float]) -> None:
            le, count_p, sum_p = p
            acc = 0.0
            for prefix, c in zip(le, h):
                acc += c
                add(prefix + _fmt(acc) + "\n")
            add(count_p + _fmt(acc) + "\n")
            add(sum_p + _fmt(h[-1]) + "\n")

        family("llm_in_flight_requests", "gauge", _S["llm_in_flight_requests"].help)
        for p, s in zip(pre, snap):
            add(p["inflight"] + _fmt(s[1][0]) + "\n")
        family("llm_requests_total", "counter", _S["llm_requests_total"].help)
        for p, s in zip(pre, snap):
            for prefix, v in zip(p["req"], s[2]):
                if v:  # series exist once used, as with prometheus-client children
                    add(prefix + _fmt(v) + "\n")
        for key, idx, name in (("dur", 3, "llm_request_duration_seconds"),
                               ("ttft", 4, "llm_time_to_first_token_seconds"),
                               ("tpot", 5, "llm_time_per_output_token_seconds")):
            family(name, "histogram", _S[name].help)
            for p, s in zip(pre, snap):
                hist_lines(p[key], s[idx])
        family("llm_tokens_total", "counter", _S["llm_tokens_total"].help)
        for p, s in zip(pre, snap):
            for prefix, v in zip(p["tok"], s[6]):
                add(prefix + _fmt(v) + "\n")
        family("llm_tokens_per_request", "histogram", _S["llm_tokens_per_request"].help)
        for p, s in zip(pre, snap):
            hist_lines(p["pin"], s[7])
            hist_lines(p["pout"], s[8])
        family("llm_cost_usd_total", "counter", _S["llm_cost_usd_total"].help)
        for p, s in zip(pre, snap):
            add(p["cost"] + _fmt(s[9][0]) + "\n")
        if W.HAS_SAVINGS:
            family("llm_cache_savings_usd_total", "counter", _S["llm_cache_savings_usd_total"].help)
            for p, s in zip(pre, snap):
                add(p["sav"] + _fmt(s[9][1]) + "\n")
        return "".join(out).encode()
