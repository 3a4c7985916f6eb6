"""record_call: exact samples for every metric, token semantics, cost, validation."""

import math

import pytest

from llm_exporter import contract, feature, record_call
from llm_exporter.quality import record_feedback
from llm_exporter.recorder import record_ratelimit
from llm_exporter.testing import fresh_registry, sample_value


OA = dict(provider="openai", model="gpt-4o", feature="search", operation="chat")
AN = dict(provider="anthropic", model="claude-sonnet-4-5", feature="search", operation="messages")


def v(reg, name, **labels):
    return sample_value(reg, name, labels)


def tokens(reg, labels):
    return {t: v(reg, "llm_tokens_total", **labels, token_type=t) for t in contract.TOKEN_TYPES}


def test_openai_usage_with_cached_and_reasoning_tokens_splits_into_disjoint_types(reg):
    # OpenAI semantics: prompt_tokens includes cached and cache-write tokens,
    # completion_tokens includes reasoning tokens.
    record_call(**OA, duration_s=1.2, input_tokens=1000, cache_read_tokens=200, cache_write_tokens=50,
                output_tokens=500, reasoning_tokens=100)
    assert tokens(reg, OA) == {"input": 750, "cache_read": 200, "cache_write": 50, "output": 400, "reasoning": 100}
    assert sum(tokens(reg, OA).values()) == 1500  # adds up to the billed total
    # gpt-4o: input 2.50, cache_read 1.25, cache_write 2.50, output 10.00 per 1M; reasoning at output rate
    expected = (750 * 2.50 + 200 * 1.25 + 50 * 2.50 + 500 * 10.00) / 1e6
    assert v(reg, "llm_cost_usd_total", **OA) == pytest.approx(expected)
    assert v(reg, "llm_tokens_per_request_sum", **OA, direction="input") == 1000
    assert v(reg, "llm_tokens_per_request_sum", **OA, direction="output") == 500
    assert v(reg, "llm_tokens_per_request_bucket", **OA, direction="input", le="1000.0") == 1
    assert v(reg, "llm_tokens_per_request_bucket", **OA, direction="input", le="500.0") == 0
    assert v(reg, "llm_unpriced_requests_total", provider="openai", model="gpt-4o") is None
    # 200 cache reads billed at 1.25 instead of 2.50 per 1M
    assert v(reg, "llm_cache_savings_usd_total", **OA) == pytest.approx(200 * (2.50 - 1.25) / 1e6)


def test_anthropic_usage_with_cache_read_and_write_is_additive(reg):
    # Anthropic semantics: input_tokens excludes cache reads and writes.
    record_call(**AN, duration_s=2.0, input_tokens=10, cache_read_tokens=1000, cache_write_tokens=100,
                output_tokens=20, reasoning_tokens=5)
    assert tokens(reg, AN) == {"input": 10, "cache_read": 1000, "cache_write": 100, "output": 15, "reasoning": 5}
    assert v(reg, "llm_tokens_per_request_sum", **AN, direction="input") == 1110
    assert v(reg, "llm_tokens_per_request_sum", **AN, direction="output") == 20
    # claude-sonnet-4-5: input 3, cache_read 0.30, cache_write 3.75, output 15 per 1M
    expected = (10 * 3 + 1000 * 0.30 + 100 * 3.75 + 20 * 15) / 1e6
    assert v(reg, "llm_cost_usd_total", **AN) == pytest.approx(expected)
    assert v(reg, "llm_cache_savings_usd_total", **AN) == pytest.approx(1000 * (3.00 - 0.30) / 1e6)


def test_every_call_metric_has_exact_samples(reg):
    record_call(**OA, duration_s=3.0, input_tokens=100, output_tokens=11, time_to_first_token_s=1.0,
                finish_reason="length", attempt=1)
    record_call(**OA, duration_s=0.2, error_type="rate_limit", attempt=2)
    assert v(reg, "llm_requests_total", **OA, finish_reason="length") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="error") == 1
    assert v(reg, "llm_errors_total", **OA, error_type="rate_limit") == 1
    assert v(reg, "llm_request_duration_seconds_count", **OA) == 2
    assert v(reg, "llm_request_duration_seconds_sum", **OA) == pytest.approx(3.2)
    assert v(reg, "llm_request_duration_seconds_bucket", **OA, le="0.25") == 1
    assert v(reg, "llm_request_duration_seconds_bucket", **OA, le="2.5") == 1
    assert v(reg, "llm_request_duration_seconds_bucket", **OA, le="5.0") == 2
    assert v(reg, "llm_time_to_first_token_seconds_count", **OA) == 1
    assert v(reg, "llm_time_to_first_token_seconds_sum", **OA) == 1.0
    # TPOT = (3.0 - 1.0) / (11 - 1) = 0.2
    assert v(reg, "llm_time_per_output_token_seconds_sum", **OA) == pytest.approx(0.2)
    assert v(reg, "llm_time_per_output_token_seconds_bucket", **OA, le="0.15") == 0
    assert v(reg, "llm_time_per_output_token_seconds_bucket", **OA, le="0.25") == 1
    assert v(reg, "llm_retries_total", **OA) == 2  # attempts 1 and 2 are retries
    assert v(reg, "llm_in_flight_requests", provider="openai", model="gpt-4o", feature="search") == 0
    # the failed call reported no usage: no token observation for it
    assert v(reg, "llm_tokens_per_request_count", **OA, direction="input") == 1
    assert v(reg, "llm_exporter_info", version="0.1.0", pricing_version="2025.12.1") == 1


def test_non_stream_call_has_no_ttft_series(reg):
    record_call(**OA, duration_s=1.0, input_tokens=5, output_tokens=5)
    assert v(reg, "llm_time_to_first_token_seconds_count", **OA) is None
    assert v(reg, "llm_time_per_output_token_seconds_count", **OA) is None


def test_unpriced_model_counts_and_adds_no_cost(reg):
    labels = dict(OA, model="my-finetune-v3")
    record_call(**labels, duration_s=1.0, input_tokens=10, output_tokens=10)
    record_call(**labels, duration_s=1.0, input_tokens=10, output_tokens=10)
    assert v(reg, "llm_unpriced_requests_total", provider="openai", model="my-finetune-v3") == 2
    assert v(reg, "llm_cost_usd_total", **labels) == 0
    assert v(reg, "llm_tokens_total", **labels, token_type="input") == 20


def test_explicit_cost_wins_over_price_table(reg):
    record_call(**OA, duration_s=1.0, input_tokens=1_000_000, output_tokens=0, cost_usd=0.5)
    assert v(reg, "llm_cost_usd_total", **OA) == 0.5
    record_call(**dict(OA, model="unpriced-x"), duration_s=1.0, input_tokens=5, cost_usd=0.25)
    assert v(reg, "llm_unpriced_requests_total", provider="openai", model="unpriced-x") == 0


def test_dated_model_label_kept_and_priced_via_alias(reg):
    labels = dict(OA, model="gpt-4o-2024-08-06")
    record_call(**labels, duration_s=1.0, input_tokens=1_000_000, output_tokens=0)
    assert v(reg, "llm_cost_usd_total", **labels) == pytest.approx(2.50)


def test_feature_context_and_explicit_argument(reg):
    base = dict(provider="openai", model="gpt-4o", operation="chat")
    record_call(**base, duration_s=0.1)
    with feature("checkout"):
        record_call(**base, duration_s=0.1)
        with feature("inner"):
            record_call(**base, duration_s=0.1)
        record_call(**base, feature="explicit", duration_s=0.1)
    for f in ("unknown", "checkout", "inner", "explicit"):
        assert v(reg, "llm_requests_total", **base, feature=f, finish_reason="stop") == 1, f


def test_closed_sets_map_unknown_strings_to_other(reg):
    record_call(**dict(OA, operation="Chat.Completions"), duration_s=0.1, finish_reason="end_turn")
    record_call(**dict(OA, operation="teleport"), duration_s=0.1, finish_reason="weird")
    record_call(**OA, duration_s=0.1, error_type="exploded")
    record_call(**OA, duration_s=0.1, finish_reason="max_tokens")
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 1
    assert v(reg, "llm_requests_total", **dict(OA, operation="other"), finish_reason="other") == 1
    assert v(reg, "llm_errors_total", **OA, error_type="other") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="length") == 1


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(duration_s=-1), ValueError, "duration_s"),
    (dict(duration_s=math.nan), ValueError, "duration_s"),
    (dict(duration_s="1"), TypeError, "duration_s"),
    (dict(duration_s=1, input_tokens=-5), ValueError, "input_tokens"),
    (dict(duration_s=1, output_tokens=math.nan), ValueError, "output_tokens"),
    (dict(duration_s=1, output_tokens=1.5), ValueError, "output_tokens"),
    (dict(duration_s=1, output_tokens="3"), TypeError, "output_tokens"),
    (dict(duration_s=1, finish_reason=3), TypeError, "finish_reason"),
    (dict(duration_s=1, error_type=429), TypeError, "error_type"),
    (dict(duration_s=1, time_to_first_token_s=2), ValueError, "time_to_first_token_s"),
    (dict(duration_s=1, input_tokens=10, cache_read_tokens=20), ValueError, "cache_read_tokens"),
    (dict(duration_s=1, output_tokens=1, reasoning_tokens=2), ValueError, "reasoning_tokens"),
    (dict(duration_s=1, attempt=-1), ValueError, "attempt"),
    (dict(duration_s=1, cost_usd=-0.1), ValueError, "cost_usd"),
])
def test_programmer_errors_raise_clearly_and_record_nothing(reg, kwargs, exc, words):
    with pytest.raises(exc, match=words):
        record_call(**OA, **kwargs)
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") is None


def test_label_types_are_checked(reg):
    with pytest.raises(TypeError, match="model"):
        record_call(provider="openai", model=None, duration_s=1)
    with pytest.raises(TypeError, match="feature"):
        record_call(provider="openai", model="m", feature=3, duration_s=1)


def test_error_type_accepts_an_exception_and_cancellation(reg):
    record_call(**OA, duration_s=1, error_type=TimeoutError("slow"))
    record_call(**OA, duration_s=1, error_type="cancelled")
    assert v(reg, "llm_errors_total", **OA, error_type="timeout") == 1
    assert v(reg, "llm_errors_total", **OA, error_type="cancelled") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="cancelled") == 1


def test_provider_is_case_insensitive_and_labels_sanitised(reg):
    record_call(provider=" OpenAI ", model="gpt-4o\n", feature="a" * 100, duration_s=1)
    assert v(reg, "llm_requests_total", provider="openai", model="gpt-4o", feature="a" * 64,
             operation="chat", finish_reason="stop") == 1
    record_call(provider="openai", model="", feature="  ", duration_s=1)
    assert v(reg, "llm_requests_total", provider="openai", model="unknown", feature="unknown",
             operation="chat", finish_reason="stop") == 1


def test_record_ratelimit_sets_gauges_and_ignores_garbage(reg):
    record_ratelimit("openai", "gpt-4o", "requests", remaining="499", limit="500")
    record_ratelimit("openai", "gpt-4o", "tokens", remaining=12000)
    record_ratelimit("openai", "gpt-4o", "tokens", remaining="n/a", limit=None)  # ignored
    record_ratelimit("openai", "gpt-4o", "bananas", remaining=1)  # unknown resource ignored
    lab = dict(provider="openai", model="gpt-4o")
    assert v(reg, "llm_ratelimit_remaining", **lab, resource="requests") == 499
    assert v(reg, "llm_ratelimit_limit", **lab, resource="requests") == 500
    assert v(reg, "llm_ratelimit_remaining", **lab, resource="tokens") == 12000
    assert v(reg, "llm_ratelimit_limit", **lab, resource="tokens") is None
    assert v(reg, "llm_ratelimit_remaining", **lab, resource="bananas") is None


def test_record_ratelimit_updates_cached_children_and_counts_every_overflow():
    reg = fresh_registry(label_limits={"model": 1})
    record_ratelimit("openai", "gpt-4o", "requests", remaining=499, limit=500)
    record_ratelimit("openai", "gpt-4o", "requests", remaining=498)  # same series, new value
    lab = dict(provider="openai", model="gpt-4o", resource="requests")
    assert v(reg, "llm_ratelimit_remaining", **lab) == 498
    assert v(reg, "llm_ratelimit_limit", **lab) == 500
    for remaining in (10, 9):  # past the model budget: folded, and counted each time
        record_ratelimit("openai", "gpt-4o-mini", "requests", remaining=remaining)
    folded = dict(lab, model=contract.OVERFLOW_VALUE)
    assert v(reg, "llm_ratelimit_remaining", **folded) == 9
    assert v(reg, "llm_label_overflow_total", label="model") == 2
    reg2 = fresh_registry()  # a new configuration starts with no cached children
    record_ratelimit("openai", "gpt-4o", "requests", remaining=7)
    assert v(reg2, "llm_ratelimit_remaining", **lab) == 7


def test_record_feedback(reg):
    for rating in (1, 2, 3, 4, 5, True, False, "positive"):
        record_feedback("search", "gpt-4o", rating)
    with feature("ctx"):
        record_feedback(None, "gpt-4o", "Neutral")
    lab = dict(feature="search", model="gpt-4o")
    assert v(reg, "llm_feedback_total", **lab, rating="negative") == 3
    assert v(reg, "llm_feedback_total", **lab, rating="neutral") == 1
    assert v(reg, "llm_feedback_total", **lab, rating="positive") == 4
    assert v(reg, "llm_feedback_total", feature="ctx", model="gpt-4o", rating="neutral") == 1
    for bad in (0, 6, "great", 2.5, None):
        with pytest.raises(ValueError, match="rating"):
            record_feedback("search", "gpt-4o", bad)


def test_created_series_off_by_default_and_switchable():
    from prometheus_client import generate_latest

    reg = fresh_registry()
    record_call(**OA, duration_s=1)
    assert b"_created" not in generate_latest(reg)
    reg = fresh_registry(created_series=True)
    record_call(**OA, duration_s=1)
    assert b"llm_requests_created" in generate_latest(reg)
    fresh_registry()  # back to the default (process-global switch)


def test_bucket_override(reg):
    reg = fresh_registry(buckets={"llm_request_duration_seconds": [1, 1000]})
    record_call(**OA, duration_s=700)
    assert v(reg, "llm_request_duration_seconds_bucket", **OA, le="1000.0") == 1
    assert v(reg, "llm_request_duration_seconds_bucket", **OA, le="1.0") == 0
    with pytest.raises(ValueError, match="not a histogram"):
        fresh_registry(buckets={"llm_requests_total": [1]})
    with pytest.raises(ValueError, match="increasing"):
        fresh_registry(buckets={"llm_request_duration_seconds": [5, 1]})


def test_feature_decorator_and_async_tasks(reg):
    import asyncio

    base = dict(provider="openai", model="gpt-4o", operation="chat")

    @feature("decorated")
    def sync_work():
        record_call(**base, duration_s=0.1)

    async def one():
        await asyncio.sleep(0)
        record_call(**base, duration_s=0.1)

    @feature("decorated-async")
    async def async_work():
        # tasks created inside inherit the feature through the copied context
        await asyncio.gather(*(asyncio.create_task(one()) for _ in range(3)))

    sync_work()
    asyncio.run(async_work())
    record_call(**base, duration_s=0.1)
    assert v(reg, "llm_requests_total", **base, feature="decorated", finish_reason="stop") == 1
    assert v(reg, "llm_requests_total", **base, feature="decorated-async", finish_reason="stop") == 3
    assert v(reg, "llm_requests_total", **base, feature="unknown", finish_reason="stop") == 1
    with pytest.raises(TypeError):
        feature(3)
