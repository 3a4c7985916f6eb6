"""The stream observer records exactly what a plain, block-by-block reading records.

The observer reads the head of a stream chunk by chunk and the rest in batches, skipping
blocks on their raw bytes (``skip_raw``, ``quiet_prefix``). Those shortcuts must never
change what is recorded: here streams from the fake provider's wire encoders, cut into
chunks in many ways and consumed the ways the SDKs consume them, go through the real
byte-stream wrapper, and the state left on the ``Call`` (what ``finish`` records) is
compared with a reference that parses every block.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import threading
import time
import warnings
from typing import Any, Callable, Iterator, Optional

import httpx
import pytest

from llm_exporter import metrics
from llm_exporter.fakeprovider import Reply, ToolCall
from llm_exporter.fakeprovider import anthropic_wire, openai_wire
from llm_exporter.fakeprovider.reply import RequestInfo, resolve
from llm_exporter.instrumentation import flush
from llm_exporter.instrumentation._events import DONE, INTERPRETERS
from llm_exporter.instrumentation._observe import (TAIL_CHUNKS, Observer, _stream_class, parse_block,
                                                   parse_lines)
from llm_exporter.instrumentation._tap import HEAD_STEP, tap
from llm_exporter.responses import read_usage
from llm_exporter.testing import fresh_registry


class StubCall:
    """The state a ``Call`` keeps, with the same merge rules (thread-safe: the worker may finish it)."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._first_token_at: Optional[float] = None
        self.first_tokens = 0
        self.model: Optional[str] = None
        self.usage: dict[str, Any] = {}
        self.finish_reason: Optional[str] = None
        self.refusal_checks: list[tuple[Optional[str], bool]] = []
        self.ends: list[tuple[str, Any]] = []  # finish / cancel calls
        self._lock = threading.Lock()
        self._deferred: list[Any] = []  # Call.defer: run when the state is read, as a batch runs before a scrape

    @property
    def clock(self) -> Callable[[], float]:
        return self._clock

    def first_token(self, at: Optional[float] = None) -> None:
        self.first_tokens += 1  # the Call keeps the first; the observer should call it once
        self._first_token_at = self._clock() if at is None else at

    def set_response_model(self, model: Any) -> None:
        self.model = model

    def record_usage(self, usage: Any) -> None:
        u = read_usage(usage)
        if u is not None:  # fields the object does not report keep their values, as in Call
            self.usage.update({k: v for k, v in u._asdict().items() if v is not None})

    def record_response(self, response: Any) -> None:
        self.record_usage(response.get("usage"))
        self.finish_reason = ("response", response.get("status"))

    def set_finish_reason(self, reason: Any) -> None:
        self.finish_reason = reason

    def check_refusal(self, text: Optional[str], explicit: bool = False) -> bool:
        self.refusal_checks.append((text, explicit))
        return False

    def finish(self, error: Any = None) -> None:
        with self._lock:
            self.ends.append(("finish", error if error is None or isinstance(error, str) else type(error).__name__))

    def cancel(self) -> None:
        with self._lock:
            self.ends.append(("cancel", None))

    def stop(self, at: Optional[float] = None) -> None:
        self._stopped_at = at  # the duration's end: Call's own tests cover it

    def defer(self, apply: Any) -> None:
        self._deferred.append(apply)

    def state(self) -> dict[str, Any]:
        while self._deferred:
            self._deferred.pop(0)()
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}


def reference(operation: str, body: bytes) -> dict[str, Any]:
    """Every block parsed and fed in order: what the observer must be equivalent to."""
    call = StubCall()
    interp = INTERPRETERS[operation](call)
    for block in body.replace(b"\r\n", b"\n").split(b"\n\n")[:-1]:
        event, data = parse_block(block)
        if data is None:
            continue
        result = interp.feed(event, data)
        if result is DONE:
            interp.end_text()
            call.finish()
            return call.state()
        if isinstance(result, Exception):
            call.finish(result)
            return call.state()
    call.finish("connection")
    return call.state()


class Chunks(httpx.SyncByteStream):
    """A response body that yields the given chunks."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks

    def close(self) -> None:
        self.closed = True


class StubState:
    """What a tap needs of ``CallState``: its call (open before anything deferred runs) and ``defer``."""

    def __init__(self, call: StubCall, operation: str) -> None:
        self.call = call
        self.operation = operation
        self.m = metrics.current()

    def defer(self, apply: Any) -> None:
        self.call.defer(apply)

    def count_retries(self) -> None:
        pass


def wrapped(call: StubCall, operation: str, chunks: Any, sdk_reads: bool = True, tapped: bool = False) -> Any:
    """The stream wrapper the instrumentation puts on a response body: a tap (a sync stream the
    SDK reads, single-process) or an observed stream (``sdk_reads`` False: a raw response)."""
    if tapped:
        response = httpx.Response(200, stream=chunks)
        return tap(StubState(call, operation), response, clock=call.clock)
    return _stream_class(httpx.Response(200), False)(chunks, Observer(call, operation, "sse", sdk_reads=sdk_reads))


def observed(operation: str, chunks: list[bytes], stop_after: Optional[bytes] = None,
             close_after: Optional[int] = None, sdk_reads: bool = True, tapped: bool = False) -> dict[str, Any]:
    """The real wrapper over ``chunks``, read as an SDK reads them.

    ``stop_after``: stop reading after the chunk that completes this event and close the response
    (OpenAI's SDK at ``[DONE]``); ``close_after``: the caller closes after that many chunks.
    ``sdk_reads``: the SDK's stream object reads the body (False: a caller reading a raw response).
    ``tapped``: through the tap (``_tap``), as a sync stream the SDK reads in a single-process app.
    """
    call = StubCall()
    stream = wrapped(call, operation, Chunks(chunks), sdk_reads, tapped)
    seen = b""
    for i, chunk in enumerate(stream, 1):
        seen = (seen + chunk)[-64:]
        if stop_after is not None and seen.replace(b"\r\n", b"\n").endswith(stop_after + b"\n\n"):
            break
        if close_after is not None and i >= close_after:
            break
    stream.close()
    flush()
    return call.state()


class AsyncChunks(httpx.AsyncByteStream):
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> Any:
        for chunk in self.chunks:
            yield chunk

    async def aclose(self) -> None:
        pass


def observed_async(operation: str, chunks: list[bytes]) -> dict[str, Any]:
    """The async wrapper over ``chunks``, read to the end (as AsyncAnthropic / AsyncOpenAI read it)."""
    call = StubCall()
    observer = Observer(call, operation, "sse")
    stream = _stream_class(httpx.Response(200), True)(AsyncChunks(chunks), observer)
    most = 0

    async def read() -> None:
        nonlocal most
        async for _ in stream:
            most = max(most, len(observer.tail))
        await stream.aclose()

    asyncio.run(read())
    flush()
    assert most < TAIL_CHUNKS  # read in batches, never collected whole
    return call.state()


# --- streams -------------------------------------------------------------------------

def _request(operation: str, model: str) -> RequestInfo:
    provider = "anthropic" if operation == "messages" else "openai"
    path = {"chat": "/v1/chat/completions", "responses": "/v1/responses", "messages": "/v1/messages"}[operation]
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "Summarise the report."}]}
    return RequestInfo(method="POST", path=path, headers={}, body=body, provider=provider, operation=operation,
                       model=model, stream=True, include_usage=True, index=0, retry_count=0)


_ENCODERS = {"chat": openai_wire.chat_stream, "responses": openai_wire.responses_stream,
             "messages": anthropic_wire.messages_stream}
LONG = " ".join(f"word{i}" for i in range(3 * TAIL_CHUNKS + 7))  # more chunks than a batch holds

REPLIES = {
    "short": Reply(text="Hello there, friend.", prompt_tokens=30, cached_tokens=10),
    "long": Reply(text=LONG, prompt_tokens=1200, cached_tokens=200),
    "length": Reply(text=LONG, finish_reason="length", prompt_tokens=10),
    "tools": Reply(text="Checking.", tool_calls=[ToolCall("lookup", '{"city": "Paris", "days": 3}')]),
    "reasoning": Reply(text="Done thinking. " * 20, reasoning_text="let me see " * 10, reasoning_tokens=25),
    "error": Reply(text=LONG, stream_error_type="server_error"),
}


def wire(operation: str, reply: Reply) -> bytes:
    req = _request(operation, "claude-haiku-4-5" if operation == "messages" else "gpt-4o-mini")
    return b"".join(event for event, _ in _ENCODERS[operation](resolve(reply, req), req))


def chat_two_choices() -> bytes:
    """n=2: choice 0 stops mid-stream while choice 1 goes on (no encoder makes this)."""
    def chunk(choices: list, usage: Any = None) -> bytes:
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                                       "choices": choices, "usage": usage}, separators=(",", ":")).encode() + b"\n\n"

    def delta(i: int, text: Optional[str], finish: Optional[str] = None) -> dict:
        return {"index": i, "delta": {} if text is None else {"content": text}, "finish_reason": finish}

    out = [chunk([delta(0, ""), delta(1, "")])]
    out += [chunk([delta(i % 2, f"w{i} ")]) for i in range(20)]
    out.append(chunk([delta(0, None, "length")]))
    out += [chunk([delta(1, f"v{i} ")]) for i in range(2 * TAIL_CHUNKS)]
    out.append(chunk([delta(1, None, "stop")]))
    out.append(chunk([], {"prompt_tokens": 5, "completion_tokens": 90, "total_tokens": 95}))
    return b"".join(out) + b"data: [DONE]\n\n"


def continuous_usage(body: bytes, only_in_deltas: bool = False) -> bytes:
    """Usage in every chunk, growing (OpenAI-compatible servers' continuous usage stats).

    ``only_in_deltas``: no finish chunk and no usage-only chunk, so the last delta holds the last usage.
    """
    out = []
    for i, block in enumerate(body.split(b"\n\n")[:-1]):
        data = block[len(b"data: "):]
        if data != b"[DONE]":
            chunk = json.loads(data)
            choices = chunk.get("choices")
            if only_in_deltas and (not choices or choices[0].get("finish_reason")):
                continue
            if choices:
                chunk["usage"] = {"prompt_tokens": 7, "completion_tokens": i, "total_tokens": 7 + i}
            data = json.dumps(chunk, separators=(",", ":")).encode()
        out.append(b"data: " + data)
    return b"\n\n".join(out) + b"\n\n"


def spaced(body: bytes) -> bytes:
    """The same chat stream with JSON written with spaces (as some proxies do)."""
    out = []
    for block in body.split(b"\n\n")[:-1]:
        data = block[len(b"data: "):]
        out.append(b"data: " + (data if data == b"[DONE]" else json.dumps(json.loads(data)).encode()))
    return b"\n\n".join(out) + b"\n\n"


def chunkings(body: bytes) -> Iterator[tuple[str, list[bytes]]]:
    yield "per event", re.findall(rb".*?(?:\r\n\r\n|\n\n)", body, re.S)
    yield "whole body", [body]
    yield "1 byte", [body[i:i + 1] for i in range(min(len(body), 3000))] + [body[3000:]]
    for size in (7, 100, 4096):
        yield f"{size} bytes", [body[i:i + size] for i in range(0, len(body), size)]
    rng = random.Random(len(body))
    cuts = sorted(rng.sample(range(1, len(body)), min(len(body) - 1, 60)))
    yield "random", [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]


BODIES = {f"{op}/{name}": (op, wire(op, reply)) for op in _ENCODERS for name, reply in REPLIES.items()}
BODIES["chat/two choices"] = ("chat", chat_two_choices())
BODIES["chat/continuous usage"] = ("chat", continuous_usage(wire("chat", REPLIES["long"])))
BODIES["chat/usage only in deltas"] = ("chat", continuous_usage(wire("chat", REPLIES["long"]), only_in_deltas=True))
BODIES["chat/spaced json"] = ("chat", spaced(wire("chat", REPLIES["long"])))
BODIES["messages/crlf"] = ("messages", wire("messages", REPLIES["long"]).replace(b"\n", b"\r\n"))
BODIES["chat/crlf"] = ("chat", wire("chat", REPLIES["long"]).replace(b"\n", b"\r\n"))


@pytest.mark.parametrize("refusals", [False, True], ids=["plain", "refusal detection"])
@pytest.mark.parametrize("name", sorted(BODIES))
def test_same_state_as_reading_every_block(name, refusals):
    fresh_registry(refusal_detector=refusals)  # detection on: the text at the start is collected too
    operation, body = BODIES[name]
    expected = reference(operation, body)
    assert len(expected["ends"]) == 1 and expected["first_tokens"] == 1
    assert expected["usage"] or expected["ends"] == [("finish", "StreamError")]
    for how, chunks in chunkings(body):
        assert observed(operation, chunks) == expected, how
        assert observed(operation, chunks, tapped=True) == expected, f"tapped, {how}"
        assert observed(operation, chunks, sdk_reads=False) == expected, f"raw response, {how}"
        if how in ("per event", "random"):
            assert observed_async(operation, chunks) == expected, f"async, {how}"
        if operation == "chat":  # the SDK stops reading at [DONE] and closes the response
            assert observed(operation, chunks, stop_after=b"data: [DONE]") == expected, how
            assert observed(operation, chunks, stop_after=b"data: [DONE]", tapped=True) == expected, how
            assert observed(operation, chunks, stop_after=b"data: [DONE]", sdk_reads=False) == expected, how


@pytest.mark.parametrize("operation", sorted(_ENCODERS))
def test_closed_early_is_cancelled_after_what_was_read(operation):
    fresh_registry()
    body = wire(operation, REPLIES["long"])
    chunks = [b + b"\n\n" for b in body.split(b"\n\n")[:-1]]
    for close_after in (8, TAIL_CHUNKS + 5, len(chunks) // 2):
        for sdk_reads, tapped in ((True, False), (False, False), (True, True)):
            state = observed(operation, chunks, close_after=close_after, sdk_reads=sdk_reads, tapped=tapped)
            assert state["ends"] == [("cancel", None)]
            assert state["first_tokens"] == 1 and state["model"]


@pytest.mark.parametrize("sdk_reads, most_held", [(True, TAIL_CHUNKS), (False, TAIL_CHUNKS - 1)])
def test_observer_collects_at_most_one_batch(sdk_reads, most_held):
    fresh_registry()
    body = wire("chat", REPLIES["long"])
    chunks = [b + b"\n\n" for b in body.split(b"\n\n")[:-1]]
    call = StubCall()
    observer = Observer(call, "chat", "sse", sdk_reads=sdk_reads)
    stream = iter(_stream_class(httpx.Response(200), False)(Chunks(chunks), observer))
    most = 0
    for _ in stream:
        most = max(most, len(observer.tail))
    assert most == most_held
    call.state()  # runs what the stream's end deferred (the batch runs before a scrape)
    assert observer.tail == []
    assert call.ends == [("finish", None)] and call.finish_reason == "stop"


@pytest.mark.parametrize("operation, reply, end", [
    ("chat", "long", ("finish", None)),
    ("chat", "error", ("finish", "StreamError")),
    ("messages", "error", ("finish", "StreamError")),
    ("responses", "error", ("finish", "StreamError")),
])
@pytest.mark.parametrize("sdk_reads, tapped", [(True, False), (False, False), (True, True)],
                         ids=["sdk stream", "raw response", "tapped"])
def test_last_event_in_its_own_chunk_ends_the_call_when_the_sdk_closes(operation, reply, end, sdk_reads, tapped):
    """The SDK stops reading at OpenAI's [DONE] and raises on error events, then closes the response.
    An early close is a cancellation, recorded on the worker thread; this close is the stream's end:
    the caller's thread stops the call's clock and leaves the tail to the next batch (raw responses
    read the last event as its chunk passes)."""
    fresh_registry()
    chunks = re.findall(rb".*?\n\n", wire(operation, REPLIES[reply]), re.S)
    assert len(chunks) > 2 * TAIL_CHUNKS
    call = StubCall()
    wrapper = wrapped(call, operation, Chunks(chunks), sdk_reads, tapped)
    stream = iter(wrapper)
    for _ in chunks:
        next(stream)  # the last chunk handed over; the SDK asks for no more
    if sdk_reads:
        assert call.ends == []
        wrapper.close()  # what the SDK does next
        flush()
        assert call.ends == [] and call._deferred  # not handed to the worker as an early close
    assert call.state()["ends"] == [end]


ODD_BLOCKS = [b"data: [DONE]", b"data:x", b"data:  two spaces", b"event: ping", b"event:ping\ndata: {}",
              b"event: a\nevent: b\ndata: 1", b"data: 1\ndata: 2", b"event: a\ndata: 1\ndata: 2",
              b": comment\ndata: 1", b"id: 7\ndata: 1", b"event: a\r\ndata: 1\r", b"data: caf\xc3\xa9",
              b"data: \xff", b"event: a \ndata: 1", b"", b"data:", b"event: x\ndata:"]


@pytest.mark.parametrize("name", sorted(BODIES))
def test_block_shortcut_reads_what_the_line_parser_reads(name):
    """parse_block's shortcut for one-data-line blocks gives what the line-by-line parser gives."""
    for block in BODIES[name][1].replace(b"\r\n", b"\n").split(b"\n\n")[:-1] + ODD_BLOCKS:
        assert parse_block(block) == parse_lines(block), block


class Ticking(Chunks):
    """Chunks whose arrival is a clock reading: the clock reads the index of the last chunk yielded."""

    def __init__(self, chunks: list[bytes]) -> None:
        super().__init__(chunks)
        self.now = -1.0

    def __iter__(self) -> Iterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            self.now = float(i)
            yield chunk


def first_token_chunk(operation: str, chunks: list[bytes]) -> int:
    """Index of the chunk that completes the block holding the first token (the reference reading)."""
    call = StubCall()
    interp = INTERPRETERS[operation](call)
    offset = 0
    for block in b"".join(chunks).split(b"\n\n")[:-1]:
        offset += len(block) + 2
        event, data = parse_block(block)
        if data is not None:
            interp.feed(event, data)
        if call.first_tokens:
            break
    ends = 0
    for i, chunk in enumerate(chunks):
        ends += len(chunk)
        if ends >= offset:
            return i
    raise AssertionError("no first token")


@pytest.mark.parametrize("sdk_reads, tapped", [(True, False), (False, False), (True, True)],
                         ids=["sdk stream", "raw response", "tapped"])
@pytest.mark.parametrize("name", ["chat/long", "chat/reasoning", "messages/long", "messages/tools",
                                  "responses/long"])
def test_first_token_is_timed_by_its_chunks_arrival(name, sdk_reads, tapped):
    """The head of a stream the SDK reads is read after it passed (with the batch, or once TAIL_CHUNKS
    wait); the first token is still timed when its chunk arrived, for every chunking (1-byte chunks put
    it hundreds of chunks in)."""
    fresh_registry()
    operation, body = BODIES[name]
    for how, chunks in chunkings(body):
        source = Ticking(chunks)
        call = StubCall(clock=lambda: source.now)
        stream = wrapped(call, operation, source, sdk_reads, tapped)
        for _ in stream:
            pass
        stream.close()
        state = call.state()
        assert state["first_tokens"] == 1, how
        assert call._first_token_at == first_token_chunk(operation, chunks), how


@pytest.mark.parametrize("name", ["chat/long", "messages/long", "responses/long"])
def test_clock_readings_stop_after_the_chunks_holding_the_first_token(name):
    """As the APIs send them (an event per chunk), the first token is within the first TAIL_CHUNKS chunks:
    only those keep a clock reading (Interpreter.TOKEN_BLOCK), and they are not read in the call;
    the rest are only collected."""
    fresh_registry()
    operation, body = BODIES[name]
    chunks = re.findall(rb".*?\n\n", body, re.S)
    assert len(chunks) > 2 * TAIL_CHUNKS
    call = StubCall()
    observer = Observer(call, operation, "sse", sdk_reads=True)
    most = 0
    for i, _ in enumerate(_stream_class(httpx.Response(200), False)(Chunks(chunks), observer)):
        most = max(most, len(observer.timed))
        if i < 2 * TAIL_CHUNKS - 1:
            assert call.state()["first_tokens"] == 0  # nothing read yet
    assert most == TAIL_CHUNKS
    assert call.state() == reference(operation, body)


@pytest.mark.parametrize("name", ["chat/long", "messages/long", "responses/long"])
def test_tap_reads_nothing_in_the_call(name):
    """A tapped stream (sync, read by the SDK, single-process) is read with the batch only: in the
    call its chunks are handed over every TAIL_CHUNKS, and only the head's (HEAD_STEP chunks, as the
    APIs send them) get a clock reading."""
    fresh_registry()
    operation, body = BODIES[name]
    chunks = re.findall(rb".*?\n\n", body, re.S)
    assert len(chunks) > 2 * TAIL_CHUNKS and len(chunks) % TAIL_CHUNKS
    readings: list[float] = []
    call = StubCall(clock=lambda: readings.append(float(len(readings))) or readings[-1])
    for _ in wrapped(call, operation, Chunks(chunks), tapped=True):
        assert call.first_tokens == 0 and call.model is None and not call.usage  # nothing read here
    assert call.ends == []
    # a hand-over per TAIL_CHUNKS after the head, the last at the end
    assert len(call._deferred) == (len(chunks) - HEAD_STEP) // TAIL_CHUNKS + 1
    assert len(readings) == HEAD_STEP + 1  # the head's chunks (the first token is among them), the end
    assert call.state() == reference(operation, body)
    assert call._stopped_at == readings[-1]


@pytest.mark.parametrize("name", sorted(BODIES))
def test_token_hint_finds_what_the_whole_pattern_finds(name):
    """``holds_token`` starts its search at the first ``TOKEN_HINT``: for every head of every body
    (cut at every block end and every 17th byte), the same answer as searching all of it."""
    operation, body = BODIES[name]
    interp = INTERPRETERS[operation]
    assert interp.TOKEN_BLOCK is not None
    ends = {m.end() for m in re.finditer(rb"\n\n", body)} | set(range(0, len(body) + 1, 17))
    found = []
    for end in sorted(ends):
        head = body[:end]
        whole = head.find(b"\r") < 0 and interp.TOKEN_BLOCK.search(head) is not None
        assert interp.holds_token(head) == whole, (name, end)
        found.append(whole)
    if name.endswith("/long"):
        assert True in found and False in found  # the check is not vacuous


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_starts_its_own_worker():
    """Cancelled streams are recorded by a worker thread; a forked child has none of the parent's
    threads, so it starts its own (``flush`` waits for the worker to run a queued item)."""
    assert flush(5.0)  # the parent's worker runs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() of a process with threads
        pid = os.fork()
    if pid == 0:  # the child: exit status 0 only if its worker ran the item
        try:
            os._exit(0 if flush(5.0) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
