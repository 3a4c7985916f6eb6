"""Numbers that cannot poison a counter (issue 19, point 3).

Every value that could make a counter or a histogram sum non-finite is rejected with the
documented ValueError/TypeError before anything is applied (all or nothing); a computed cost
that is not finite (or above the per-call bound) counts the call as unpriced.
"""

from __future__ import annotations

import logging
import math

import pytest
from llm_exporter import record_call, record_ratelimit, track
from llm_exporter.normalise import MAX_COST_USD, MAX_SECONDS, MAX_TOKENS
from llm_exporter.testing import fresh_registry

LAB = dict(provider="openai", model="gpt-4o", feature="unknown", operation="chat")
FAMILIES = ("llm_requests_total", "llm_tokens_total", "llm_cost_usd_total", "llm_request_duration_seconds",
            "llm_time_to_first_token_seconds", "llm_tokens_per_request", "llm_unpriced_requests_total",
            "llm_retries_total", "llm_cache_savings_usd_total")


def snapshot(registry) -> dict:
    """Every llm_* sample (name, labels) -> value."""
    out = {}
    for fam in registry.collect():
        if fam.name.startswith("llm_") and fam.name != "llm_exporter_info":
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def all_finite(registry) -> bool:
    return all(math.isfinite(v) for v in snapshot(registry).values())


GOOD = dict(provider="openai", model="gpt-4o", duration_s=1.0, input_tokens=100, output_tokens=10)


@pytest.mark.parametrize("bad, message", [
    (dict(duration_s=10**400), r"duration_s must be a finite number >= 0 and <= 1e\+09, got an int of 1329 bits"),
    (dict(duration_s=1e300), r"duration_s must be a finite number >= 0 and <= 1e\+09, got 1e\+300"),
    (dict(duration_s=float("inf")), r"duration_s must be a finite number >= 0 and <= 1e\+09, got inf"),
    (dict(time_to_first_token_s=10**400), r"time_to_first_token_s must be a finite number >= 0 and <= 1e\+09"),
    (dict(input_tokens=10**308), r"input_tokens must be <= 1000000000000000, got an int of 1024 bits"),
    (dict(input_tokens=10**400, cost_usd=1.0), r"input_tokens must be <= 1000000000000000, got an int of 1329 bits"),
    (dict(output_tokens=1e300), r"output_tokens must be <= 1000000000000000, got 1e\+300"),
    (dict(cache_read_tokens=MAX_TOKENS + 1, input_tokens=MAX_TOKENS + 1),
     r"input_tokens must be <= 1000000000000000, got 1000000000000001"),
    (dict(cost_usd=10**400), r"cost_usd must be a finite number >= 0 and <= 1e\+09, got an int of 1329 bits"),
    (dict(cost_usd=1e300), r"cost_usd must be a finite number >= 0 and <= 1e\+09, got 1e\+300"),
    (dict(cost_usd=float("nan")), r"cost_usd must be a finite number >= 0 and <= 1e\+09, got nan"),
])
def test_record_call_rejects_values_that_would_poison_a_counter_before_applying_anything(reg, bad, message):
    record_call(**GOOD)
    before = snapshot(reg)
    with pytest.raises(ValueError, match=message):
        record_call(**{**GOOD, **bad})
    assert snapshot(reg) == before  # all or nothing: not even llm_requests_total moved
    assert all_finite(reg)


def test_bounds_themselves_are_accepted(reg):
    record_call(provider="openai", model="gpt-4o", duration_s=MAX_SECONDS, input_tokens=MAX_TOKENS,
                output_tokens=MAX_TOKENS, time_to_first_token_s=1.0)
    record_call(provider="openai", model="gpt-4o", duration_s=float(MAX_SECONDS), input_tokens=1,
                cost_usd=MAX_COST_USD)
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="stop")) == 2
    assert reg.get_sample_value("llm_tokens_total", dict(LAB, token_type="input")) == MAX_TOKENS + 1
    # 1e15 input at 2.5 $/M + 1e15 output at 10 $/M = 1.25e10 $: above the bound, so unpriced, never added
    assert reg.get_sample_value("llm_cost_usd_total", LAB) == MAX_COST_USD
    assert reg.get_sample_value("llm_unpriced_requests_total", dict(provider="openai", model="gpt-4o")) == 1
    assert all_finite(reg)


def test_computed_cost_that_is_not_finite_counts_as_unpriced(tmp_path, caplog):
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  pricey: {input: 1.0e+300, output: 1.0e+300, cache_read: 1.0e+300}\n")
    reg = fresh_registry(pricing=prices)
    lab = dict(LAB, model="pricey")
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        for _ in range(3):  # 1e15 tokens * 1e300 $/M = +Inf each time
            record_call(provider="openai", model="pricey", duration_s=1.0, input_tokens=MAX_TOKENS,
                        cache_read_tokens=10, output_tokens=5)
    assert reg.get_sample_value("llm_cost_usd_total", lab) == 0.0
    assert reg.get_sample_value("llm_cache_savings_usd_total", lab) is None
    assert reg.get_sample_value("llm_unpriced_requests_total", dict(provider="openai", model="pricey")) == 3
    assert reg.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 3
    assert reg.get_sample_value("llm_tokens_total", dict(lab, token_type="input")) == 3 * (MAX_TOKENS - 10)
    assert all_finite(reg)
    assert [r.getMessage() for r in caplog.records] == [
        "llm_exporter: computed cost inf for model ('pricey',) out of range; counted as unpriced"]


def test_call_paths_never_apply_an_out_of_range_value(reg, caplog):
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        with track(provider="openai", model="gpt-4o") as call:
            call.set_usage(input_tokens=10**400, output_tokens=5)
            call.add_retries(10**400)
        with track(provider="openai", model="gpt-4o") as call:
            call.record_usage({"prompt_tokens": 1e300, "completion_tokens": 7})
        with track(provider="openai", model="gpt-4o") as call:
            call.set_usage(input_tokens=100, output_tokens=10)
    # each call counted; the absurd usage and retries dropped (usage unknown), never half-applied
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="stop")) == 3
    assert reg.get_sample_value("llm_tokens_total", dict(LAB, token_type="input")) == 100
    assert reg.get_sample_value("llm_tokens_total", dict(LAB, token_type="output")) == 10
    assert reg.get_sample_value("llm_retries_total", LAB) == 0
    assert reg.get_sample_value("llm_cost_usd_total", LAB) == pytest.approx((100 * 2.5 + 10 * 10.0) / 1e6)
    assert reg.get_sample_value("llm_in_flight_requests", dict(provider="openai", model="gpt-4o",
                                                                feature="unknown")) == 0
    assert all_finite(reg)
    messages = [r.getMessage() for r in caplog.records]
    assert "llm_exporter: token count above 1000000000000000; the call's usage was dropped" in messages


def test_ratelimit_values_beyond_the_float_range_are_ignored(reg, caplog):
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        record_ratelimit("openai", "gpt-4o", "requests", remaining=10**400, limit=5)
    labels = dict(provider="openai", model="gpt-4o", resource="requests")
    assert reg.get_sample_value("llm_ratelimit_limit", labels) == 5
    assert reg.get_sample_value("llm_ratelimit_remaining", labels) is None
    assert caplog.records == []  # an ignored header value, not a failure
