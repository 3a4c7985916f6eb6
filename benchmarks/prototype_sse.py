"""Prototype (benchmark only): the earlier stream design, every chunk read as it passes.

``FastObserver`` reads each chunk as it passes and skips hot-path SSE blocks on their
raw bytes (``bytes.startswith``/``find``) once the first token and the model are seen.
Its raw skips went into the exporter; the exporter has since moved on to reading only
the head of a stream chunk by chunk and the rest in batches from the last quiet block
(``instrumentation._observe``). The prototype stays as the yardstick for that change.

``measure()`` captures real SSE bytes from the local protocol server (as httpx
delivers them to the SDK), times the exporter's own stream wrapper and the prototype
on them with a stub call, and checks they make the same calls on the call.
Not used by the exporter.
"""

from __future__ import annotations

import json
import time
from typing import Any, Callable, Optional


class StubCall:
    """Records what an observer asks of the call (cheap, so parsing cost dominates)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, Any]] = []

    def first_token(self, at: Any = None) -> None:
        self.log.append(("first_token", None))

    def stop(self) -> None:
        pass

    def defer(self, apply: Any) -> None:
        apply()  # the batch at once: the observation's whole cost is timed

    def set_response_model(self, m: Any) -> None:
        self.log.append(("model", m))

    def record_usage(self, u: Any) -> None:
        self.log.append(("usage", u))

    def record_response(self, r: Any) -> None:
        self.log.append(("response", r))

    def set_finish_reason(self, r: Any) -> None:
        self.log.append(("finish_reason", r))

    def check_refusal(self, *a: Any, **k: Any) -> bool:
        return False

    def finish(self, error: Any = None) -> None:
        self.log.append(("finish", repr(error)))

    def cancel(self) -> None:
        self.log.append(("cancel", None))


def _skip_chat(buf: bytes, s: int, e: int, interp: Any) -> bool:
    return (interp.model_set and buf.find(b'"finish_reason":null', s, e) >= 0
            and buf.find(b'"error"', s, e) < 0
            and (buf.find(b'"usage"', s, e) < 0 or buf.find(b'"usage":null', s, e) >= 0))


def _skip_messages(buf: bytes, s: int, e: int, interp: Any) -> bool:
    return buf.startswith(b"event: content_block_delta", s) or buf.startswith(b"event: ping", s)


def _skip_responses(buf: bytes, s: int, e: int, interp: Any) -> bool:
    if not buf.startswith(b"event: ", s):
        return False
    nl = buf.find(b"\n", s, e)
    return nl > 0 and buf[nl - 6:nl] == b".delta"


SKIP: dict[str, Callable[[bytes, int, int, Any], bool]] = {
    "chat": _skip_chat, "completions": _skip_chat, "messages": _skip_messages, "responses": _skip_responses,
}


class FastObserver:
    """Same contract as ``_observe.Observer`` for kind "sse" (feed / end)."""

    def __init__(self, call: Any, operation: str) -> None:
        from llm_exporter.instrumentation._events import DONE, INTERPRETERS

        self.call = call
        self.done = False
        self._done_marker = DONE
        self.interp = INTERPRETERS[operation](call)
        self.skip = SKIP[operation]
        self.buf = b""

    def _finish(self, error: Any = None) -> None:
        if not self.done:
            self.done = True
            self.call.finish(error=error)

    def feed(self, chunk: bytes) -> None:
        if self.done:
            return
        buf = self.buf + chunk if self.buf else chunk
        if b"\r" in chunk:
            buf = buf.replace(b"\r\n", b"\n")
        interp, skip = self.interp, self.skip
        start = 0
        while True:
            end = buf.find(b"\n\n", start)
            if end < 0:
                break
            s, start = start, end + 2
            if interp.seen_token and not interp.collecting and skip(buf, s, end, interp):
                continue
            event: Optional[str] = None
            data: list[str] = []
            for line in buf[s:end].decode("utf-8", "replace").split("\n"):
                if line.startswith("data:"):
                    data.append(line[6:] if line[5:6] == " " else line[5:])
                elif line.startswith("event:"):
                    event = line[6:].strip()
            if not data:
                continue
            result = interp.feed(event, "\n".join(data))
            if result is self._done_marker:
                interp.end_text()
                self._finish()
                return
            if isinstance(result, Exception):
                self._finish(result)
                return
        self.buf = buf[start:]

    def end(self) -> None:
        self._finish("connection")


def capture(port: int) -> dict[str, list[bytes]]:
    """Raw SSE chunks of one streamed call per operation, as httpx yields them."""
    import httpx

    from benchmarks.bench_instrument import MESSAGES

    base = f"http://127.0.0.1:{port}"
    reqs = {
        "chat": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True,
                                          "stream_options": {"include_usage": True}}),
        "messages": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 256, "messages": MESSAGES,
                                      "stream": True}),
        "responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "Summarise the report.", "stream": True}),
    }
    out = {}
    with httpx.Client() as c:
        for op, (path, body) in reqs.items():
            with c.stream("POST", base + path, json=body,
                          headers={"x-api-key": "bench", "anthropic-version": "2023-06-01"}) as r:
                out[op] = list(r.iter_raw())
    return out


def measure(port: int, reps: int = 300, rounds: int = 7) -> dict[str, Any]:
    """us per stream for the exporter's Observer vs FastObserver, and whether their calls match."""
    from llm_exporter.instrumentation._observe import Observer, _stream_class

    from benchmarks import harness as H

    streams = capture(port)

    import httpx

    stream_class = _stream_class(httpx.Response(200), False)

    class Body(httpx.SyncByteStream):
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def __iter__(self) -> Any:
            return iter(self.chunks)

    def run_current(op: str, chunks: list[bytes]) -> StubCall:
        # the exporter's own path: its byte-stream wrapper over the body (head chunk by chunk,
        # the rest in batches), read to the end as the SDK reads it
        call = StubCall()
        for _ in stream_class(Body(chunks), Observer(call, op, "sse")):
            pass
        return call

    def run_fast(op: str, chunks: list[bytes]) -> StubCall:
        call = StubCall()
        obs = FastObserver(call, op)
        for ch in chunks:
            obs.feed(ch)
        if not obs.done:
            obs.end()
        return call

    result: dict[str, Any] = {}
    for op, chunks in streams.items():
        same = run_current(op, chunks).log == run_fast(op, chunks).log
        cases = {f"{op}: exporter Observer": (lambda n, op=op, ch=chunks: [run_current(op, ch) for _ in range(n)]),
                 f"{op}: prototype FastObserver": (lambda n, op=op, ch=chunks: [run_fast(op, ch) for _ in range(n)])}
        comp = H.interleaved(cases, ops=reps, rounds=rounds, unit="us/stream", scale=1e6)
        names = list(cases)
        result[op] = {"chunks": len(chunks), "same_calls": same,
                      "current_us": comp.median(names[0]), "fast_us": comp.median(names[1]),
                      "ratio": comp.ratio(names[1], names[0])}
    return result


if __name__ == "__main__":
    from benchmarks.bench_instrument import start_server, stop_server

    proc, port = start_server()
    try:
        t0 = time.perf_counter()
        print(json.dumps(measure(port), indent=1), time.perf_counter() - t0)
    finally:
        stop_server(proc)
