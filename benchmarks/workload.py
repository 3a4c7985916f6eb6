"""The benchmark workload and the floors it is compared against.

One "recorded call" is every metric update the contract makes for a finished,
streamed chat call with all token types present:

* ``llm_in_flight_requests`` +1 at start, -1 at the end (2 gauge updates)
* ``llm_requests_total{finish_reason}`` +1
* ``llm_request_duration_seconds``, ``llm_time_to_first_token_seconds``,
  ``llm_time_per_output_token_seconds``: one observation each
* ``llm_tokens_total{token_type}`` for the 5 disjoint token types
* ``llm_tokens_per_request{direction}``: input and output
* ``llm_cost_usd_total`` +cost
* ``llm_cache_savings_usd_total`` +savings (the call read cached input)

= 15 updates (14 if the contract has no cache-savings counter). The floors do
exactly these updates with prometheus-client (or the OpenTelemetry SDK) and
nothing else: no argument checks, no normalisation, no cardinality guard, no
pricing. (``record_call`` records a finished call: no in-flight updates, 13.)
"""

from __future__ import annotations

import itertools
import random
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from llm_exporter import contract as C

# --- label sets ------------------------------------------------------------------

#: Model ids used by the benchmarks. Real, priced ids so that our path also
#: pays for its price lookup (an unpriced model would add an update).
OPENAI_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o3", "o4-mini",
                 "gpt-5", "gpt-5-mini", "gpt-5-nano", "o3-mini", "o1", "gpt-4-turbo", "gpt-3.5-turbo",
                 "gpt-4")
ANTHROPIC_MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5", "claude-sonnet-4-0",
                    "claude-opus-4-0", "claude-3-7-sonnet-latest", "claude-3-5-haiku-latest",
                    "claude-3-haiku-20240307", "claude-opus-4-5", "claude-sonnet-4-20250514",
                    "claude-opus-4-20250514", "claude-3-5-sonnet-20241022", "claude-3-opus-20240229",
                    "claude-3-5-haiku-20241022", "claude-opus-4-1-20250805")


def provider_of(model: str) -> str:
    return "anthropic" if model.startswith("claude") else "openai"


def label_sets(n_models: int = 30, n_features: int = 50, seed: int = 7) -> list[tuple[str, str, str, str]]:
    """(provider, model, feature, operation) tuples, ``n_models x n_features``, shuffled.

    30 x 50 = 1,500 label sets, the "~1,500 label sets" of the cached floor.
    """
    models = [m for pair in zip(OPENAI_MODELS, ANTHROPIC_MODELS) for m in pair][:n_models]
    feats = [f"feature_{i:02d}" for i in range(n_features)]
    sets = [(provider_of(m), m, f, "chat") for m in models for f in feats]
    random.Random(seed).shuffle(sets)
    return sets


def cycle(sets: list[tuple[str, str, str, str]]) -> Iterator[tuple[str, str, str, str]]:
    return itertools.cycle(sets)


def rotating(record: Callable[[str, str, str, str], Any],
             sets: list[tuple[str, str, str, str]]) -> Callable[[int], None]:
    """Record every label set once (steady state: series exist, caches are warm), then return
    ``run(n)``: ``n`` calls of ``record``, rotating over the label sets."""
    for s in sets:
        record(*s)
    it = cycle(sets)

    def run(n: int) -> None:
        nxt = it.__next__
        rec = record
        for _ in range(n):
            p, m, f, o = nxt()
            rec(p, m, f, o)

    return run


# --- the values of one streamed chat call -------------------------------------------

DURATION_S = 1.8
TTFT_S = 0.35
# Provider semantics (OpenAI style): input includes cached reads/writes,
# output includes reasoning. Disjoint split below is what the floors add.
INPUT_TOKENS = 1200
CACHE_READ_TOKENS = 200
CACHE_WRITE_TOKENS = 100
OUTPUT_TOKENS = 300
REASONING_TOKENS = 50
TPOT_S = (DURATION_S - TTFT_S) / (OUTPUT_TOKENS - 1)
COST_USD = 0.00123
SAVINGS_USD = 0.00045
#: the contract's cache-savings counter, if it has one (added after the first benchmarks)
HAS_SAVINGS = "llm_cache_savings_usd_total" in C.METRICS_BY_NAME
UPDATES_PER_CALL = 14 + HAS_SAVINGS
#: disjoint token types (contract.TOKEN_TYPES order): input, cache_read, cache_write, output, reasoning
DISJOINT = (INPUT_TOKENS - CACHE_READ_TOKENS - CACHE_WRITE_TOKENS, CACHE_READ_TOKENS, CACHE_WRITE_TOKENS,
            OUTPUT_TOKENS - REASONING_TOKENS, REASONING_TOKENS)

RECORD_KW: dict[str, Any] = dict(
    duration_s=DURATION_S, input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS,
    cache_read_tokens=CACHE_READ_TOKENS, cache_write_tokens=CACHE_WRITE_TOKENS,
    reasoning_tokens=REASONING_TOKENS, finish_reason="stop", time_to_first_token_s=TTFT_S,
)


# --- prometheus-client floors ----------------------------------------------------------

def _spec(name: str) -> C.MetricSpec:
    return C.METRICS_BY_NAME[name]


class PromMetrics:
    """The contract's metrics for one streamed chat call, as plain prometheus-client objects."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r

        def counter(name: str) -> Counter:
            s = _spec(name)
            return Counter(s.base_name, s.help, s.labels, registry=r)

        def hist(name: str) -> Histogram:
            s = _spec(name)
            return Histogram(s.name, s.help, s.labels, buckets=s.buckets, registry=r)

        # the histograms' common labels, as the contract in use has them (per feature before the series
        # budget, per provider/model/operation since)
        self.hist_labels = tuple(lb for lb in _spec("llm_request_duration_seconds").labels if lb in C.COMMON_LABELS)

        s = _spec("llm_in_flight_requests")
        self.in_flight = Gauge(s.name, s.help, s.labels, registry=r)
        self.requests = counter("llm_requests_total")
        self.duration = hist("llm_request_duration_seconds")
        self.ttft = hist("llm_time_to_first_token_seconds")
        self.tpot = hist("llm_time_per_output_token_seconds")
        self.tokens = counter("llm_tokens_total")
        self.tokens_per_req = hist("llm_tokens_per_request")
        self.cost = counter("llm_cost_usd_total")
        self.savings = counter("llm_cache_savings_usd_total") if HAS_SAVINGS else None

    def bind(self, provider: str, model: str, feature: str, operation: str,
             finish_reason: str = "stop") -> tuple:
        """All children one call touches, resolved once."""
        lv = (provider, model, feature, operation)
        values = dict(zip(C.COMMON_LABELS, lv))
        hv = tuple(values[lb] for lb in self.hist_labels)
        return (
            self.in_flight.labels(provider, model, feature),
            self.requests.labels(*lv, finish_reason),
            self.duration.labels(*hv),
            self.ttft.labels(*hv),
            self.tpot.labels(*hv),
            tuple(self.tokens.labels(*lv, t) for t in C.TOKEN_TYPES),
            self.tokens_per_req.labels(*hv, "input"),
            self.tokens_per_req.labels(*hv, "output"),
            self.cost.labels(*lv),
            self.savings.labels(*lv) if self.savings is not None else None,
        )


def apply(children: tuple) -> None:
    """The updates of one call on pre-bound children."""
    inflight, req, dur, ttft, tpot, toks, tin, tout, cost, savings = children
    inflight.inc()
    inflight.dec()
    req.inc()
    dur.observe(DURATION_S)
    ttft.observe(TTFT_S)
    tpot.observe(TPOT_S)
    for child, v in zip(toks, DISJOINT):
        child.inc(v)
    tin.observe(INPUT_TOKENS)
    tout.observe(OUTPUT_TOKENS)
    cost.inc(COST_USD)
    if savings is not None:
        savings.inc(SAVINGS_USD)


def floor_bound_once(m: PromMetrics) -> Callable[[int], None]:
    """Floor 1: children bound once for one label set (the absolute minimum)."""
    children = m.bind("openai", "gpt-4o-mini", "feature_00", "chat")
    apply_ = apply

    def run(n: int) -> None:
        for _ in range(n):
            apply_(children)

    return run


def floor_cached(m: PromMetrics, sets: list[tuple[str, str, str, str]]) -> Callable[[int], None]:
    """Floor 2: children cached in a dict keyed by the label tuple, ~1,500 label sets.

    What a well-written hand-rolled exporter does: one dict lookup per call,
    binding on a miss. All sets are bound before timing (steady state).
    """
    cache: dict[tuple[str, str, str, str], tuple] = {}
    apply_ = apply

    def record(provider: str, model: str, feature: str, operation: str) -> None:
        key = (provider, model, feature, operation)
        children = cache.get(key)
        if children is None:
            children = cache[key] = m.bind(*key)
        apply_(children)

    return rotating(record, sets)


def naive_labels(m: PromMetrics, sets: list[tuple[str, str, str, str]]) -> Callable[[int], None]:
    """Naive: ``.labels(**kw)`` resolved on every update (the seeds' style)."""

    def record(provider: str, model: str, feature: str, operation: str) -> None:
        kw = dict(provider=provider, model=model, feature=feature, operation=operation)
        hkw = {lb: kw[lb] for lb in m.hist_labels}
        m.in_flight.labels(provider=provider, model=model, feature=feature).inc()
        m.requests.labels(finish_reason="stop", **kw).inc()
        m.duration.labels(**hkw).observe(DURATION_S)
        m.ttft.labels(**hkw).observe(TTFT_S)
        m.tpot.labels(**hkw).observe(TPOT_S)
        for t, v in zip(C.TOKEN_TYPES, DISJOINT):
            m.tokens.labels(token_type=t, **kw).inc(v)
        m.tokens_per_req.labels(direction="input", **hkw).observe(INPUT_TOKENS)
        m.tokens_per_req.labels(direction="output", **hkw).observe(OUTPUT_TOKENS)
        m.cost.labels(**kw).inc(COST_USD)
        if m.savings is not None:
            m.savings.labels(**kw).inc(SAVINGS_USD)
        m.in_flight.labels(provider=provider, model=model, feature=feature).dec()

    return rotating(record, sets)


# --- OpenTelemetry SDK equivalent --------------------------------------------------------

class OtelMetrics:
    """The same updates through the OpenTelemetry metrics API on the SDK.

    Histograms get the contract's buckets via the bucket advisory, so the SDK
    aggregates the same buckets. The reader is given by the caller
    (InMemoryMetricReader for the record path, PrometheusMetricReader for scrape).
    """

    def __init__(self, reader: Any) -> None:
        from opentelemetry.sdk.metrics import MeterProvider

        self.provider = MeterProvider(metric_readers=[reader])
        meter = self.provider.get_meter("llm-exporter-bench")

        def hist(name: str, unit: str) -> Any:
            s = _spec(name)
            return meter.create_histogram(name, unit=unit, description=s.help,
                                          explicit_bucket_boundaries_advisory=list(s.buckets))

        self.in_flight = meter.create_up_down_counter("llm_in_flight_requests")
        self.requests = meter.create_counter("llm_requests")
        self.duration = hist("llm_request_duration_seconds", "s")
        self.ttft = hist("llm_time_to_first_token_seconds", "s")
        self.tpot = hist("llm_time_per_output_token_seconds", "s")
        self.tokens = meter.create_counter("llm_tokens")
        self.tokens_per_req = hist("llm_tokens_per_request", "{token}")
        self.cost = meter.create_counter("llm_cost_usd")
        self.savings = meter.create_counter("llm_cache_savings_usd") if HAS_SAVINGS else None

    def shutdown(self) -> None:
        self.provider.shutdown()


def otel_attrs(provider: str, model: str, feature: str, operation: str,
               finish_reason: str = "stop") -> tuple:
    """Attribute dicts one call uses (what OTel code would build per call)."""
    base = {"provider": provider, "model": model, "feature": feature, "operation": operation}
    return (
        {"provider": provider, "model": model, "feature": feature},
        {**base, "finish_reason": finish_reason},
        base,
        tuple({**base, "token_type": t} for t in C.TOKEN_TYPES),
        {**base, "direction": "input"},
        {**base, "direction": "output"},
    )


def otel_record(m: OtelMetrics, attrs: tuple) -> None:
    inflight_a, req_a, base, tok_as, in_a, out_a = attrs
    m.in_flight.add(1, inflight_a)
    m.requests.add(1, req_a)
    m.duration.record(DURATION_S, base)
    m.ttft.record(TTFT_S, base)
    m.tpot.record(TPOT_S, base)
    for a, v in zip(tok_as, DISJOINT):
        m.tokens.add(v, a)
    m.tokens_per_req.record(INPUT_TOKENS, in_a)
    m.tokens_per_req.record(OUTPUT_TOKENS, out_a)
    m.cost.add(COST_USD, base)
    if m.savings is not None:
        m.savings.add(SAVINGS_USD, base)
    m.in_flight.add(-1, inflight_a)


def otel_cached_attrs(m: OtelMetrics, sets: list[tuple[str, str, str, str]]) -> Callable[[int], None]:
    """OTel SDK, attribute dicts cached per label set (OTel's best case)."""
    cache = {s: otel_attrs(*s) for s in sets}
    for s in sets:
        otel_record(m, cache[s])
    it = cycle(sets)

    def run(n: int) -> None:
        nxt = it.__next__
        for _ in range(n):
            otel_record(m, cache[nxt()])

    return run


def otel_fresh_attrs(m: OtelMetrics, sets: list[tuple[str, str, str, str]]) -> Callable[[int], None]:
    """OTel SDK, attribute dicts built per call (how instrumentations use it)."""
    for s in sets:
        otel_record(m, otel_attrs(*s))
    it = cycle(sets)

    def run(n: int) -> None:
        nxt = it.__next__
        for _ in range(n):
            otel_record(m, otel_attrs(*nxt()))

    return run
