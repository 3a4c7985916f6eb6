"""start_call / Call / track: streams, SDK response objects, errors, fail-open."""

import asyncio
import logging
import threading
import time

import anthropic
import httpx
try:  # the HTTP library the installed SDKs build on (httpx2 from openai 3 / anthropic 1 on)
    import httpx2
except ImportError:
    import httpx as httpx2
import openai
import pytest
from anthropic.types import Message
from openai.types.chat import ChatCompletion
#: anthropic >= 0.4x has a class for 529; earlier ones raise the plain status error
OverloadedError = getattr(anthropic, "OverloadedError", anthropic.APIStatusError)
try:  # the Responses API came with openai 1.66
    from openai.types.responses import Response
except ImportError:
    Response = None

import llm_exporter
from llm_exporter import feature, track
from llm_exporter.quality import RefusalDetector, text_scan_enabled
from llm_exporter.testing import fresh_registry, sample_value
from llm_exporter.tracking import start_call


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def v(reg, name, **labels):
    return sample_value(reg, name, labels)


OA = dict(provider="openai", model="gpt-4o-mini", feature="unknown", operation="chat")
AN = dict(provider="anthropic", model="claude-haiku-4-5", feature="unknown", operation="messages")
INFL = dict(provider="openai", model="gpt-4o-mini", feature="unknown")


def chat_completion(**usage):
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "finish_reason": "length",
                     "message": {"role": "assistant", "content": "Hello there"}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 300, "total_tokens": 1300,
                  "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
                  "completion_tokens_details": {"reasoning_tokens": 200}, **usage},
    })


def anthropic_message(text="Hi", stop_reason="end_turn"):
    return Message.model_validate({
        "id": "m1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": text}], "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 50, "output_tokens": 40, "cache_read_input_tokens": 2000,
                  "cache_creation_input_tokens": 300, "output_tokens_details": {"thinking_tokens": 10}},
    })


def responses_response(status="completed", output=None, incomplete=None):
    if Response is None:
        pytest.skip("the installed openai has no Responses API")
    return Response.model_validate({
        "id": "r1", "object": "response", "created_at": 0, "model": "gpt-4o-mini-2024-07-18",
        "status": status, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "incomplete_details": incomplete,
        "output": output if output is not None else [
            {"type": "message", "id": "o1", "role": "assistant", "status": "completed",
             "content": [{"type": "output_text", "text": "I cannot help with that.", "annotations": []}]}],
        "usage": {"input_tokens": 100, "output_tokens": 30, "total_tokens": 130,
                  "input_tokens_details": {"cached_tokens": 40, "cache_write_tokens": 10},
                  "output_tokens_details": {"reasoning_tokens": 20}},
    })


def test_stream_ttft_and_tpot_with_fake_clock(reg):
    clock = FakeClock()
    with track(provider="openai", model="gpt-4o-mini", stream=True, clock=clock) as call:
        assert v(reg, "llm_in_flight_requests", **INFL) == 1
        clock.t += 0.8
        call.first_token()
        clock.t += 0.1
        call.first_token()  # first call wins
        clock.t += 2.1  # ends at 3.0 s
        call.set_usage(input_tokens=50, output_tokens=101)
    assert v(reg, "llm_in_flight_requests", **INFL) == 0
    assert v(reg, "llm_request_duration_seconds_sum", **OA) == pytest.approx(3.0)
    assert v(reg, "llm_time_to_first_token_seconds_sum", **OA) == pytest.approx(0.8)
    assert v(reg, "llm_time_to_first_token_seconds_bucket", **OA, le="1.0") == 1
    assert v(reg, "llm_time_to_first_token_seconds_bucket", **OA, le="0.5") == 0
    # (3.0 - 0.8) / (101 - 1) = 0.022
    assert v(reg, "llm_time_per_output_token_seconds_sum", **OA) == pytest.approx(0.022)
    assert v(reg, "llm_time_per_output_token_seconds_bucket", **OA, le="0.03") == 1
    assert v(reg, "llm_time_per_output_token_seconds_bucket", **OA, le="0.02") == 0
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 1


def test_ttft_only_for_streams_and_tpot_needs_two_tokens(reg):
    clock = FakeClock()
    with track(provider="openai", model="gpt-4o-mini", clock=clock) as call:
        call.set_usage(output_tokens=5)  # no first token: not a stream
    with track(provider="openai", model="gpt-4o-mini", stream=True, clock=clock) as call:
        clock.t += 1
        call.first_token()
        call.set_usage(output_tokens=1)
    assert v(reg, "llm_time_to_first_token_seconds_count", **OA) == 1
    assert v(reg, "llm_time_per_output_token_seconds_count", **OA) is None


def test_record_response_openai_chat_completion(reg):
    with feature("summarise"), track(provider="openai", model="gpt-4o-mini") as call:
        call.record_response(chat_completion())
    lab = dict(OA, feature="summarise")
    tok = {t: v(reg, "llm_tokens_total", **lab, token_type=t)
           for t in ("input", "cache_read", "cache_write", "output", "reasoning")}
    assert tok == {"input": 300, "cache_read": 600, "cache_write": 100, "output": 100, "reasoning": 200}
    assert v(reg, "llm_requests_total", **lab, finish_reason="length") == 1
    # priced via the dated response model gpt-4o-mini-2024-07-18 -> gpt-4o-mini
    expected = (300 * 0.15 + 600 * 0.075 + 100 * 0.15 + 300 * 0.60) / 1e6
    assert v(reg, "llm_cost_usd_total", **lab) == pytest.approx(expected)


def test_record_response_anthropic_message(reg):
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages") as call:
        call.record_response(anthropic_message(stop_reason="max_tokens"))
    tok = {t: v(reg, "llm_tokens_total", **AN, token_type=t)
           for t in ("input", "cache_read", "cache_write", "output", "reasoning")}
    assert tok == {"input": 50, "cache_read": 2000, "cache_write": 300, "output": 30, "reasoning": 10}
    assert v(reg, "llm_requests_total", **AN, finish_reason="length") == 1
    assert v(reg, "llm_tokens_per_request_sum", **AN, direction="input") == 2350
    expected = (50 * 1.0 + 2000 * 0.10 + 300 * 1.25 + 40 * 5.0) / 1e6
    assert v(reg, "llm_cost_usd_total", **AN) == pytest.approx(expected)


def test_record_response_openai_responses_api(reg):
    lab = dict(OA, operation="responses")
    with track(provider="openai", model="gpt-4o-mini", operation="responses") as call:
        call.record_response(responses_response())
    tok = {t: v(reg, "llm_tokens_total", **lab, token_type=t)
           for t in ("input", "cache_read", "cache_write", "output", "reasoning")}
    assert tok == {"input": 50, "cache_read": 40, "cache_write": 10, "output": 10, "reasoning": 20}
    assert v(reg, "llm_requests_total", **lab, finish_reason="stop") == 1
    with track(provider="openai", model="gpt-4o-mini", operation="responses") as call:
        call.record_response(responses_response(status="incomplete", incomplete={"reason": "max_output_tokens"}))
    assert v(reg, "llm_requests_total", **lab, finish_reason="length") == 1
    with track(provider="openai", model="gpt-4o-mini", operation="responses") as call:
        call.record_response(responses_response(output=[
            {"type": "function_call", "id": "f1", "call_id": "c1", "name": "lookup", "arguments": "{}"}]))
    assert v(reg, "llm_requests_total", **lab, finish_reason="tool_calls") == 1


def test_anthropic_stream_usage_updates_keep_earlier_fields(reg):
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages", stream=True) as call:
        # message_start, then message_delta with cumulative output only
        call.record_usage({"input_tokens": 20, "output_tokens": 1, "cache_read_input_tokens": 100,
                           "cache_creation_input_tokens": 0})
        call.first_token()
        call.record_usage(anthropic.types.MessageDeltaUsage(output_tokens=42))
        call.set_finish_reason("end_turn")
    assert v(reg, "llm_tokens_total", **AN, token_type="input") == 20
    assert v(reg, "llm_tokens_total", **AN, token_type="cache_read") == 100
    assert v(reg, "llm_tokens_total", **AN, token_type="output") == 42
    assert v(reg, "llm_requests_total", **AN, finish_reason="stop") == 1


def _openai_error(cls, status, body=None):
    resp = httpx.Response(status, request=httpx.Request("POST", "http://llm.test/v1/chat/completions"))
    return cls("boom", response=resp, body=body)


def test_exception_inside_track_is_classified_recorded_and_reraised(reg):
    with pytest.raises(openai.RateLimitError):
        with track(provider="openai", model="gpt-4o-mini"):
            raise _openai_error(openai.RateLimitError, 429)
    assert v(reg, "llm_errors_total", **OA, error_type="rate_limit") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="error") == 1
    assert v(reg, "llm_in_flight_requests", **INFL) == 0
    assert v(reg, "llm_request_duration_seconds_count", **OA) == 1


def test_anthropic_overloaded_error(reg):
    req = httpx2.Request("POST", "http://llm.test/v1/messages")
    err = OverloadedError("overloaded", response=httpx2.Response(529, request=req),
                                    body={"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    with pytest.raises(OverloadedError):
        with track(provider="anthropic", model="claude-haiku-4-5", operation="messages"):
            raise err
    assert v(reg, "llm_errors_total", **AN, error_type="overloaded") == 1


def test_async_with_and_cancellation(reg):
    async def main():
        async with track(provider="openai", model="gpt-4o-mini") as call:
            call.record_response(chat_completion())
        with pytest.raises(asyncio.CancelledError):
            async with track(provider="openai", model="gpt-4o-mini"):
                raise asyncio.CancelledError()

    asyncio.run(main())
    assert v(reg, "llm_requests_total", **OA, finish_reason="length") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="cancelled") == 1
    assert v(reg, "llm_errors_total", **OA, error_type="cancelled") == 1


def test_decorator_sync_and_async_read_returned_response(reg):
    t = track(provider="openai", model="gpt-4o-mini", feature="deco")

    @t
    def call_sync():
        return chat_completion()

    @t
    async def call_async():
        return chat_completion()

    @t
    def failing():
        raise ConnectionError("down")

    call_sync()
    asyncio.run(call_async())
    with pytest.raises(ConnectionError):
        failing()
    lab = dict(OA, feature="deco")
    assert v(reg, "llm_requests_total", **lab, finish_reason="length") == 2
    assert v(reg, "llm_tokens_total", **lab, token_type="output") == 200
    assert v(reg, "llm_errors_total", **lab, error_type="connection") == 1
    with pytest.raises(TypeError, match="generator"):
        @t
        def gen():
            yield 1


def test_finish_is_idempotent_cancel_and_retries(reg):
    call = start_call("openai", "gpt-4o-mini")
    call.add_retries(2)
    call.add_retries()
    call.finish()
    call.finish()
    call.finish(error=TimeoutError())
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 1
    assert v(reg, "llm_errors_total", **OA, error_type="timeout") is None
    assert v(reg, "llm_retries_total", **OA) == 3
    call = start_call("openai", "gpt-4o-mini")
    call.cancel()
    assert v(reg, "llm_requests_total", **OA, finish_reason="cancelled") == 1
    assert v(reg, "llm_in_flight_requests", **INFL) == 0


def test_inconsistent_usage_is_clamped_not_raised(reg, caplog):
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        with track(provider="openai", model="gpt-4o-mini") as call:
            call.set_usage(input_tokens=10, cache_read_tokens=50, output_tokens=5)
    assert v(reg, "llm_tokens_total", **OA, token_type="input") == 0
    assert v(reg, "llm_tokens_total", **OA, token_type="cache_read") == 50


class _Exploding:
    def __getattr__(self, name):
        raise RuntimeError("broken child")


def test_fail_open_when_the_metrics_backend_breaks(reg, caplog):
    call = start_call("openai", "gpt-4o-mini")
    bundle = call._b
    bundle._requests["stop"] = _Exploding()  # a child that raises on .inc()
    bundle.hists.duration = _Exploding()
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        with track(provider="openai", model="gpt-4o-mini") as c2:
            c2.record_response(object())  # not a response: ignored
            c2.record_usage(_Exploding())
            result = "app result"
    assert result == "app result"
    call.finish()  # never raises
    assert v(reg, "llm_in_flight_requests", **INFL) == 0  # decremented despite the failures
    assert "recording an LLM call failed" in caplog.text


def test_start_call_fails_open_with_a_broken_registry(reg, caplog, monkeypatch):
    from llm_exporter import metrics

    def broken():
        raise RuntimeError("no metrics for you")

    monkeypatch.setattr(metrics, "current", broken)
    with caplog.at_level(logging.WARNING, logger="llm_exporter"):
        with track(provider="openai", model="gpt-4o-mini") as call:
            call.first_token()
            call.record_response(chat_completion())
        out = "still works"
    assert out == "still works"


def test_refusal_detector_opt_in(reg):
    assert not text_scan_enabled(llm_exporter.metrics.current().settings)
    with track(provider="openai", model="gpt-4o-mini", operation="responses") as call:
        call.record_response(responses_response())
    lab = dict(OA, operation="responses")
    assert v(reg, "llm_refusals_total", **lab) is None

    reg = fresh_registry(refusal_detector=True)
    assert text_scan_enabled(llm_exporter.metrics.current().settings)
    with track(provider="openai", model="gpt-4o-mini", operation="responses") as call:
        call.record_response(responses_response())  # "I cannot help with that."
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages") as call:
        call.record_response(anthropic_message(text="Sure, here it is"))
    with track(provider="anthropic", model="claude-haiku-4-5", operation="messages") as call:
        call.record_response(anthropic_message(text="...", stop_reason="refusal"))  # explicit refusal
    with track(provider="openai", model="gpt-4o-mini", stream=True) as call:
        assert call.check_refusal("As an AI language model, I won't")
    assert v(reg, "llm_refusals_total", **lab) == 1
    assert v(reg, "llm_refusals_total", **AN) == 1
    assert v(reg, "llm_refusals_total", **OA) == 1
    assert v(reg, "llm_requests_total", **AN, finish_reason="content_filter") == 1

    reg = fresh_registry(refusal_detector=RefusalDetector([r"\bno way\b"]))
    with track(provider="openai", model="gpt-4o-mini") as call:
        assert call.check_refusal("No way.")
        assert not call.check_refusal("I cannot")  # default patterns replaced
    assert v(reg, "llm_refusals_total", **OA) == 1


# --- a finished call is in the registry when finish() returns -------------------------------


def test_a_finished_call_is_recorded_when_finish_returns(reg):
    clock = FakeClock()
    call = start_call("openai", "gpt-4o-mini", clock=clock)
    assert v(reg, "llm_in_flight_requests", **INFL) == 1
    clock.t += 2.0
    call.set_usage(input_tokens=10, output_tokens=5)
    call.finish()
    clock.t += 30.0
    assert v(reg, "llm_request_duration_seconds_sum", **OA) == pytest.approx(2.0)
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 1
    assert v(reg, "llm_tokens_total", **OA, token_type="output") == 5
    assert v(reg, "llm_in_flight_requests", **INFL) == 0


def test_facts_given_after_finish_are_ignored(reg):
    call = start_call("openai", "gpt-4o-mini", stream=True)
    call.finish()
    call.first_token()
    call.set_usage(input_tokens=10, output_tokens=5)
    call.record_response(chat_completion())
    call.set_finish_reason("length")
    call.add_retries(2)
    assert v(reg, "llm_requests_total", **OA, finish_reason="stop") == 1
    assert v(reg, "llm_requests_total", **OA, finish_reason="length") == 0
    assert v(reg, "llm_tokens_total", **OA, token_type="input") is None
    assert v(reg, "llm_time_to_first_token_seconds_count", **OA) is None
    assert v(reg, "llm_retries_total", **OA) == 0


def test_first_token_marks_a_call_started_without_stream_as_a_stream(reg):
    clock = FakeClock()
    with track(provider="openai", model="gpt-4o-mini", clock=clock) as call:
        clock.t += 0.25
        call.first_token()
        clock.t += 1.0
        call.set_usage(input_tokens=5, output_tokens=3)
    assert call.stream
    assert v(reg, "llm_time_to_first_token_seconds_sum", **OA) == pytest.approx(0.25)
    assert v(reg, "llm_time_per_output_token_seconds_sum", **OA) == pytest.approx(0.5)  # (1.25 - 0.25) / 2


def test_a_finish_from_a_finalizer_inside_a_metric_update_waits_for_it(reg):
    """A dropped stream is finished by a garbage-collector finalizer, which may run while this
    thread holds a metric lock: the record waits until the update ends (no deadlock, not lost)."""
    import threading

    from llm_exporter import gcsafe, metrics

    dropped = start_call("openai", "gpt-4o-mini", stream=True)
    bundle = metrics.current().lookup("openai", "gpt-4o-mini", "unknown", "chat")
    done = threading.Event()
    waited: list[bool] = []

    def update_interrupted_by_a_finalizer() -> None:
        with gcsafe.section:
            with bundle.lock:  # a metric update holding the (non-reentrant) lock
                dropped.cancel()  # what a finalizer does: it must not take the lock now
                waited.append("cancelled" not in bundle._requests)
        done.set()

    worker = threading.Thread(target=update_interrupted_by_a_finalizer, daemon=True)
    worker.start()
    assert done.wait(5), "deadlock: the finalizer's record took the lock its thread held"
    assert waited == [True]  # recorded when the section ended, not inside it
    assert v(reg, "llm_requests_total", **OA, finish_reason="cancelled") == 1
    assert v(reg, "llm_in_flight_requests", **INFL) == 0
