"""instrument() on real OpenAI / AsyncOpenAI clients over HTTP against the local fake provider.

Every scenario runs sync and async. Exact samples are asserted; durations only by count.
"""

from __future__ import annotations

import gc
import inspect
import threading
import time

import openai
import pytest
from openai import OpenAI

import llm_exporter
from llm_exporter.fakeprovider import Reply, ToolCall, openai_ratelimit_headers
from llm_exporter.testing import fresh_registry, sample_value
import httpx

from sdk_harness import MODES, MSGS, helpers, sdk_method


_h = helpers("openai", "chat")
Ctx, run, L, tokens, in_flight, assert_one = _h.Ctx, _h.run, _h.L, _h.tokens, _h.in_flight, _h.assert_one


USAGE = dict(prompt_tokens=20, cached_tokens=5, cache_write_tokens=3, completion_tokens=10, reasoning_tokens=4)
SPLIT = {"input": 12, "cache_read": 5, "cache_write": 3, "output": 6, "reasoning": 4}


def cost_4o_mini() -> float:  # pricing.yaml gpt-4o-mini: input 0.15, cache_read 0.075, cache_write 0.15, output 0.60
    return (12 * 0.15 + 5 * 0.075 + 3 * 0.15 + (6 + 4) * 0.60) / 1e6


# --- chat completions --------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_chat_plain_usage_split_cost_and_result_untouched(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="Paris is the capital.", **USAGE))
        resp = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)
        assert type(resp) is openai.types.chat.ChatCompletion
        assert resp.choices[0].message.content == "Paris is the capital."
        assert resp.model == "gpt-4o-mini-2024-07-18"
        assert resp.usage.prompt_tokens == 20

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "stop")
    assert tokens(registry, "gpt-4o-mini") == SPLIT
    lab = L("gpt-4o-mini")
    assert sample_value(registry, "llm_tokens_per_request_sum", dict(lab, direction="input")) == 20
    assert sample_value(registry, "llm_tokens_per_request_sum", dict(lab, direction="output")) == 10
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx(cost_4o_mini())
    assert registry.get_sample_value("llm_retries_total", lab) == 0
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) is None


@pytest.mark.parametrize("mode", MODES)
def test_chat_stream_with_include_usage(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="one two three four", chunk_delay_s=0.005, **USAGE))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True,
                         stream_options={"include_usage": True})
        assert type(stream) is (openai.AsyncStream if mode == "async" else openai.Stream)
        chunks = await c.drain(stream)
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == "one two three four"
        assert chunks[-1].usage.completion_tokens == 10

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "stop")
    assert tokens(registry, "gpt-4o-mini") == SPLIT
    lab = L("gpt-4o-mini")
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) == 1
    assert sample_value(registry, "llm_time_per_output_token_seconds_count", lab) == 1
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx(cost_4o_mini())


@pytest.mark.parametrize("mode", MODES)
def test_recorded_when_the_call_returns_and_when_the_stream_ends(mode, server, registry):
    """No batch, no scrape needed: a finished call is in the registry when the method returns,
    a stream's when its last event has been read."""
    lab = L("gpt-4o-mini")

    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="Bonjour.", **USAGE))
        await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)
        assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 1
        assert tokens(registry, "gpt-4o-mini") == SPLIT
        server.enqueue(Reply(text="one two", **USAGE))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True,
                         stream_options={"include_usage": True})
        assert in_flight(registry, "gpt-4o-mini") == 1
        await c.drain(stream)
        assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 2
        assert in_flight(registry, "gpt-4o-mini") == 0

    run(mode, server, body)
    assert sample_value(registry, "llm_request_duration_seconds_count", lab) == 2
    assert sample_value(registry, "llm_request_duration_seconds_bucket", dict(lab, le="0.5")) == 2
    assert tokens(registry, "gpt-4o-mini") == {k: 2 * n for k, n in SPLIT.items()}


@pytest.mark.parametrize("mode", MODES)
def test_chat_stream_without_usage_records_no_tokens(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="one two three", finish_reason="length"))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True)
        chunks = await c.drain(stream)
        assert all(ch.usage is None for ch in chunks)

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "length")
    lab = L("gpt-4o-mini")
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) == 1
    # no usage on the wire: no guessed tokens
    assert tokens(registry, "gpt-4o-mini") == dict.fromkeys(SPLIT, None)
    assert not registry.get_sample_value("llm_cost_usd_total", lab)


@pytest.mark.parametrize("mode", MODES)
def test_ttft_is_first_content_delta_not_role_chunk(mode, server, registry):
    async def body(c: Ctx) -> None:
        # the role-only chunk comes at once; the first content delta after 0.3 s
        # the first delta after 0.3 s, the stream's end ~0.7 s later: the first token is timed when it
        # arrives, not when the stream is read to its end
        server.enqueue(Reply(text="late " * 12, first_delta_delay_s=0.3, chunk_delay_s=0.06))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True)
        await c.drain(stream)

    run(mode, server, body)
    lab = L("gpt-4o-mini")
    assert sample_value(registry, "llm_time_to_first_token_seconds_bucket", dict(lab, le="0.25")) == 0
    assert sample_value(registry, "llm_time_to_first_token_seconds_bucket", dict(lab, le="0.5")) == 1
    assert sample_value(registry, "llm_request_duration_seconds_bucket", dict(lab, le="0.5")) == 0


@pytest.mark.parametrize("mode", MODES)
def test_chat_stream_helper_with_tool_calls(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')], **USAGE))
        manager = sdk_method(c.client, "chat.completions.stream", "beta.chat.completions.stream")(model="gpt-4o-mini", messages=MSGS,
                                                   stream_options={"include_usage": True})
        async with c.enter(manager) as stream:
            final = await c(stream.get_final_completion)
        assert final.choices[0].message.tool_calls[0].function.name == "get_weather"

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "tool_calls")
    assert tokens(registry, "gpt-4o-mini") == SPLIT
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", L("gpt-4o-mini")) == 1


@pytest.mark.parametrize("mode", MODES)
def test_parse_helper_and_raw_response(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(**USAGE), Reply(**USAGE))
        parsed = await c(sdk_method(c.client, "chat.completions.parse", "beta.chat.completions.parse"), model="gpt-4o-mini", messages=MSGS)
        assert parsed.choices[0].message.content
        raw = await c(c.client.chat.completions.with_raw_response.create, model="gpt-4o-mini", messages=MSGS)
        assert raw.headers["x-request-id"]
        completion = raw.parse()
        completion = await completion if inspect.isawaitable(completion) else completion
        assert completion.usage.total_tokens == 30

    run(mode, server, body)
    lab = L("gpt-4o-mini")
    assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 2
    assert tokens(registry, "gpt-4o-mini") == {k: 2 * v for k, v in SPLIT.items()}
    assert in_flight(registry, "gpt-4o-mini") == 0


@pytest.mark.parametrize("mode", MODES)
def test_with_streaming_response_plain_and_stream(mode, server, registry):
    """The body is read by the caller after the method returns, from bytes the SDK yields no events
    for: recorded when the response arrives, with duration and outcome only (documented)."""
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(**USAGE), Reply(text="a b c", chunk_delay_s=0.001, **USAGE))
        async with c.enter(c.client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MSGS)) as response:
            completion = await c(response.parse)
            assert completion.usage.total_tokens == 30
        async with c.enter(c.client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=MSGS, stream=True,
                stream_options={"include_usage": True})) as response:
            lines = [line async for line in response.iter_lines()] if mode == "async" else list(response.iter_lines())
            assert any(line.startswith("data: [DONE]") for line in lines)

    run(mode, server, body)
    lab = L("gpt-4o-mini")
    assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="other")) == 2
    assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 0
    assert tokens(registry, "gpt-4o-mini") == {k: None for k in SPLIT}
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) is None
    assert in_flight(registry, "gpt-4o-mini") == 0


LONG = " ".join(f"w{i}" for i in range(150))  # past the stream head, which is read chunk by chunk


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("operation", ["chat", "responses"])
def test_error_event_late_in_a_stream(mode, operation, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text=LONG, stream_error_type="server_error"))
        if operation == "chat":
            stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True)
        else:
            stream = await c(sdk_method(c.client, "responses.create"), model="gpt-4o-mini", input="hi", stream=True)
        try:
            await c.drain(stream)
        except openai.APIError:
            pass  # chat: the SDK raises on the error event; responses: it yields it as an event

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "error", operation=operation, error="server_error")
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", L("gpt-4o-mini", operation)) == 1


# --- responses and embeddings --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_responses_plain_prices_by_response_model(mode, server, registry):
    async def body(c: Ctx) -> None:
        # gpt-4o-2024-05-13 has its own (higher) price than gpt-4o
        server.enqueue(Reply(model="gpt-4o-2024-05-13", prompt_tokens=1000, completion_tokens=100))
        resp = await c(sdk_method(c.client, "responses.create"), model="gpt-4o", input="tell me")
        assert resp.output_text.startswith("You said")

    run(mode, server, body)
    assert_one(registry, "gpt-4o", "stop", operation="responses")
    lab = L("gpt-4o", "responses")
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx((1000 * 5.0 + 100 * 15.0) / 1e6)


@pytest.mark.parametrize("mode", MODES)
def test_responses_stream_cached_reasoning_split(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(reasoning_text="think", text="answer text", **USAGE))
        stream = await c(sdk_method(c.client, "responses.create"), model="gpt-4o-mini", input="q", stream=True)
        events = await c.drain(stream)
        assert events[0].type == "response.created" and events[-1].type == "response.completed"

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "stop", operation="responses")
    assert tokens(registry, "gpt-4o-mini", "responses") == SPLIT
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", L("gpt-4o-mini", "responses")) == 1


@pytest.mark.parametrize("mode", MODES)
def test_responses_stream_helper_incomplete(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="cut short", finish_reason="length", prompt_tokens=7, completion_tokens=2))
        async with c.enter(sdk_method(c.client, "responses.stream")(model="gpt-4o-mini", input="q")) as stream:
            events = await c.drain(stream)
        assert events[-1].type == "response.incomplete"

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "length", operation="responses")
    assert tokens(registry, "gpt-4o-mini", "responses")["output"] == 2


@pytest.mark.parametrize("mode", MODES)
def test_embeddings(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(prompt_tokens=1000))
        resp = await c(c.client.embeddings.create, model="text-embedding-3-small", input=["a b", "c"])
        assert len(resp.data) == 2 and len(resp.data[0].embedding) == 8

    run(mode, server, body)
    assert_one(registry, "text-embedding-3-small", "stop", operation="embeddings")
    assert tokens(registry, "text-embedding-3-small", "embeddings") == {
        "input": 1000, "cache_read": 0, "cache_write": 0, "output": 0, "reasoning": 0}
    lab = L("text-embedding-3-small", "embeddings")
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx(1000 * 0.02 / 1e6)


# --- errors, retries, rate limits --------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_429_retry_after_then_success_counts_retry_and_ratelimits(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(
            Reply(status=429, retry_after=0.01, headers=openai_ratelimit_headers(500, 0, 90000, 12)),
            Reply(headers=openai_ratelimit_headers(500, 499, 90000, 89000), **USAGE),
        )
        await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)

    run(mode, server, body)
    assert len(server.requests) == 2
    assert_one(registry, "gpt-4o-mini", "stop")
    lab = L("gpt-4o-mini")
    assert registry.get_sample_value("llm_retries_total", lab) == 1
    assert registry.get_sample_value("llm_errors_total", dict(lab, error_type="rate_limit")) == 0
    rl = dict(provider="openai", model="gpt-4o-mini")
    assert registry.get_sample_value("llm_ratelimit_remaining", dict(rl, resource="requests")) == 499
    assert registry.get_sample_value("llm_ratelimit_limit", dict(rl, resource="requests")) == 500
    assert registry.get_sample_value("llm_ratelimit_remaining", dict(rl, resource="tokens")) == 89000
    assert registry.get_sample_value("llm_ratelimit_limit", dict(rl, resource="tokens")) == 90000


@pytest.mark.parametrize("mode", MODES)
def test_500_retries_exhausted_error_reraised_unchanged(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(status=500, retry_after=0.01), Reply(status=500, retry_after=0.01))
        with pytest.raises(openai.InternalServerError) as info:
            await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)
        assert info.value.status_code == 500
        assert info.value.body["type"] == "server_error"

    run(mode, server, body, max_retries=1)
    assert len(server.requests) == 2
    assert_one(registry, "gpt-4o-mini", "error", error="server_error")
    assert registry.get_sample_value("llm_retries_total", L("gpt-4o-mini")) == 1


@pytest.mark.parametrize("mode", MODES)
def test_bad_request_context_length(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(status=400, error_code="context_length_exceeded",
                             error_message="This model's maximum context length is 128000 tokens."))
        with pytest.raises(openai.BadRequestError):
            await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "error", error="context_length")
    assert registry.get_sample_value("llm_retries_total", L("gpt-4o-mini")) == 0


@pytest.mark.parametrize("mode", MODES)
def test_timeout(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(delay_s=2.0))
        with pytest.raises(openai.APITimeoutError):
            await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)

    run(mode, server, body, max_retries=0, timeout=0.2)
    assert_one(registry, "gpt-4o-mini", "error", error="timeout")


@pytest.mark.parametrize("mode", MODES)
def test_stream_cut_midway_is_error(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="a b c d e f", cut_after_deltas=2))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True)
        with pytest.raises((openai.APIConnectionError, httpx.HTTPError)):  # openai < 1.5x raises httpx's own
            await c.drain(stream)

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "error", error="connection")


@pytest.mark.parametrize("mode", MODES)
def test_stream_early_break_and_close_is_cancelled(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="a b c d e f", chunk_delay_s=0.01))
        stream = await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True)
        await c.first(stream)
        await c.close(stream)

    run(mode, server, body)
    assert_one(registry, "gpt-4o-mini", "cancelled", error="cancelled")


def test_stream_abandoned_and_garbage_collected_is_cancelled(server, registry):
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"))
    server.enqueue(Reply(text="a b c d e f"))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True)
    next(iter(stream))
    assert in_flight(registry, "gpt-4o-mini") == 1
    del stream
    gc.collect()
    assert_one(registry, "gpt-4o-mini", "cancelled", error="cancelled")
    client.close()


@pytest.mark.parametrize("stream", [False, True])
def test_call_is_in_flight_while_it_runs(stream, server, registry):
    """A scrape during a call, parsed or streamed, sees it in flight."""
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"))
    server.enqueue(Reply(delay_s=0.4, **USAGE))
    kw = dict(stream=True, stream_options={"include_usage": True}) if stream else {}
    done = threading.Event()
    worker = threading.Thread(target=lambda: (
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, **kw)), done.set()))
    worker.start()
    seen = []
    while not done.is_set():
        seen.append(in_flight(registry, "gpt-4o-mini"))
        time.sleep(0.02)
    worker.join()
    assert seen.count(1) >= 5 and set(seen) <= {None, 0, 1}  # about 20 scrapes during the 0.4 s delay
    assert_one(registry, "gpt-4o-mini", "stop")
    assert tokens(registry, "gpt-4o-mini") == SPLIT
    client.close()


# --- instrument() itself --------------------------------------------------------------------------


def test_instrument_is_idempotent_and_returns_the_client(server, registry):
    raw = OpenAI(base_url=server.openai_base_url, api_key="test")
    assert llm_exporter.instrument(raw) is raw
    assert llm_exporter.instrument(raw, feature="other") is raw
    hooks = raw._client.event_hooks
    assert len(hooks["request"]) == 1 and len(hooks["response"]) == 1
    raw.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert_one(registry, "gpt-4o-mini", "stop")
    raw.close()


def test_derived_clients_and_feature_precedence(server, registry):
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"), feature="triage")
    derived = client.with_options(timeout=5)
    derived.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    with llm_exporter.feature("search"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert_one(registry, "gpt-4o-mini", "stop", feature="triage")
    assert_one(registry, "gpt-4o-mini", "stop", feature="search")
    assert len(client._client.event_hooks["request"]) == 1  # shared HTTP client: hooks added once
    client.close()


def test_feature_precedence_when_the_call_is_opened_at_once(server, registry):
    """A raw response's call: the client's default feature and a feature(...) block resolve the
    same way as for a parsed call."""
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"), feature="triage")
    server.enqueue(Reply(**USAGE), Reply(**USAGE))
    client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS).parse()
    with llm_exporter.feature("search"):
        client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MSGS).parse()
    assert_one(registry, "gpt-4o-mini", "stop", feature="triage")
    assert_one(registry, "gpt-4o-mini", "stop", feature="search")
    client.close()


def test_exemplar_and_feature_come_from_the_callers_context(server, registry):
    """The trace id and the feature(...) block are the caller's, read when the call starts (the
    scrape runs in another thread)."""
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client.openmetrics.exposition import generate_latest

    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"))
    server.enqueue(Reply(**USAGE), Reply(**USAGE))
    with TracerProvider().get_tracer("test").start_as_current_span("chat") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        with llm_exporter.feature("search"):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    bodies: list[str] = []
    scraper = threading.Thread(target=lambda: bodies.append(generate_latest(registry).decode()))
    scraper.start()
    scraper.join()
    buckets = [x for x in bodies[0].splitlines() if x.startswith("llm_request_duration_seconds_bucket{")]
    with_exemplar = [x for x in buckets if "# {" in x]  # the call outside the span left none
    assert with_exemplar and all(f'trace_id="{trace_id}"' in x for x in with_exemplar)
    assert_one(registry, "gpt-4o-mini", "stop", feature="search")
    assert_one(registry, "gpt-4o-mini", "stop")
    client.close()


def test_azure_client_is_supported(server, registry):
    client = openai.AzureOpenAI(azure_endpoint=server.url, api_key="test", api_version="2024-10-21")
    assert llm_exporter.instrument(client) is client
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert server.requests[-1].path.startswith("/openai/deployments/gpt-4o-mini/chat/completions")
    assert_one(registry, "gpt-4o-mini", "stop")
    client.close()


def test_instrumentation_fault_never_breaks_the_call(server, registry, monkeypatch):
    from llm_exporter.instrumentation import _streams

    def boom(reader, event):
        raise RuntimeError("instrumentation bug")

    monkeypatch.setitem(_streams._HANDLERS, "chat", boom)  # our code, not the SDK's
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"))
    server.enqueue(Reply(text="still works"))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSGS, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == "still works"
    assert_one(registry, "gpt-4o-mini", "other")  # its end was not observed: never "stop"
    client.close()


def test_unsupported_object_raises_type_error():
    with pytest.raises(TypeError):
        llm_exporter.instrument(object())


@pytest.mark.parametrize("mode", MODES)
def test_chat_stream_refusal_detected_only_when_opted_in(mode, server):
    """The opt-in refusal detector sees streamed text; off by default, text never a label."""
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="I cannot help with that request", chunk_delay_s=0.001))
        server.enqueue(Reply(text="Sure, here is the summary", chunk_delay_s=0.001))
        for _ in range(2):
            await c.drain(await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS,
                                  stream=True))

    reg = fresh_registry(refusal_detector=True)
    server.reset()
    run(mode, server, body)
    assert reg.get_sample_value("llm_refusals_total", L("gpt-4o-mini")) == 1
    assert reg.get_sample_value("llm_requests_total", L("gpt-4o-mini", finish_reason="stop")) == 2

    reg = fresh_registry()  # detector off: nothing counted
    server.reset()
    run(mode, server, body)
    assert reg.get_sample_value("llm_refusals_total", L("gpt-4o-mini")) is None
    assert reg.get_sample_value("llm_requests_total", L("gpt-4o-mini", finish_reason="stop")) == 2
