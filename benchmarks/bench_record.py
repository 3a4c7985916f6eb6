"""Section 1: the record path, ns per recorded call, against the floors side by side.

Cases (all over the same ~1,500 rotating label sets unless said otherwise):

* ``floor: bound once``      prometheus-client children bound once, one label set
* ``floor: cached children`` children cached in a dict keyed by the label tuple
* ``naive .labels(**kw)``    label resolution on every update
* ``otel sdk (cached attrs)`` / ``otel sdk (attrs per call)``: OpenTelemetry SDK
  metrics API, InMemoryMetricReader attached
* ``ours: record_call``      ``llm_exporter.record_call(...)``
* ``ours: start_call..finish`` what the SDK instrumentation does per streamed call:
  start_call, first_token, set_usage, set_finish_reason, finish
"""

from __future__ import annotations

import sys
import time
import traceback
from typing import Any, Callable

from prometheus_client import CollectorRegistry

from benchmarks import harness as H
from benchmarks import workload as W


def ours_cases(sets: list[tuple[str, str, str, str]], notes: list[str]) -> dict[str, Callable[[int], None]]:
    """Our record paths on an isolated registry (a path that cannot be imported is noted)."""
    from llm_exporter.config import configure

    configure(registry=CollectorRegistry())
    kw = W.RECORD_KW
    paths: dict[str, Callable[..., None]] = {}
    try:
        from llm_exporter.recorder import record_call

        def rec(provider: str, model: str, feature: str, operation: str) -> None:
            record_call(provider=provider, model=model, feature=feature, operation=operation, **kw)

        paths["ours: record_call"] = rec
    except ImportError as exc:
        notes.append(f"ours: record_call not measured: {exc}")
    try:
        from llm_exporter.tracking import start_call

        def via_call(provider: str, model: str, feature: str, operation: str) -> None:
            call = start_call(provider=provider, model=model, feature=feature, operation=operation, stream=True)
            call.first_token()
            call.set_usage(input_tokens=W.INPUT_TOKENS, output_tokens=W.OUTPUT_TOKENS,
                           cache_read_tokens=W.CACHE_READ_TOKENS, cache_write_tokens=W.CACHE_WRITE_TOKENS,
                           reasoning_tokens=W.REASONING_TOKENS)
            call.set_finish_reason("stop")
            call.finish()

        paths["ours: start_call..finish"] = via_call
    except ImportError as exc:
        notes.append(f"ours: start_call..finish not measured: {exc}")

    return {name: W.rotating(fn, sets) for name, fn in paths.items()}


def main() -> None:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    sets = W.label_sets()
    cases: dict[str, Callable[[int], None]] = {}
    cases["floor: bound once"] = W.floor_bound_once(W.PromMetrics())
    cases["floor: cached children"] = W.floor_cached(W.PromMetrics(), sets)
    cases["naive .labels(**kw)"] = W.naive_labels(W.PromMetrics(), sets)
    otel = W.OtelMetrics(InMemoryMetricReader())
    cases["otel sdk (cached attrs)"] = W.otel_cached_attrs(otel, sets)
    otel2 = W.OtelMetrics(InMemoryMetricReader())
    cases["otel sdk (attrs per call)"] = W.otel_fresh_attrs(otel2, sets)
    notes = []
    try:
        cases.update(ours_cases(sets, notes))
    except Exception as exc:  # the core may not exist yet: publish the floors anyway
        notes.append(f"ours not measured: {type(exc).__name__}: {exc}")
        traceback.print_exc()

    ops = H.calibrate(cases["floor: cached children"], target_s=H.scaled(40, 10) / 1000)
    rounds = H.scaled(15, 3)
    t0 = time.perf_counter()
    comp = H.interleaved(cases, ops=ops, rounds=rounds)
    res: dict[str, Any] = {
        "section": "record",
        "ops_per_block": ops,
        "rounds": rounds,
        "label_sets": len(sets),
        "updates_per_call": W.UPDATES_PER_CALL,
        "elapsed_s": time.perf_counter() - t0,
        "comparison": comp.to_json(),
        "notes": notes,
        "ratios": {},
    }
    for a in cases:
        for b in ("floor: bound once", "floor: cached children"):
            if a != b:
                res["ratios"][f"{a} / {b}"] = comp.ratio(a, b)
    for a in ("ours: record_call", "ours: start_call..finish"):
        if a in cases:
            for b in ("otel sdk (cached attrs)", "otel sdk (attrs per call)"):
                res["ratios"][f"{b} / {a}"] = comp.ratio(b, a)
    otel.shutdown()
    otel2.shutdown()
    H.emit(res)


if __name__ == "__main__":
    sys.exit(main())
