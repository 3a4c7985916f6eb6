"""Cardinality guard: budgets, overflow counting, sanitising, 1M distinct values."""

import gc
import sys
import tracemalloc

import pytest

from llm_exporter import contract, record_call
from llm_exporter.labels import LabelGuard
from llm_exporter.normalise import sanitise
from llm_exporter.testing import fresh_registry
from llm_exporter.tracking import start_call

OVERFLOW = contract.OVERFLOW_VALUE


def series(reg, metric, label):
    """Distinct values of ``label`` among the samples of ``metric``."""
    values = set()
    for fam in reg.collect():
        for s in fam.samples:
            if s.name == metric:
                values.add(s.labels[label])
    return values


def test_budget_folds_new_values_into_overflow_and_counts_them():
    reg = fresh_registry(label_limits={"feature": 3, "model": 2})
    for f in ("a", "b", "c", "d", "e", "a", "d"):
        record_call(provider="openai", model="gpt-4o", feature=f, duration_s=0.1)
    assert series(reg, "llm_requests_total", "feature") == {"a", "b", "c", OVERFLOW}
    assert reg.get_sample_value("llm_label_overflow_total", {"label": "feature"}) == 3  # d, e, d
    assert reg.get_sample_value("llm_requests_total", dict(provider="openai", model="gpt-4o", feature=OVERFLOW,
                                                           operation="chat", finish_reason="stop")) == 3
    for m in ("m1", "m2", "m3"):
        start_call("openai", m, "a").finish()
    assert series(reg, "llm_requests_total", "model") == {"gpt-4o", "m1", OVERFLOW}
    assert reg.get_sample_value("llm_label_overflow_total", {"label": "model"}) == 2
    assert reg.get_sample_value("llm_in_flight_requests", dict(provider="openai", model=OVERFLOW, feature="a")) == 0


def test_values_that_sanitise_equal_share_one_slot():
    guard = LabelGuard({"feature": 2})
    assert guard.resolve("feature", " search ") == "search"
    assert guard.resolve("feature", "search\n") == "search"
    assert guard.resolve("feature", "other") == "other"
    assert guard.distinct("feature") == 2
    assert guard.resolve("feature", "third") == OVERFLOW


def test_sanitise():
    assert sanitise("  ok  ") == "ok"
    assert sanitise("a\tb\nc\x00d") == "abcd"
    assert sanitise("x" * 200) == "x" * 64
    assert sanitise("") == "unknown" and sanitise("\n\t") == "unknown"
    assert sanitise(42) == "42"
    assert sanitise("ünïcode ✓") == "ünïcode ✓"


def test_bad_limits_rejected():
    with pytest.raises(ValueError, match="feature"):
        LabelGuard({"feature": 0})


def test_one_million_distinct_features_stay_within_budget_and_memory_is_flat():
    reg = fresh_registry()  # default feature budget: 200
    budget = 200
    n = 1_000_000
    # warm up: fill the budget and every cache, then measure allocations
    for i in range(20_000):
        record_call(provider="openai", model="gpt-4o", feature=f"user-feature-{i}", duration_s=0.1)
    gc.collect()
    blocks_before = sys.getallocatedblocks()
    tracemalloc.start()
    base, _ = tracemalloc.get_traced_memory()
    for i in range(20_000, 120_000):
        record_call(provider="openai", model="gpt-4o", feature=f"user-feature-{i}", duration_s=0.1)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    for i in range(120_000, n):
        record_call(provider="openai", model="gpt-4o", feature=f"user-feature-{i}", duration_s=0.1)
    gc.collect()
    blocks_after = sys.getallocatedblocks()

    # 100k more distinct values cost under 256 KiB at peak (the bounded raw-value cache)
    assert peak - base < 256 * 1024, (base, current, peak)
    # ...and 980k of them leave no lasting allocations behind
    assert blocks_after - blocks_before < 5_000, blocks_after - blocks_before
    features = series(reg, "llm_requests_total", "feature")
    assert len(features) == budget + 1 and OVERFLOW in features
    assert reg.get_sample_value("llm_label_overflow_total", {"label": "feature"}) == n - budget
    assert reg.get_sample_value("llm_requests_total", dict(provider="openai", model="gpt-4o", feature=OVERFLOW,
                                                           operation="chat", finish_reason="stop")) == n - budget
