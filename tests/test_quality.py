"""Quality signals of seed 000's QualityMonitor: the opt-in hedging detector ("hallucination
markers") and evaluation scores, recorded per call and through record_score."""

from __future__ import annotations

import math

import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion

import llm_exporter
from llm_exporter import contract, metrics, track
from llm_exporter.quality import (
    DEFAULT_HEDGING_PATTERNS,
    HedgingDetector,
    RefusalDetector,
    record_eval_failure,
    record_score,
    text_scan_enabled,
)
from llm_exporter.testing import fresh_registry, sample_value
from llm_exporter.tracking import start_call

OA = dict(provider="openai", model="gpt-4o-mini", feature="unknown", operation="chat")
AN = dict(provider="anthropic", model="claude-haiku-4-5", feature="unknown", operation="messages")


def v(reg, name, **labels):
    return sample_value(reg, name, labels)


def chat_completion(text: str) -> ChatCompletion:
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    })


def anthropic_message(text: str) -> Message:
    return Message.model_validate({
        "id": "m1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 4},
    })


# --- the hedging detector ----------------------------------------------------------------------


def test_default_patterns_are_seed_000s_hallucination_markers_as_whole_words():
    d = HedgingDetector()
    assert d.patterns == DEFAULT_HEDGING_PATTERNS
    for text in ("I think the order shipped.", "i believe so", "It will probably arrive Monday.",
                 "The cause might be the cache.", "I'm not sure about that.", "I\u2019m not sure.",
                 "As far as I know, yes."):
        assert d.is_hedged(text), text
    for text in ("The order shipped on Monday.", "That is improbably fast.", "Think of the cache.",
                 "", None):
        assert not d.is_hedged(text), text


def test_only_the_start_is_scanned_and_patterns_are_configurable():
    d = HedgingDetector(scan_chars=100)
    assert d.is_hedged("x" * 80 + " probably")
    assert not d.is_hedged("x" * 100 + " probably")
    custom = HedgingDetector([r"\bperhaps\b"])
    assert custom.is_hedged("Perhaps.") and not custom.is_hedged("I think so.")
    with pytest.raises(ValueError, match="at least one pattern"):
        HedgingDetector([])
    with pytest.raises(ValueError, match="bad hedging pattern"):
        HedgingDetector(["("])
    with pytest.raises(ValueError, match="scan_chars"):
        HedgingDetector(scan_chars=0)


def test_configure_takes_true_a_detector_or_off_and_keeps_the_kinds_apart():
    fresh_registry(hedging_detector=True)
    assert isinstance(metrics.current().settings.hedging_detector, HedgingDetector)
    d = HedgingDetector([r"maybe"])
    fresh_registry(hedging_detector=d)
    assert metrics.current().settings.hedging_detector is d
    fresh_registry(hedging_detector=False)
    assert metrics.current().settings.hedging_detector is None
    with pytest.raises(TypeError, match="hedging_detector must be a HedgingDetector"):
        fresh_registry(hedging_detector=RefusalDetector())
    with pytest.raises(TypeError, match="refusal_detector must be a RefusalDetector"):
        fresh_registry(refusal_detector=HedgingDetector())
    fresh_registry()


def test_text_scan_enabled_when_either_detector_is_on():
    s = metrics.Settings(registry=None)
    assert text_scan_enabled(s) is False
    s.refusal_detector = RefusalDetector()
    assert text_scan_enabled(s) is True
    s.refusal_detector, s.hedging_detector = None, HedgingDetector()
    assert text_scan_enabled(s) is True
    assert text_scan_enabled(object()) is False  # fails closed on anything else, never raises
    fresh_registry(hedging_detector=True)
    assert text_scan_enabled(metrics.current().settings) is True
    fresh_registry()
    assert text_scan_enabled(metrics.current().settings) is False


def test_hedged_responses_counted_per_call_with_the_calls_labels():
    reg = fresh_registry(hedging_detector=True)
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I think your order ships tomorrow."))
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("Your order ships tomorrow."))
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages", feature="triage") as call:
        call.record_response(anthropic_message("It is probably a billing issue."))
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages") as call:
        call.record_response(anthropic_message("A billing issue."))
    assert v(reg, "llm_hedged_responses_total", **OA) == 1
    assert v(reg, "llm_hedged_responses_total", **dict(AN, feature="triage")) == 1
    # a path recorded with the detector on and no hedge: the series exists at 0
    assert v(reg, "llm_hedged_responses_total", **AN) == 0
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 2


def test_streams_run_the_hedging_detector_on_the_text_given_to_check_refusal():
    reg = fresh_registry(hedging_detector=True)  # the refusal detector is off
    call = start_call("openai", "gpt-4o-mini", stream=True)
    call.first_token()
    assert call.check_refusal("As far as I know the refund was approved.") is False  # no refusal detector
    call.finish()
    call = start_call("openai", "gpt-4o-mini", stream=True)
    call.check_refusal("The refund was approved.")
    call.finish()
    assert v(reg, "llm_hedged_responses_total", **OA) == 1
    assert v(reg, "llm_refusals_total", **OA) is None


def test_hedging_and_refusal_are_independent_flags():
    reg = fresh_registry(hedging_detector=True, refusal_detector=True)
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I cannot say; I think it is blue."))
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I cannot help with that."))
    with track(provider="openai", model="gpt-4o-mini", stream=True) as call:
        assert call.check_refusal("I'm unable to check, it might be blue.")
    assert v(reg, "llm_refusals_total", **OA) == 3
    assert v(reg, "llm_hedged_responses_total", **OA) == 2


def test_off_by_default_and_nothing_after_finish():
    reg = fresh_registry()
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I think so."))
    assert v(reg, "llm_hedged_responses_total", **OA) is None
    reg = fresh_registry(hedging_detector=True)
    call = start_call("openai", "gpt-4o-mini", stream=True)
    call.finish()
    call.check_refusal("I think so.")  # too late: the call was decided at finish
    assert v(reg, "llm_hedged_responses_total", **OA) == 0


def test_a_broken_detector_fails_open(caplog):
    class Broken(HedgingDetector):
        def is_hedged(self, text):
            raise RuntimeError("boom")

    reg = fresh_registry(hedging_detector=Broken())
    with track(provider="openai", model="gpt-4o-mini", stream=True) as call:
        call.check_refusal("I think so.")
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I think so."))
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 2
    assert v(reg, "llm_hedged_responses_total", **OA) == 0
    assert "refusal detection failed" in caplog.text  # check_refusal's kind of failure
    assert "reading an LLM response failed" in caplog.text


def test_hedging_text_never_becomes_a_label():
    reg = fresh_registry(hedging_detector=True)
    with track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion("I believe the secret code is 1234."))
    for family in reg.collect():
        for s in family.samples:
            assert not any("secret" in str(val) for val in s.labels.values())


# --- evaluation scores --------------------------------------------------------------------------


def test_buckets_fit_0_to_1_scores():
    spec = contract.METRICS_BY_NAME["llm_eval_score"]
    assert spec.type == "histogram" and spec.buckets == contract.EVAL_SCORE_BUCKETS
    assert spec.buckets[0] == 0.0 and spec.buckets[-1] == 1.0 and 0.5 in spec.buckets
    assert set(spec.labels) == {"provider", "model", "feature", "evaluator"}
    assert contract.METRICS_BY_NAME["llm_eval_failures_total"].labels == ("evaluator", "reason")
    assert contract.CLOSED_LABEL_VALUES["reason"] == ("not_a_number", "out_of_range", "judge_error")


def test_record_score_observes_with_the_evaluated_calls_labels():
    reg = fresh_registry()
    lab = dict(provider="openai", model="gpt-4o-mini", feature="search", evaluator="factual_accuracy")
    record_score("factual_accuracy", 0.8, provider="openai", model="gpt-4o-mini", feature="search")
    record_score("factual_accuracy", 0, provider="openai", model="gpt-4o-mini", feature="search")
    with llm_exporter.feature("search"):
        record_score("factual_accuracy", 1.0, provider="openai", model="gpt-4o-mini")
    assert v(reg, "llm_eval_score_count", **lab) == 3
    assert v(reg, "llm_eval_score_sum", **lab) == pytest.approx(1.8)
    assert v(reg, "llm_eval_score_bucket", **lab, le="0.0") == 1
    assert v(reg, "llm_eval_score_bucket", **lab, le="0.75") == 1
    assert v(reg, "llm_eval_score_bucket", **lab, le="0.8") == 2
    assert v(reg, "llm_eval_score_bucket", **lab, le="0.95") == 2
    assert v(reg, "llm_eval_score_bucket", **lab, le="1.0") == 3
    assert v(reg, "llm_eval_score_bucket", **lab, le="+Inf") == 3


@pytest.mark.parametrize("bad, exc", [(1.01, ValueError), (-0.1, ValueError), (math.nan, ValueError),
                                      (math.inf, ValueError), ("0.5", TypeError), (True, TypeError),
                                      (None, TypeError)])
def test_record_score_rejects_values_outside_0_1(bad, exc):
    reg = fresh_registry()
    with pytest.raises(exc):
        record_score("factual_accuracy", bad, provider="openai", model="gpt-4o-mini")
    assert v(reg, "llm_eval_score_count", provider="openai", model="gpt-4o-mini", feature="unknown",
             evaluator="factual_accuracy") is None


def test_evaluator_names_are_bounded_by_the_guard():
    reg = fresh_registry(label_limits={"evaluator": 2})
    for name in ("factual_accuracy", "helpfulness", "tone", "style"):
        record_score(name, 0.5, provider="openai", model="gpt-4o-mini")
    base = dict(provider="openai", model="gpt-4o-mini", feature="unknown")
    assert v(reg, "llm_eval_score_count", **base, evaluator="helpfulness") == 1
    assert v(reg, "llm_eval_score_count", **base, evaluator="tone") is None
    assert v(reg, "llm_eval_score_count", **base, evaluator=contract.OVERFLOW_VALUE) == 2
    assert v(reg, "llm_label_overflow_total", label="evaluator") == 2
    fresh_registry()


def test_default_evaluator_budget_is_20():
    from llm_exporter.labels import DEFAULT_LIMITS

    assert DEFAULT_LIMITS["evaluator"] == 20


def test_eval_failures_counted_by_closed_reason():
    reg = fresh_registry()
    record_eval_failure("factual_accuracy", "not_a_number")
    record_eval_failure("factual_accuracy", "not_a_number")
    record_eval_failure("factual_accuracy", "judge_error")
    assert v(reg, "llm_eval_failures_total", evaluator="factual_accuracy", reason="not_a_number") == 2
    assert v(reg, "llm_eval_failures_total", evaluator="factual_accuracy", reason="judge_error") == 1
    with pytest.raises(ValueError, match="reason must be one of"):
        record_eval_failure("factual_accuracy", "bad answer text")


def test_recording_a_score_fails_open_when_metrics_break(monkeypatch, caplog):
    fresh_registry()
    m = metrics.current()
    monkeypatch.setitem(m.families, "llm_eval_score", None)  # .labels() raises AttributeError
    record_score("factual_accuracy", 0.5, provider="openai", model="gpt-4o-mini")
    assert "recording an evaluation score failed" in caplog.text


def test_hedging_and_scores_in_multiprocess_mode(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR the per-call hedging count and the scores are file-backed
    prometheus-client values; two workers' values add up."""
    import os
    import subprocess
    import sys
    import textwrap

    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    worker = textwrap.dedent("""
        from llm_exporter import configure, record_score, track
        configure(hedging_detector=True)
        for text in ("I think it shipped.", "It shipped."):
            with track(provider="openai", model="gpt-4o-mini", stream=True) as call:
                call.check_refusal(text)
        record_score("factual_accuracy", 0.6, provider="openai", model="gpt-4o-mini")
    """)
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    for _ in range(2):
        subprocess.run([sys.executable, "-c", worker], env=env, check=True, timeout=60)
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(tmp_path))
    assert v(reg, "llm_hedged_responses_total", **OA) == 2
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 4
    score = dict(provider="openai", model="gpt-4o-mini", feature="unknown", evaluator="factual_accuracy")
    assert v(reg, "llm_eval_score_count", **score) == 2
    assert v(reg, "llm_eval_score_sum", **score) == pytest.approx(1.2)
