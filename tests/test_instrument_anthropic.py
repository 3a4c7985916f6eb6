"""instrument() on real Anthropic / AsyncAnthropic clients over HTTP against the local fake provider.

Every scenario runs sync and async. Exact samples are asserted; durations only by count.
"""

from __future__ import annotations

import inspect

import gc
import time

import anthropic
import pytest
from anthropic import Anthropic

import llm_exporter
from llm_exporter.fakeprovider import Reply, ToolCall, anthropic_ratelimit_headers
from llm_exporter.testing import fresh_registry, sample_value
from sdk_harness import MODES, MSGS, helpers

MODEL = "claude-sonnet-4-6"
KW = dict(model=MODEL, max_tokens=256, messages=MSGS)


_h = helpers("anthropic", "messages")
Ctx, run, L, tokens, in_flight, assert_one = _h.Ctx, _h.run, _h.L, _h.tokens, _h.in_flight, _h.assert_one


USAGE = dict(prompt_tokens=20, cached_tokens=5, cache_write_tokens=3, completion_tokens=10, reasoning_tokens=4)
# Anthropic wire: input_tokens 12 (uncached), cache_read 5, cache_creation 3, output 10 incl. 4 thinking
SPLIT = {"input": 12, "cache_read": 5, "cache_write": 3, "output": 6, "reasoning": 4}
# pricing.yaml claude-sonnet-4-6: input 3.00, cache_read 0.30, cache_write 3.75, output 15.00
COST = (12 * 3.0 + 5 * 0.30 + 3 * 3.75 + 10 * 15.0) / 1e6


@pytest.mark.parametrize("mode", MODES)
def test_messages_create_cache_split_cost_and_result_untouched(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="Bonjour.", model="claude-sonnet-4-6-20260101", **USAGE))
        msg = await c(c.client.messages.create, **KW)
        assert type(msg) is anthropic.types.Message
        assert msg.content[0].text == "Bonjour." and msg.stop_reason == "end_turn"
        assert msg.usage.cache_read_input_tokens == 5 and msg.usage.input_tokens == 12

    run(mode, server, body)
    assert_one(registry, MODEL, "stop")
    assert tokens(registry, MODEL) == SPLIT
    lab = L(MODEL)
    assert sample_value(registry, "llm_tokens_per_request_sum", dict(lab, direction="input")) == 20
    assert sample_value(registry, "llm_tokens_per_request_sum", dict(lab, direction="output")) == 10
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx(COST)
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) is None


@pytest.mark.parametrize("mode", MODES)
def test_with_raw_response_usage_read_from_the_body(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="Bonjour.", **USAGE))
        raw = await c(c.client.messages.with_raw_response.create, **KW)
        msg = await c(raw.parse)
        assert msg.usage.cache_read_input_tokens == 5

    run(mode, server, body)
    assert_one(registry, MODEL, "stop")
    assert tokens(registry, MODEL) == SPLIT
    assert registry.get_sample_value("llm_cost_usd_total", L(MODEL)) == pytest.approx(COST)


@pytest.mark.parametrize("mode", MODES)
def test_messages_create_stream_true(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="one two three", reasoning_text="hmm let me see", finish_reason="max_tokens",
                             chunk_delay_s=0.005, **USAGE))
        stream = await c(c.client.messages.create, stream=True, **KW)
        assert type(stream) is (anthropic.AsyncStream if mode == "async" else anthropic.Stream)
        events = await c.drain(stream)
        assert [e.type for e in events][:2] == ["message_start", "content_block_start"]
        assert events[-1].type == "message_stop"

    run(mode, server, body)
    assert_one(registry, MODEL, "length")
    assert tokens(registry, MODEL) == SPLIT
    lab = L(MODEL)
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", lab) == 1
    assert sample_value(registry, "llm_time_per_output_token_seconds_count", lab) == 1
    assert registry.get_sample_value("llm_cost_usd_total", lab) == pytest.approx(COST)


@pytest.mark.parametrize("mode", MODES)
def test_recorded_when_the_call_returns_and_when_the_stream_ends(mode, server, registry):
    lab = L(MODEL)

    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="Bonjour.", **USAGE))
        await c(c.client.messages.create, **KW)
        assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 1
        server.enqueue(Reply(text="one two", **USAGE))
        stream = await c(c.client.messages.create, **KW, stream=True)
        assert in_flight(registry, MODEL) == 1
        await c.drain(stream)
        assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 2
        assert in_flight(registry, MODEL) == 0

    run(mode, server, body)
    assert sample_value(registry, "llm_request_duration_seconds_count", lab) == 2
    assert sample_value(registry, "llm_request_duration_seconds_bucket", dict(lab, le="0.5")) == 2
    assert tokens(registry, MODEL) == {k: 2 * n for k, n in SPLIT.items()}


@pytest.mark.parametrize("mode", MODES)
def test_ttft_is_first_delta_not_message_start(mode, server, registry):
    async def body(c: Ctx) -> None:
        # the first delta after 0.3 s, the stream's end ~0.7 s later: the first token is timed when it
        # arrives, not when the stream is read to its end
        server.enqueue(Reply(text="late " * 12, first_delta_delay_s=0.3, chunk_delay_s=0.06))
        stream = await c(c.client.messages.create, stream=True, **KW)
        await c.drain(stream)

    run(mode, server, body)
    lab = L(MODEL)
    assert sample_value(registry, "llm_time_to_first_token_seconds_bucket", dict(lab, le="0.25")) == 0
    assert sample_value(registry, "llm_time_to_first_token_seconds_bucket", dict(lab, le="0.5")) == 1
    assert sample_value(registry, "llm_request_duration_seconds_bucket", dict(lab, le="0.5")) == 0


@pytest.mark.parametrize("mode", MODES)
def test_messages_stream_manager_tool_use(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="", tool_calls=[ToolCall("lookup", '{"q": "x"}')], **USAGE))
        async with c.enter(c.client.messages.stream(**KW)) as stream:
            text = "".join([t async for t in stream.text_stream] if mode == "async" else list(stream.text_stream))
            final = await c(stream.get_final_message)
        assert text == ""
        assert final.content[0].type == "tool_use" and final.stop_reason == "tool_use"

    run(mode, server, body)
    assert_one(registry, MODEL, "tool_calls")
    assert tokens(registry, MODEL) == SPLIT
    assert sample_value(registry, "llm_time_to_first_token_seconds_count", L(MODEL)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_messages_stream_manager_exit_early_is_cancelled(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="a b c d e f g", chunk_delay_s=0.01))
        async with c.enter(c.client.messages.stream(**KW)) as stream:
            await c.first(stream)

    run(mode, server, body)
    assert_one(registry, MODEL, "cancelled", error="cancelled")


@pytest.mark.parametrize("mode", MODES)
def test_stream_left_after_its_end_event_and_closed_is_complete(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="a b c", chunk_delay_s=0.005, **USAGE))
        stream = await c(c.client.messages.create, stream=True, **KW)
        if mode == "async":
            async for event in stream:
                if event.type == "message_stop":
                    break
        else:
            for event in stream:
                if event.type == "message_stop":
                    break  # the SDK has not seen the body end yet
        await c.close(stream)

    run(mode, server, body)
    assert_one(registry, MODEL, "stop")
    assert tokens(registry, MODEL) == SPLIT


@pytest.mark.parametrize("read_first", [True, False], ids=["after its first event", "unread"])
@pytest.mark.parametrize("ending", ["closed", "dropped"])
def test_stream_left_before_its_end_is_cancelled(read_first, ending, server, registry):
    client = llm_exporter.instrument(Anthropic(base_url=server.anthropic_base_url, api_key="test"))
    server.enqueue(Reply(text="a b c d e f", chunk_delay_s=0.005))
    stream = client.messages.create(stream=True, **KW)
    if read_first:
        assert next(iter(stream)).type == "message_start"
    assert in_flight(registry, MODEL) == 1
    if ending == "closed":
        stream.close()
    else:
        del stream
        gc.collect()
    assert_one(registry, MODEL, "cancelled", error="cancelled")
    assert in_flight(registry, MODEL) == 0
    client.close()


@pytest.mark.parametrize("mode", MODES)
def test_529_overloaded_then_success_counts_retry(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(status=529, retry_after=0.01), Reply(status=429, retry_after=0.01), Reply(**USAGE))
        msg = await c(c.client.messages.create, **KW)
        assert msg.usage.output_tokens == 10

    run(mode, server, body)
    assert [r.retry_count for r in server.requests] == [0, 1, 2]
    assert_one(registry, MODEL, "stop")
    assert registry.get_sample_value("llm_retries_total", L(MODEL)) == 2


@pytest.mark.parametrize("mode", MODES)
def test_529_exhausted_is_overloaded_and_reraised(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(status=529, retry_after=0.01), Reply(status=529, retry_after=0.01))
        with pytest.raises(anthropic.APIStatusError) as info:
            await c(c.client.messages.create, **KW)
        assert info.value.status_code == 529
        assert info.value.body["error"]["type"] == "overloaded_error"

    run(mode, server, body, max_retries=1)
    assert_one(registry, MODEL, "error", error="overloaded")
    assert registry.get_sample_value("llm_retries_total", L(MODEL)) == 1


@pytest.mark.parametrize("mode", MODES)
def test_429_no_retries_is_rate_limit(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(status=429, retry_after=0.01, headers=anthropic_ratelimit_headers(requests=(50, 0))))
        with pytest.raises(anthropic.RateLimitError):
            await c(c.client.messages.create, **KW)

    run(mode, server, body, max_retries=0)
    assert_one(registry, MODEL, "error", error="rate_limit")
    assert registry.get_sample_value("llm_retries_total", L(MODEL)) == 0
    rl = dict(provider="anthropic", model=MODEL, resource="requests")  # the failed attempt's headers count too
    assert registry.get_sample_value("llm_ratelimit_remaining", rl) == 0
    assert registry.get_sample_value("llm_ratelimit_limit", rl) == 50


@pytest.mark.parametrize("mode", MODES)
def test_ratelimit_gauges_all_resources(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(headers=anthropic_ratelimit_headers(
            requests=(50, 49), tokens=(100000, 90000), input_tokens=(80000, 75000), output_tokens=(20000, 15000))))
        await c(c.client.messages.create, **KW)

    run(mode, server, body)
    rl = dict(provider="anthropic", model=MODEL)
    expected = {"requests": (49, 50), "tokens": (90000, 100000), "input_tokens": (75000, 80000),
                "output_tokens": (15000, 20000)}
    for resource, (remaining, limit) in expected.items():
        assert registry.get_sample_value("llm_ratelimit_remaining", dict(rl, resource=resource)) == remaining
        assert registry.get_sample_value("llm_ratelimit_limit", dict(rl, resource=resource)) == limit


@pytest.mark.parametrize("mode", MODES)
def test_ratelimit_gauges_show_the_newest_headers_of_calls_between_scrapes(mode, server, registry):
    # the newest headers per model win, and a value the newest response omits keeps its earlier value
    full = dict(tokens=(100000, 90000), input_tokens=(80000, 75000), output_tokens=(20000, 15000))

    async def body(c: Ctx) -> None:
        server.enqueue(Reply(headers=anthropic_ratelimit_headers(requests=(50, 49), **full)))
        await c(c.client.messages.create, **KW)
        server.enqueue(Reply(text="a b c", headers=anthropic_ratelimit_headers(
            requests=(50, 48), tokens=(100000, 80000), input_tokens=(80000, 70000), output_tokens=(20000, 10000))))
        await c.drain(await c(c.client.messages.create, stream=True, **KW))
        server.enqueue(Reply(headers=anthropic_ratelimit_headers(requests=(50, 47))))  # requests only
        await c(c.client.messages.create, **KW)
        server.enqueue(Reply(headers=anthropic_ratelimit_headers(requests=(60, 59), **full)))
        await c(c.client.messages.create, **dict(KW, model="claude-haiku-4-5"))

    run(mode, server, body)
    expected = {MODEL: {"requests": (47, 50), "tokens": (80000, 100000), "input_tokens": (70000, 80000),
                        "output_tokens": (10000, 20000)},
                "claude-haiku-4-5": {"requests": (59, 60), "tokens": (90000, 100000),
                                     "input_tokens": (75000, 80000), "output_tokens": (15000, 20000)}}
    for model, values in expected.items():
        for resource, (remaining, limit) in values.items():
            rl = dict(provider="anthropic", model=model, resource=resource)
            assert registry.get_sample_value("llm_ratelimit_remaining", rl) == remaining, (model, resource)
            assert registry.get_sample_value("llm_ratelimit_limit", rl) == limit, (model, resource)


@pytest.mark.parametrize("mode", MODES)
def test_stream_cut_midway_is_error(mode, server, registry):
    async def body(c: Ctx) -> None:
        # what the SDK itself raises mid-stream differs by version (httpx's RemoteProtocolError
        # with anthropic 2.12, its APIConnectionError with 2.17): the caller gets the same as without us
        plain = type(c.client)(base_url=server.anthropic_base_url, api_key="test", max_retries=2)
        server.enqueue(Reply(text="a b c d e f", cut_after_deltas=2))
        with pytest.raises(Exception) as expected:
            await c.drain(await c(plain.messages.create, stream=True, **KW))
        await c.close(plain)
        server.enqueue(Reply(text="a b c d e f", cut_after_deltas=2))
        stream = await c(c.client.messages.create, stream=True, **KW)
        with pytest.raises(Exception) as info:
            await c.drain(stream)
        assert type(info.value) is type(expected.value)
        assert type(info.value).__name__ in ("RemoteProtocolError", "APIConnectionError")

    run(mode, server, body)
    assert_one(registry, MODEL, "error", error="connection")


@pytest.mark.parametrize("mode", MODES)
def test_overloaded_error_event_inside_stream(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="a b c", stream_error_type="overloaded_error"))
        stream = await c(c.client.messages.create, stream=True, **KW)
        with pytest.raises(anthropic.APIStatusError):
            await c.drain(stream)

    run(mode, server, body)
    assert_one(registry, MODEL, "error", error="overloaded")


@pytest.mark.parametrize("mode", MODES)
def test_timeout(mode, server, registry):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(delay_s=2.0))
        with pytest.raises(anthropic.APITimeoutError):
            await c(c.client.messages.create, **KW)

    run(mode, server, body, max_retries=0, timeout=0.2)
    assert_one(registry, MODEL, "error", error="timeout")


def _our_hooks(client) -> list:
    from llm_exporter.instrumentation._hooks import HOOK_ATTR

    hooks = client._client.event_hooks
    return [h for h in hooks["request"] + hooks["response"] if getattr(h, HOOK_ATTR, False)]


def test_instrument_is_idempotent_hooks_installed_once(server, registry):
    client = Anthropic(base_url=server.anthropic_base_url, api_key="test")
    assert llm_exporter.instrument(client) is client
    assert llm_exporter.instrument(client) is client
    derived = client.with_options(timeout=5)
    assert len(_our_hooks(client)) == 2 and len(_our_hooks(derived)) == 2  # one request, one response hook
    assert getattr(client, "middleware", ()) == () and getattr(derived, "middleware", ()) == ()  # no middleware added
    client.messages.create(**KW)
    derived.messages.create(**KW)
    lab = L(MODEL)
    assert registry.get_sample_value("llm_requests_total", dict(lab, finish_reason="stop")) == 2
    assert in_flight(registry, MODEL) == 0
    client.close()


def test_a_method_missing_from_the_installed_sdk_is_logged_once(server, registry, caplog):
    """A table entry the installed SDK does not have is skipped with one warning, however many
    clients are instrumented; the other methods are still recorded."""
    from llm_exporter.instrumentation import _calls

    table = (_calls.MethodSpec(("messages",), "create", "messages"),
             _calls.MethodSpec(("messages",), "summon", "messages"))
    clients = [Anthropic(base_url=server.anthropic_base_url, api_key="test") for _ in range(3)]
    with caplog.at_level("WARNING", logger="llm_exporter"):
        for client in clients:
            _calls.install_methods(client, "anthropic", table, None, False)
    missing = [r for r in caplog.records if "messages.summon is not in the installed SDK" in r.getMessage()]
    assert len(missing) == 1
    clients[0].messages.create(**KW)
    assert_one(registry, MODEL, "stop")
    for client in clients:
        client.close()


def test_user_middleware_keeps_working(server, registry):
    if "middleware" not in inspect.signature(Anthropic).parameters:
        pytest.skip("the installed anthropic has no client middleware")
    seen: list[int] = []

    def user_mw(request, call_next):
        response = call_next(request)
        seen.append(response.status_code)
        return response

    client = llm_exporter.instrument(Anthropic(base_url=server.anthropic_base_url, api_key="test",
                                               middleware=[user_mw]))
    server.enqueue(Reply(status=500, retry_after=0.01), Reply())
    client.messages.create(**KW)
    assert seen == [500, 200]
    assert registry.get_sample_value("llm_retries_total", L(MODEL)) == 1
    client.close()


@pytest.mark.parametrize("mode", MODES)
def test_stream_refusal_detected_when_opted_in(mode, server):
    async def body(c: Ctx) -> None:
        server.enqueue(Reply(text="I apologize, but I can't share that", chunk_delay_s=0.001))
        server.enqueue(Reply(text="Here is your triage label", chunk_delay_s=0.001))
        for _ in range(2):
            await c.drain(await c(c.client.messages.create, stream=True, **KW))

    reg = fresh_registry(refusal_detector=True)
    server.reset()
    run(mode, server, body)
    assert reg.get_sample_value("llm_refusals_total", L(MODEL)) == 1
    assert reg.get_sample_value("llm_requests_total", L(MODEL, finish_reason="stop")) == 2
