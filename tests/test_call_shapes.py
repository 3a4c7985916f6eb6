"""The caller gets exactly what the SDK hands back: plain vs instrumented client, call shape by shape.

Each shape runs twice against the local protocol server, once on a plain client and once on an
instrumented one (the server reset in between, so ids match), and what the caller can observe is
compared: result and event types, dumped values, chunk sequences, exceptions, and the HTTP
response's public attributes (``elapsed``, ``status_code``, ``headers``, ``http_version``,
``is_closed``, ``url``). The instrumented run must also have recorded its calls. Shapes the
installed SDK does not have are skipped with the reason (the floor run: ``scripts/test-floors``).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any, Awaitable, Callable

import pytest
from anthropic import Anthropic, AsyncAnthropic
from openai import AsyncOpenAI, OpenAI

import llm_exporter
from llm_exporter import contract
from llm_exporter.fakeprovider import Reply, ToolCall
from llm_exporter.testing import fresh_registry

MODES = ["sync", "async"]
MSGS = [{"role": "user", "content": "hello there"}]
OA = dict(model="gpt-4o-mini", messages=MSGS)
AN = dict(model="claude-sonnet-4-5", max_tokens=100, messages=MSGS)
USAGE = dict(prompt_tokens=20, cached_tokens=5, completion_tokens=10, reasoning_tokens=4)
#: values that differ between two identical requests (clock, per-process counters)
VOLATILE = frozenset(("created", "created_at", "date", "x-request-id", "request-id", "req_id"))


class Side:
    """One client (plain or instrumented) with helpers that hide the sync/async difference."""

    def __init__(self, provider: str, mode: str, server: Any, instrumented: bool) -> None:
        self.mode = mode
        if provider == "openai":
            cls = AsyncOpenAI if mode == "async" else OpenAI
            client = cls(base_url=server.openai_base_url, api_key="test", max_retries=2)
        else:
            cls = AsyncAnthropic if mode == "async" else Anthropic
            client = cls(base_url=server.anthropic_base_url, api_key="test", max_retries=2)
        self.client = llm_exporter.instrument(client) if instrumented else client

    async def __call__(self, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        r = fn(*a, **kw)
        return await r if inspect.isawaitable(r) else r

    async def events(self, stream: Any, limit: int | None = None) -> list[Any]:
        """Iterate ``stream``; the items seen and, if it raised, the exception (kept as a value)."""
        out: list[Any] = []
        try:
            if self.mode == "async":
                async for x in stream:
                    out.append(dump(x))
                    if limit is not None and len(out) >= limit:
                        break
            else:
                for x in stream:
                    out.append(dump(x))
                    if limit is not None and len(out) >= limit:
                        break
        except Exception as exc:
            out.append(error(exc))
        return out

    async def close(self, obj: Any) -> None:
        r = obj.close()
        if inspect.isawaitable(r):
            await r

    def enter(self, cm: Any) -> Any:
        return _Enter(self.mode, cm)


class _Enter:
    def __init__(self, mode: str, cm: Any) -> None:
        self.mode, self.cm = mode, cm

    async def __aenter__(self) -> Any:
        return await self.cm.__aenter__() if self.mode == "async" else self.cm.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        if self.mode == "async":
            await self.cm.__aexit__(*exc)
        else:
            self.cm.__exit__(*exc)


def dump(value: Any) -> Any:
    """What a caller can see of a value, with the per-request volatile fields left out."""
    if hasattr(value, "model_dump"):
        return {"__type__": type(value).__name__, **dump(value.model_dump())}
    if isinstance(value, dict):
        return {k: dump(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, (list, tuple)):
        return [dump(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return type(value).__name__


def error(exc: BaseException) -> dict[str, Any]:
    return {"raised": type(exc).__name__, "message": str(exc), "status": getattr(exc, "status_code", None)}


def http(response: Any) -> dict[str, Any]:
    """The public attributes of an httpx / httpx2 response, as the caller reads them."""
    out: dict[str, Any] = {"type": type(response).__name__}
    for name in ("elapsed", "status_code", "headers", "http_version", "is_closed", "url"):
        try:
            value = getattr(response, name)
        except Exception as exc:  # the plain response must raise the same
            out[name] = error(exc)
            continue
        if name == "elapsed":
            value = type(value).__name__  # a timedelta; its size differs run to run
        elif name == "headers":
            value = sorted((k.lower(), v) for k, v in value.items() if k.lower() not in VOLATILE)
        elif name == "url":
            value = str(value)
        out[name] = value
    return out


async def attempt(fn: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await fn()
    except Exception as exc:
        return error(exc)


def sdk_has(client: Any, path: str) -> bool:
    obj = client
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return False
    return True


def resolve(client: Any, *paths: str) -> Any:
    """The first of ``paths`` the installed SDK has (helpers moved out of ``beta`` over time)."""
    for path in paths:
        if sdk_has(client, path):
            obj = client
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
    pytest.skip(f"not in this SDK version: {paths[0]}")


# --- the shapes: (provider, replies, act, calls recorded) ------------------------------------------
# ``act(side)`` returns what the caller observed; ``replies`` are enqueued before each side runs.


async def oa_plain(s: Side) -> Any:
    return dump(await s(s.client.chat.completions.create, **OA))


async def oa_stream(s: Side) -> Any:
    stream = await s(s.client.chat.completions.create, **OA, stream=True, stream_options={"include_usage": True})
    return [type(stream).__name__, await s.events(stream), http(stream.response)]


async def oa_stream_helper(s: Side) -> Any:
    method = resolve(s.client, "chat.completions.stream", "beta.chat.completions.stream")
    async with s.enter(method(**OA, stream_options={"include_usage": True})) as stream:
        events = await s.events(stream)
        final = dump(await s(stream.get_final_completion))
        return [type(stream).__name__, events, final]


async def oa_parse(s: Side) -> Any:
    method = resolve(s.client, "chat.completions.parse", "beta.chat.completions.parse")
    return dump(await s(method, **OA))


async def oa_raw(s: Side) -> Any:
    raw = await s(s.client.chat.completions.with_raw_response.create, **OA)
    return [type(raw).__name__, raw.status_code, http(raw.http_response), dump(await s(raw.parse))]


async def oa_streaming_response(s: Side) -> Any:
    cm = s.client.chat.completions.with_streaming_response.create(**OA, stream=True)
    async with s.enter(cm) as response:
        lines = ([x async for x in response.iter_lines()] if s.mode == "async" else list(response.iter_lines()))
        inside = http(response.http_response)
    return [type(response).__name__, [x for x in lines if '"created"' not in x], inside,
            http(response.http_response)]


async def oa_responses(s: Side) -> Any:
    resolve(s.client, "responses.create")
    plain = dump(await s(s.client.responses.create, model="gpt-4o-mini", input="hi"))
    stream = await s(s.client.responses.create, model="gpt-4o-mini", input="hi", stream=True)
    return [plain, await s.events(stream), http(stream.response)]


async def oa_responses_helper(s: Side) -> Any:
    method = resolve(s.client, "responses.stream")
    async with s.enter(method(model="gpt-4o-mini", input="hi")) as stream:
        events = await s.events(stream)
        final = await attempt(lambda: s(stream.get_final_response))  # raises for an incomplete response
    return [type(stream).__name__, events, dump(final)]


async def oa_embeddings(s: Side) -> Any:
    return dump(await s(s.client.embeddings.create, model="text-embedding-3-small", input="hi"))


async def oa_retries(s: Side) -> Any:
    raw = await s(s.client.chat.completions.with_raw_response.create, **OA)
    return [dump(await s(raw.parse)), http(raw.http_response),
            await attempt(lambda: s(s.client.chat.completions.create, **OA))]


async def oa_error_event(s: Side) -> Any:
    stream = await s(s.client.chat.completions.create, **OA, stream=True)
    return [await s.events(stream), http(stream.response)]


async def oa_closed_early(s: Side) -> Any:
    stream = await s(s.client.chat.completions.create, **OA, stream=True)
    first = await s.events(stream, limit=1)
    await s.close(stream)
    return [first, http(stream.response)]


async def oa_dropped(s: Side) -> Any:
    stream = await s(s.client.chat.completions.create, **OA, stream=True)
    seen = http(stream.response)
    del stream
    gc.collect()
    return seen


async def an_plain(s: Side) -> Any:
    return dump(await s(s.client.messages.create, **AN))


async def an_stream(s: Side) -> Any:
    stream = await s(s.client.messages.create, **AN, stream=True)
    return [type(stream).__name__, await s.events(stream), http(stream.response)]


async def an_stream_helper(s: Side) -> Any:
    async with s.enter(s.client.messages.stream(**AN)) as stream:
        events = await s.events(stream)
        final = dump(await s(stream.get_final_message))
        return [type(stream).__name__, events, final, http(stream.response)]


async def an_stream_helper_text(s: Side) -> Any:
    async with s.enter(s.client.messages.stream(**AN)) as stream:
        if s.mode == "async":
            text = [t async for t in stream.text_stream]
        else:
            text = list(stream.text_stream)
    return [text, http(stream.response)]


async def an_parse(s: Side) -> Any:
    return dump(await s(resolve(s.client, "messages.parse"), **AN))


async def an_raw(s: Side) -> Any:
    raw = await s(s.client.messages.with_raw_response.create, **AN)
    return [type(raw).__name__, raw.status_code, http(raw.http_response), dump(await s(raw.parse))]


async def an_streaming_response(s: Side) -> Any:
    async with s.enter(s.client.messages.with_streaming_response.create(**AN, stream=True)) as response:
        lines = ([x async for x in response.iter_lines()] if s.mode == "async" else list(response.iter_lines()))
    return [type(response).__name__, lines, http(response.http_response)]


async def an_error(s: Side) -> Any:
    return [await attempt(lambda: s(s.client.messages.create, **AN))]


async def an_error_event(s: Side) -> Any:
    stream = await s(s.client.messages.create, **AN, stream=True)
    return [await s.events(stream), http(stream.response)]


async def an_closed_early(s: Side) -> Any:
    async with s.enter(s.client.messages.stream(**AN)) as stream:
        first = await s.events(stream, limit=2)
    return [first, http(stream.response)]


async def an_dropped(s: Side) -> Any:
    stream = await s(s.client.messages.create, **AN, stream=True)
    seen = http(stream.response)
    del stream
    gc.collect()
    return seen


LONG = " ".join(f"w{i}" for i in range(40))

SHAPES: dict[str, tuple[str, Callable[[], list[Reply]], Callable[[Side], Awaitable[Any]], dict[str, int]]] = {
    # name: (provider, replies, act, {finish_reason: calls recorded})
    "openai chat": ("openai", lambda: [Reply(text="Paris.", **USAGE)], oa_plain, {"stop": 1}),
    "openai chat stream=True": ("openai", lambda: [Reply(text="one two three", **USAGE)], oa_stream, {"stop": 1}),
    "openai chat.completions.stream()": (
        "openai", lambda: [Reply(text="", tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')], **USAGE)],
        oa_stream_helper, {"tool_calls": 1}),
    "openai chat parse": ("openai", lambda: [Reply(text="ok", **USAGE)], oa_parse, {"stop": 1}),
    "openai with_raw_response": ("openai", lambda: [Reply(text="raw", **USAGE)], oa_raw, {"stop": 1}),
    "openai with_streaming_response stream": (
        "openai", lambda: [Reply(text="a b c", **USAGE)], oa_streaming_response, {"other": 1}),
    "openai responses": ("openai", lambda: [Reply(text="answer", **USAGE), Reply(text="streamed answer", **USAGE)],
                         oa_responses, {"stop": 2}),
    "openai responses.stream()": ("openai", lambda: [Reply(text="x y", finish_reason="length", **USAGE)],
                                  oa_responses_helper, {"length": 1}),
    "openai embeddings": ("openai", lambda: [Reply(prompt_tokens=7)], oa_embeddings, {"stop": 1}),
    "openai 429 retried, then 500 exhausted": (
        "openai", lambda: [Reply(status=429, retry_after=0.01), Reply(**USAGE),
                           Reply(status=500, retry_after=0.01), Reply(status=500, retry_after=0.01),
                           Reply(status=500, retry_after=0.01)],
        oa_retries, {"stop": 1, "error": 1}),
    "openai error event mid-stream": ("openai", lambda: [Reply(text=LONG, stream_error_type="server_error")],
                                      oa_error_event, {"error": 1}),
    "openai cut stream": ("openai", lambda: [Reply(text=LONG, cut_after_deltas=3)], oa_error_event, {"error": 1}),
    "openai invalid JSON mid-stream": ("openai", lambda: [Reply(text=LONG, bad_json_after_deltas=3)],
                                       oa_error_event, {"error": 1}),
    "openai closed early": ("openai", lambda: [Reply(text=LONG, chunk_delay_s=0.002)], oa_closed_early,
                            {"cancelled": 1}),
    "openai dropped unread": ("openai", lambda: [Reply(text=LONG)], oa_dropped, {"cancelled": 1}),
    "anthropic messages": ("anthropic", lambda: [Reply(text="Bonjour.", **USAGE)], an_plain, {"stop": 1}),
    "anthropic stream=True": ("anthropic", lambda: [Reply(text="one two", **USAGE)], an_stream, {"stop": 1}),
    "anthropic messages.stream()": (
        "anthropic", lambda: [Reply(text="", tool_calls=[ToolCall("lookup", '{"q": 1}')], **USAGE)],
        an_stream_helper, {"tool_calls": 1}),
    "anthropic messages.stream() text_stream": (
        "anthropic", lambda: [Reply(text="a b c", finish_reason="max_tokens", **USAGE)], an_stream_helper_text,
        {"length": 1}),
    "anthropic parse": ("anthropic", lambda: [Reply(text="ok", **USAGE)], an_parse, {"stop": 1}),
    "anthropic with_raw_response": ("anthropic", lambda: [Reply(text="raw", **USAGE)], an_raw, {"stop": 1}),
    "anthropic with_streaming_response stream": ("anthropic", lambda: [Reply(text="a b", **USAGE)],
                                                 an_streaming_response, {"other": 1}),
    "anthropic 529 retried then exhausted": (
        "anthropic", lambda: [Reply(status=529, retry_after=0.01)] * 3, an_error, {"error": 1}),
    "anthropic error event mid-stream": (
        "anthropic", lambda: [Reply(text=LONG, stream_error_type="overloaded_error")], an_error_event, {"error": 1}),
    "anthropic cut stream": ("anthropic", lambda: [Reply(text=LONG, cut_after_deltas=3)], an_error_event,
                             {"error": 1}),
    "anthropic invalid JSON mid-stream": ("anthropic", lambda: [Reply(text=LONG, bad_json_after_deltas=3)],
                                          an_error_event, {"error": 1}),
    "anthropic closed early": ("anthropic", lambda: [Reply(text=LONG, chunk_delay_s=0.002)], an_closed_early,
                               {"cancelled": 1}),
    "anthropic dropped unread": ("anthropic", lambda: [Reply(text=LONG)], an_dropped, {"cancelled": 1}),
}


def observe(server: Any, provider: str, mode: str, replies: list[Reply],
            act: Callable[[Side], Awaitable[Any]], instrumented: bool) -> Any:
    server.reset()
    server.enqueue(*replies)

    async def main() -> Any:
        side = Side(provider, mode, server, instrumented)
        try:
            return await act(side)
        finally:
            await side.close(side.client)

    return asyncio.run(main())


def recorded(reg: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for reason in contract.FINISH_REASONS:
        total = 0.0
        for fam in reg.collect():
            for sample in fam.samples:
                if sample.name == "llm_requests_total" and sample.labels.get("finish_reason") == reason:
                    total += sample.value
        if total:
            out[reason] = total
    return out


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_caller_gets_what_the_plain_sdk_gives(shape, mode, server):
    provider, replies, act, calls = SHAPES[shape]
    fresh_registry()
    plain = observe(server, provider, mode, replies(), act, instrumented=False)
    reg = fresh_registry()
    instrumented = observe(server, provider, mode, replies(), act, instrumented=True)
    assert instrumented == plain
    gc.collect()
    assert recorded(reg) == calls
    in_flight = [s.value for fam in reg.collect() for s in fam.samples if s.name == "llm_in_flight_requests"]
    assert in_flight and set(in_flight) == {0.0}
