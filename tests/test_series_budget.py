"""A series budget a fleet can afford: per-replica samples at the reference cardinality, the cap on
label sets, and the switch that puts the feature back on histograms."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from llm_exporter import exposition, record_call
from llm_exporter.testing import fresh_registry

ROOT = Path(__file__).resolve().parent.parent
#: the budget at 20 models x 50 features, every token type, streams (issue: at most 25,000 samples, 3 MB)
MAX_SAMPLES, MAX_BYTES = 25_000, 3_000_000


def _measure():
    spec = importlib.util.spec_from_file_location("measure_series", ROOT / "scripts" / "measure_series.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.measure


def test_one_replica_at_the_reference_cardinality_stays_within_the_budget():
    measure = _measure()
    for outcomes in (False, True):  # also truncations, tool calls, retries and timeouts per pair
        m = measure(outcomes)
        assert m["models"] * m["features"] == 1000
        assert m["llm_samples"] <= MAX_SAMPLES, m["by_family"]
        assert m["scrape_bytes"] <= MAX_BYTES
    # the histograms are per (provider, model, operation): 20 label sets, not 1,000
    assert m["by_family"]["llm_request_duration_seconds"] == 20 * (len_buckets("llm_request_duration_seconds") + 2)


def len_buckets(name: str) -> int:
    from llm_exporter import contract

    return len(contract.METRICS_BY_NAME[name].buckets) + 1  # + the +Inf bucket


def labels_of(reg, family: str) -> list[dict[str, str]]:
    body = exposition.generate_latest(reg).decode()
    return [s.labels for f in text_string_to_metric_families(body) if f.name == family for s in f.samples]


def test_the_cap_on_label_sets_folds_the_feature_of_new_label_sets_and_counts_them():
    reg = fresh_registry(label_limits={"label_sets": 3})
    for i in range(5):
        record_call(provider="openai", model="gpt-4o-mini", feature=f"f{i}", duration_s=0.2, input_tokens=5,
                    output_tokens=2)
    record_call(provider="openai", model="gpt-4o-mini", feature="f0", duration_s=0.2)  # an admitted one stays
    features = {lb["feature"]: v for lb, v in
                ((s.labels, s.value) for f in text_string_to_metric_families(exposition.generate_latest(reg).decode())
                 if f.name == "llm_requests" for s in f.samples)
                if lb["finish_reason"] == "stop"}
    assert features == {"f0": 2.0, "f1": 1.0, "f2": 1.0, "__overflow__": 2.0}
    assert reg.get_sample_value("llm_label_overflow_total", {"label": "label_sets"}) == 2.0
    # the folded calls' tokens and cost are kept, under the overflow label set
    lab = dict(provider="openai", model="gpt-4o-mini", feature="__overflow__", operation="chat")
    assert reg.get_sample_value("llm_tokens_total", dict(lab, token_type="input")) == 10.0


def test_feature_histograms_puts_the_feature_back_on_every_histogram():
    for detail in (False, True):
        reg = fresh_registry(feature_histograms=detail)
        record_call(provider="anthropic", model="claude-haiku-4-5", feature="triage", operation="messages",
                    duration_s=0.4, input_tokens=10, output_tokens=3, time_to_first_token_s=0.1)
        for family in ("llm_request_duration_seconds", "llm_time_to_first_token_seconds",
                       "llm_time_per_output_token_seconds", "llm_tokens_per_request"):
            labels = labels_of(reg, family)
            assert labels, family
            assert all(("feature" in lb) is detail for lb in labels), (family, detail)
            if detail:
                assert {lb["feature"] for lb in labels} == {"triage"}


def test_a_bad_label_set_cap_is_refused():
    import pytest

    for bad in (0, -1, 2.5, "100"):
        with pytest.raises(ValueError, match="label_sets"):
            fresh_registry(label_limits={"label_sets": bad})
    fresh_registry()  # a later configure works


def test_fresh_registry_resets_feature_histograms_to_the_default():
    from llm_exporter.config import settings

    fresh_registry(feature_histograms=True)
    assert settings().feature_histograms
    fresh_registry()
    assert not settings().feature_histograms
