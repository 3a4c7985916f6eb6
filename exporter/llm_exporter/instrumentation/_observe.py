"""Observing a response body on its way to the SDK, and finishing the call when it ends.

The successful attempt's ``response.stream`` (httpx/httpx2 byte stream) is wrapped
by one that passes every chunk through unchanged and feeds an observer. The call
finishes exactly once: at the stream's terminal event, on an error event or read
error, when the body ends without a terminal event (truncated: ``connection``),
or, if the caller closes the response or drops it early, as ``cancelled``.
(A sync stream the SDK reads in a single-process app is read from the SDK's events
instead, ``_parsed``; one from a stream helper's manager is tapped, ``_tap``, and read
here with the batch of finished calls.)

Cancellations from ``close()`` and from garbage collection are recorded by a
small worker thread: they may run inside a finalizer, and recording there could
deadlock on a metric lock the same thread already holds.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from itertools import filterfalse, islice
from operator import itemgetter
from typing import Any, Callable, Iterator, Optional

from ..errors import log_failure
from ._events import DONE, INTERPRETERS

# --- deferred cancellations ---------------------------------------------------------

_pending: "queue.SimpleQueue[Any]" = queue.SimpleQueue()  # put() is safe in __del__
_worker: Optional[threading.Thread] = None  # None in a forked child: its thread is the parent's
_worker_lock = threading.Lock()


def _work() -> None:
    while True:
        item = _pending.get()
        if isinstance(item, threading.Event):
            item.set()
            continue
        try:
            item()
        except Exception:
            log_failure("instrument.cancel", "recording a cancelled stream failed")


def ensure_worker() -> None:
    """Start the worker thread, once per process (runs for every stream: one global read)."""
    global _worker
    if _worker is not None:
        return  # it never ends: _work catches what an item raises
    with _worker_lock:
        if _worker is None:
            worker = threading.Thread(target=_work, name="llm-exporter-streams", daemon=True)
            worker.start()
            _worker = worker


def _after_fork_in_child() -> None:
    global _worker, _worker_lock
    _worker = None  # threads do not survive a fork
    _worker_lock = threading.Lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def flush(timeout: float = 5.0) -> bool:
    """Wait until cancellations queued so far are recorded (tests, shutdown hooks)."""
    ensure_worker()
    done = threading.Event()
    _pending.put(done)
    return done.wait(timeout)


# --- SSE parsing ----------------------------------------------------------------------


def parse_block(block: bytes) -> tuple[Optional[str], Optional[str]]:
    """``(event, data)`` of one SSE event block (data None if it has no data lines)."""
    # the shapes the APIs send, one data line with or without an event line, without a line loop
    if block.find(b"\r") < 0:
        if block.startswith(b"data: "):
            if block.find(b"\n") < 0:
                return None, block[6:].lstrip(b" ").decode("utf-8", "replace")
        elif block.startswith(b"event:"):
            nl = block.find(b"\n")
            if nl > 0 and block.startswith(b"data: ", nl + 1) and block.find(b"\n", nl + 1) < 0:
                return (block[6:nl].decode("utf-8", "replace").strip(),
                        block[nl + 7:].lstrip(b" ").decode("utf-8", "replace"))
    return parse_lines(block)


def parse_lines(block: bytes) -> tuple[Optional[str], Optional[str]]:
    """``parse_block`` for any block: line by line."""
    event: Optional[str] = None
    data: list[str] = []
    for line in block.decode("utf-8", "replace").split("\n"):
        line = line.rstrip("\r")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" ") if line[5:6] == " " else line[5:])
        elif line.startswith("event:"):
            event = line[6:].strip()
    return event, ("\n".join(data) if data else None)


# --- the observer ---------------------------------------------------------------------


#: Chunks kept before a batch is read (bounds the memory held for a stream).
TAIL_CHUNKS = 64


_chunk_of = itemgetter(0)


class Observer:
    """Feeds a call from a body (``kind`` "sse" or "json") and finishes it once.

    SSE bytes are split into event blocks here; a block the interpreter would ignore
    (``skip_raw``: content deltas once the first token is seen, pings) is skipped on
    the raw bytes, never decoded or parsed.

    Two phases keep the per-chunk cost low. At the head of a stream, until the first token,
    every chunk is read with its arrival time: for a stream the SDK reads (sync), the chunks
    pass through C code into ``timed`` with a reading of the call's clock each, until the
    raw bytes surely hold the first token (``head_has_token``, looked at when ``TAIL_CHUNKS``
    are waiting: most streams end before), and are read later (``read_timed``), the first
    token timed by its chunk's arrival; otherwise each chunk is read as it passes, until the
    interpreter is ``settled``.
    After the head, chunks are only collected in ``tail`` and read in batches: when
    ``TAIL_CHUNKS`` are waiting, when a chunk ends with the interpreter's ``END`` (OpenAI's
    ``[DONE]``) or starts with its ``ERROR_START`` (the SDK stops reading at both), at the
    body's end, on a read error, and, on the worker thread, when the response is closed
    before its end (the caller stopped early, or the SDK raised on an error event that came
    inside a chunk). Only the batch's part from its last quiet block on is read
    (``Interpreter.quiet_prefix``).
    """

    done = False
    broken = False
    handed_off = False
    _buf = b""
    _interp: Any = None
    # compared with a chunk's last / first bytes only: a slice compare costs the same for any chunk
    end_bytes = b""
    error_start = b""
    #: the call's clock, when the head is read after it passed: only streams the SDK reads (the
    #: caller of a raw response may hold a chunk for long before it closes the response)
    clock: Optional[Callable[[], float]] = None

    def __init__(self, call: Any, operation: str, kind: str, sdk_reads: bool = False,
                 refusals: Optional[bool] = None) -> None:
        """``refusals``: whether a refusal detector is configured (default: look it up)."""
        self.call = call
        self.kind = kind
        #: the SDK's own stream object reads the body (not the caller, through a raw response): it closes
        #: the response right after the event it stops at, in the same read (see ``closing``)
        self.sdk_reads = sdk_reads
        interp = INTERPRETERS.get(operation) if kind == "sse" else None
        if interp is not None:
            self._interp = interp(call, refusals)
            self.end_bytes = interp.END
            self.error_start = interp.ERROR_START
            if sdk_reads:
                clock = getattr(call, "clock", None)
                self.clock = clock if callable(clock) else None
        self._body: list[bytes] = []
        self.tail: list[bytes] = []
        #: ``(chunk, arrival)`` pairs of the head not read yet (see ``read_timed``)
        self.timed: list[tuple[bytes, float]] = []
        ensure_worker()

    def _finish(self, error: Any = None) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.call.finish(error=error)
        except Exception:
            log_failure("instrument.finish", "finishing a stream call failed")

    def feed(self, chunk: bytes) -> bool:
        """Read one chunk; True once the head phase is over (the interpreter is settled)."""
        if self.done or self.broken:
            return True
        try:
            interp = self._interp
            if interp is None:
                if self.kind == "json":
                    self._body.append(chunk)
                    return False
                return True  # an SSE body we have no interpreter for: nothing to read
            if self._buf:
                chunk = self._buf + chunk
            if chunk.find(b"\r") >= 0:  # after joining: a CRLF may be split between two chunks
                chunk = chunk.replace(b"\r\n", b"\n")
            blocks = chunk.split(b"\n\n")  # the last part is an incomplete block (usually b"")
            self._buf = blocks.pop()
            for block in blocks:
                if interp.skip_raw(block):
                    continue
                event, data = parse_block(block)
                if data is None:
                    continue
                result = interp.feed(event, data)
                if result is DONE:
                    interp.end_text()
                    self._finish()
                    return True
                if isinstance(result, Exception):
                    self._finish(result)
                    return True
            return interp.settled()
        except Exception:
            self.broken = True  # stop reading; the call still finishes at the end
            log_failure("instrument.observe", "reading a streamed response failed")
            return True

    def read_timed(self) -> bool:
        """Read the collected head chunks, each as of its arrival; True once settled (as ``feed``).

        The chunks after the one that settles the interpreter move to the front of ``tail``.
        """
        if not self.timed:
            return self.done or self.broken
        timed = self.timed[:]
        self.timed.clear()  # in place: the wrapper's C pipeline appends to this list
        interp = self._interp
        settled = False
        try:
            for i, (chunk, arrived) in enumerate(timed):
                interp.arrived = arrived
                settled = self.feed(chunk)
                if settled:
                    if not (self.done or self.broken):
                        self.tail[:0] = map(_chunk_of, timed[i + 1:])
                    break
        finally:
            interp.arrived = None
        return settled

    def head_has_token(self) -> bool:
        """Whether the unread head surely holds the first token (``Interpreter.TOKEN_BLOCK``): the
        chunks after it need no clock reading. False when unsure."""
        interp = self._interp
        return interp.seen_token or interp.holds_token(self._buf + b"".join(map(_chunk_of, self.timed)))

    def tail_checks(self) -> tuple[list[bytes], Optional[bytes], int, Optional[bytes], int]:
        """``(tail, end, n, err, k)`` for the wrappers' tail loops: a chunk is read at once if
        ``chunk[n:] == end`` or ``chunk[:k] == err`` (None, for no marker, equals no slice)."""
        end = self.end_bytes or None
        err = self.error_start or None
        return self.tail, end, (-len(end) if end else -1), err, (len(err) if err else 1)

    def drain(self) -> None:
        """Read the collected tail chunks as one batch (after the head, if that is unread)."""
        if self.timed:
            self.read_timed()
        tail = self.tail
        if not tail:
            return
        data = b"".join(tail)
        tail.clear()
        if self.done or self.broken:
            return
        try:
            if self._buf:
                data, self._buf = self._buf + data, b""
            interp = self._interp
            if interp is not None and interp.settled() and data.find(b"\r") < 0:
                cut = interp.quiet_prefix(data)
                if cut:
                    data = data[cut:]
        except Exception:
            self.broken = True
            log_failure("instrument.observe", "reading a streamed response failed")
            return
        self.feed(data)

    def end(self) -> None:
        """The body was read to its end: the call's duration ends now; what is left is read
        with the next batch of finished calls (``Call.defer``)."""
        if self.done or self.handed_off:
            return
        self._end_with_batch(self.ended)

    def _end_with_batch(self, read: Any) -> None:
        """The stream is over: its duration ends now; ``read`` (what is left, then the finish)
        runs with the next batch of finished calls."""
        self.handed_off = True  # closing(), abandon() and the finalizer leave it to ``read``
        self.call.stop()
        self.call.defer(read)

    def ended(self) -> None:
        """Read what is left of a body that ended, and finish (truncated, without its terminal event)."""
        self.drain()
        if self.done:
            return
        if self.kind == "json":
            try:
                if not self.broken:
                    self.call.record_response(json.loads(b"".join(self._body)))
            except Exception:
                log_failure("instrument.observe", "reading a raw response body failed")
            self._body = []
            self._finish()
        elif self.broken:
            self._finish()
        else:
            self._finish("connection")  # ended without the terminal event: truncated

    def fail(self, exc: BaseException) -> None:
        self.drain()  # what arrived before the failure counts (it may even hold the end)
        self._finish(exc)

    def closing(self) -> None:
        """The response is being closed.

        When the SDK's stream stops reading at the stream's end (``END``) or raises on an error
        event, it closes the response at once, in the read that passed that chunk: the call's
        duration ends here, before the caller gets control back, and the tail is read with the
        next batch of finished calls. Any other close is an early one: ``abandon``.
        """
        if self.done or self.handed_off:
            return
        last = self.tail[-1] if self.tail else (self.timed[-1][0] if self.timed else None)
        if self.sdk_reads and last is not None:
            if (self.end_bytes and last.endswith(self.end_bytes)) or (
                    self.error_start and last.find(self.error_start) >= 0):
                self._end_with_batch(self.settle)  # the stream's end, as in end()
                return
        self.abandon()

    def abandon(self) -> None:
        """Closed or dropped before the end: cancelled (recorded by the worker thread).

        The worker first reads the tail chunks not read yet: they may hold the stream's end or
        an error event, and then the call finishes as that. If reading the stream failed on our
        side we cannot tell an early close from the SDK closing after the last event, so the
        call is recorded as finished normally.
        """
        if self.done or self.handed_off:
            return
        self.handed_off = True
        _pending.put(self.settle)

    def settle(self) -> None:
        """Read what is left of a body closed before its end, and finish (cancelled, unless it
        holds the end or an error event). On the worker thread, or with the batch."""
        self.drain()
        if not self.done:
            self.done = True
            (self.call.finish if self.broken else self.call.cancel)()

    def __del__(self) -> None:
        try:
            self.abandon()
        except Exception:  # interpreter shutdown
            pass


# --- byte-stream wrappers, subclassing the HTTP library's own stream types -------------

_classes: dict[tuple[type, bool], type] = {}  # (response type, async) -> wrapper class


def stream_base(response: Any, is_async: bool) -> type:
    """The HTTP library's own byte-stream base class for this response (httpx, or httpx2)."""
    package = sys.modules.get(type(response).__module__.split(".")[0])
    return getattr(package, "AsyncByteStream" if is_async else "SyncByteStream", object)


def _stream_class(response: Any, is_async: bool) -> type:
    """The wrapper class for this response type's body stream (made once per response type)."""
    key = (type(response), is_async)
    cls = _classes.get(key)
    if cls is None:
        base = stream_base(response, is_async)
        cls = _classes[key] = _make_async(base) if is_async else _make_sync(base)
    return cls


def _make_sync(base: type) -> type:
    class ObservedStream(base):  # type: ignore[misc, valid-type]
        def __init__(self, inner: Any, observer: Observer) -> None:
            self._inner = inner
            self._observer = observer

        def __iter__(self) -> Iterator[bytes]:
            observer = self._observer
            feed = observer.feed
            chunks = iter(self._inner)
            try:
                clock = observer.clock
                if clock is not None:
                    # head: passed on by C code, each chunk kept with a clock reading taken right after
                    # it arrived (zip), read with the batch (or here, once TAIL_CHUNKS are waiting)
                    timed = observer.timed
                    pairs = filterfalse(timed.append, zip(chunks, iter(clock, None)))
                    while True:
                        yield from map(_chunk_of, islice(pairs, TAIL_CHUNKS - len(timed)))
                        if len(timed) < TAIL_CHUNKS:
                            break  # the body ended
                        if observer.head_has_token():
                            break  # the first token's chunk has its time: the rest needs none
                        if observer.read_timed():
                            break  # read here, to bound what is held
                else:
                    for chunk in chunks:  # head: read each chunk before the SDK sees it
                        settled = feed(chunk)
                        yield chunk
                        if settled:
                            break
                tail = observer.tail
                if observer.sdk_reads:
                    # tail: passed on and collected by C code (list.append returns None, so filterfalse
                    # lets every chunk through), read in batches (see Observer); the SDK's stop at END
                    # or at an error event is seen when it closes the response (Observer.closing)
                    collected = filterfalse(tail.append, chunks)
                    while True:
                        # (the tail may start with the head's last chunks: room for the rest of a batch)
                        yield from islice(collected, TAIL_CHUNKS - len(tail))
                        if len(tail) < TAIL_CHUNKS:
                            break  # the body ended
                        observer.drain()
                else:
                    # a caller reading a raw response may close it much later: read END and error
                    # events as they pass
                    _, end, n, err, k = observer.tail_checks()
                    append = tail.append
                    for chunk in chunks:
                        append(chunk)
                        if len(tail) >= TAIL_CHUNKS or chunk[n:] == end or chunk[:k] == err:
                            observer.drain()
                        yield chunk
            except GeneratorExit:
                raise  # the reader stopped early; close() or the finalizer records it
            except BaseException as exc:
                observer.fail(exc)
                raise
            observer.end()

        def close(self) -> None:
            try:
                self._observer.closing()
            finally:
                self._inner.close()

    return ObservedStream


def _make_async(base: type) -> type:
    class AsyncObservedStream(base):  # type: ignore[misc, valid-type]
        def __init__(self, inner: Any, observer: Observer) -> None:
            self._inner = inner
            self._observer = observer

        async def __aiter__(self) -> Any:
            observer = self._observer
            feed = observer.feed
            chunks = self._inner.__aiter__()
            try:
                async for chunk in chunks:  # head (see the sync stream)
                    settled = feed(chunk)
                    yield chunk
                    if settled:
                        break
                tail, end, n, err, k = observer.tail_checks()
                append = tail.append
                async for chunk in chunks:  # tail
                    append(chunk)
                    if len(tail) >= TAIL_CHUNKS or chunk[n:] == end or chunk[:k] == err:
                        observer.drain()
                    yield chunk
            except GeneratorExit:
                raise
            except BaseException as exc:
                observer.fail(exc)
                raise
            observer.end()

        async def aclose(self) -> None:
            try:
                self._observer.abandon()
            finally:
                await self._inner.aclose()

    return AsyncObservedStream


def observe(state: Any, response: Any, kind: str, is_async: Optional[bool] = None) -> Optional[Observer]:
    """Wrap ``response.stream`` so its bytes feed an observer for ``state``'s call."""
    inner = getattr(response, "stream", None)
    if inner is None:
        return None
    if is_async is None:
        is_async = hasattr(inner, "__aiter__") and not hasattr(inner, "__iter__")
    observer = Observer(state.call, state.operation, kind, sdk_reads=not state.raw,
                        refusals=state.m.settings.refusal_detector is not None)
    response.stream = _stream_class(response, is_async)(inner, observer)
    return observer
