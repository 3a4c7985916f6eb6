"""Reading a stream from the events the SDK yields (``instrumentation._parsed``): the cases the real
SDK streams of the other tests do not produce (a body that ends before its end event, an event our
reading fails on, a failed Responses stream, a stream object without an event iterator).

The events are stand-ins with the SDK objects' attributes; the call, its state and the metrics are
the exporter's own.
"""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import pytest

from llm_exporter import metrics
from llm_exporter.instrumentation._parsed import EventStream
from llm_exporter.instrumentation._state import CallState
from llm_exporter.instrumentation._wrap import complete
from llm_exporter.testing import fresh_registry
from sdk_harness import helpers

MODEL = "claude-sonnet-4-6"
_h = helpers("anthropic", "messages")
L, assert_one, tokens = _h.L, _h.assert_one, _h.tokens


def usage(**kw: int) -> NS:
    return NS(**kw)


def messages_events(end: bool = True) -> list[Any]:
    events = [
        NS(type="message_start", message=NS(model=MODEL + "-20260101", usage=usage(input_tokens=12, output_tokens=1,
                                                                                   cache_read_input_tokens=5,
                                                                                   cache_creation_input_tokens=3))),
        NS(type="content_block_start"),
        NS(type="content_block_delta", delta=NS(type="text_delta", text="Hello")),
        NS(type="content_block_delta", delta=NS(type="text_delta", text=" there")),
        NS(type="content_block_stop"),
        NS(type="message_delta", delta=NS(stop_reason="max_tokens"), usage=usage(output_tokens=10)),
    ]
    return events + [NS(type="message_stop")] if end else events


def read(events: list[Any], operation: str = "messages", model: str = MODEL) -> list[Any]:
    """A sync stream's call as the instrumentation makes it, its events read to the end."""
    state = CallState("anthropic" if operation == "messages" else "openai", {"model": model, "stream": True},
                      None, operation)
    assert state.sdk_events
    watcher = EventStream(state)
    stream = NS(_iterator=iter(events))
    assert watcher.attach(stream)
    passed = list(stream._iterator)
    metrics.current().store.apply_pending()
    return passed


def test_events_pass_on_untouched_and_the_call_is_read_from_them():
    reg = fresh_registry()
    events = messages_events()
    assert read(events) == events  # the same objects, in order
    assert_one(reg, MODEL, "length")
    assert tokens(reg, MODEL) == {"input": 12, "cache_read": 5, "cache_write": 3, "output": 10, "reasoning": 0}
    assert reg.get_sample_value("llm_time_to_first_token_seconds_count", L(MODEL)) == 1


def test_events_that_run_out_before_the_end_event_are_a_cut_stream():
    reg = fresh_registry()
    read(messages_events(end=False))
    assert_one(reg, MODEL, "error", error="connection")


def test_an_event_our_reading_fails_on_passes_on_and_the_call_finishes_plainly(caplog):
    reg = fresh_registry()
    events = messages_events()
    events[2] = NS(type="content_block_delta")  # no delta: reading it raises in our code
    assert read(events) == events
    assert_one(reg, MODEL, "stop")  # what was read before it counts; the rest is not read
    assert "reading a streamed response failed" in caplog.text


@pytest.mark.parametrize("kind", ["response.failed", "error"])
def test_a_failed_responses_stream_is_an_error(kind):
    reg = fresh_registry()
    if kind == "response.failed":
        last = NS(type="response.failed", response={"model": "gpt-4o-mini", "status": "failed",
                                                    "error": {"code": "server_error", "message": "boom"}})
    else:
        last = NS(type="error", code="server_error", message="boom")
    read([NS(type="response.created", response=NS(model="gpt-4o-mini")),
          NS(type="response.output_text.delta", delta="a"), last], operation="responses", model="gpt-4o-mini")
    openai = helpers("openai", "responses")
    openai.assert_one(reg, "gpt-4o-mini", "error", error="server_error")
    assert reg.get_sample_value("llm_time_to_first_token_seconds_count", openai.L("gpt-4o-mini")) == 1


def test_a_stream_object_without_an_event_iterator_is_finished_as_a_body_not_seen():
    reg = fresh_registry()
    state = CallState("anthropic", {"model": MODEL, "stream": True}, None, "messages")
    state.observer = EventStream(state)
    complete(state, NS())  # no _iterator to wrap
    metrics.current().store.apply_pending()
    assert_one(reg, MODEL, "stop")
    assert state.observer is None
