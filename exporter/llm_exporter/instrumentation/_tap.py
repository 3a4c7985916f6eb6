"""A sync stream the SDK reads, in a single-process app: tapped in the call, read with the batch.

Used for the streams a stream helper's manager opens (``messages.stream``) and legacy completions;
``create(stream=True)`` streams are read from the SDK's events instead (``_parsed``).

In the call, every chunk passes on through C code into a list: with a clock reading each, until
the raw bytes surely hold the first token (``Interpreter.TOKEN_BLOCK``, looked at every
``HEAD_STEP`` chunks), then without. Nothing is parsed there. The lists go to the batch of
finished calls (``CallState.defer``) whenever ``TAIL_CHUNKS`` are waiting in one of them, and
when the stream ends; there an ``Observer`` reads them, in order, after the call was opened (queued
first). The call's duration ends in the call.

How a stream ends, as ``Observer`` decides it for the other streams: the body ends (``end``);
the SDK closes the response right after the stream's last event or an error event (``close``
sees that chunk); an error while reading (``fail``); or the caller closes the response early
or drops it (cancelled, through the worker thread, as a finalizer may be the one to see it).
"""

from __future__ import annotations

from functools import partial
from itertools import filterfalse, islice
from time import perf_counter
from typing import Any, Callable, Iterator, Optional

from ..errors import classify_error
from ._events import INTERPRETERS
from ._observe import TAIL_CHUNKS, Observer, _chunk_of, _pending, ensure_worker, stream_base

#: The head is looked at for the first token every this many chunks (a divisor of TAIL_CHUNKS):
#: as the APIs send a stream, the first 8 chunks hold it, and only they get a clock reading.
HEAD_STEP = 8

_classes: dict[type, type] = {}  # response type -> tap class

#: how the batch finishes a tapped stream, by how it ended (see ``Observer``)
_ENDED, _SETTLE, _FAILED = "ended", "settle", "failed"


def tap(state: Any, response: Any, clock: Callable[[], float] = perf_counter) -> Optional[Any]:
    """Wrap ``response.stream`` (SSE) in a tap for ``state``'s call (not opened yet, timed by ``clock``)."""
    inner = getattr(response, "stream", None)
    interp = INTERPRETERS.get(state.operation)
    if inner is None or interp is None:
        return None
    cls = _classes.get(type(response))
    if cls is None:
        cls = _classes[type(response)] = _make_tap(stream_base(response, False))
    response.stream = tapped = cls(inner, state, interp, clock)
    return tapped


def _make_tap(base: type) -> type:
    class Tap(base):  # type: ignore[misc, valid-type]
        _over = False  # ended, or handed to the batch as ended: nothing more to hand over
        _observer: Optional[Observer] = None  # made with the batch
        _carry = b""  # the unfinished last block of the head chunks handed over (for the token look)
        _last: Optional[bytes] = None  # the last chunk handed over

        def __init__(self, inner: Any, state: Any, interp: Any, clock: Callable[[], float]) -> None:
            self._inner = inner
            self._state = state
            self._interp = interp
            self._clock = clock
            self._timed: list[tuple[bytes, float]] = []
            self._tail: list[bytes] = []
            ensure_worker()  # here, not in a finalizer that cancels (see _observe)

        def __iter__(self) -> Iterator[bytes]:
            timed, tail = self._timed, self._tail
            chunks = iter(self._inner)
            try:
                pairs = filterfalse(timed.append, zip(chunks, iter(self._clock, None)))
                while True:
                    before = len(timed)
                    yield from map(_chunk_of, islice(pairs, HEAD_STEP))
                    if len(timed) - before < HEAD_STEP:
                        break  # the body ended
                    if self._has_token(before):
                        collected = filterfalse(tail.append, chunks)  # the rest needs no clock reading
                        while True:
                            yield from islice(collected, TAIL_CHUNKS - len(tail))
                            if len(tail) < TAIL_CHUNKS:
                                break
                            self._hand_over()
                        break
                    if len(timed) >= TAIL_CHUNKS:
                        self._hand_over()
            except GeneratorExit:
                raise  # the reader stopped early; close() or the finalizer records it
            except BaseException as exc:
                self._end(_FAILED, classify_error(exc))  # now: an exception holds its frames alive
                raise
            self._end(_ENDED)

        def close(self) -> None:
            try:
                if not self._over:
                    last = self._tail[-1] if self._tail else (self._timed[-1][0] if self._timed else self._last)
                    end, error = self._interp.END, self._interp.ERROR_START
                    if last is not None and ((end and last.endswith(end)) or (error and last.find(error) >= 0)):
                        self._end(_SETTLE)  # the SDK stopped at the stream's end or an error event
                    else:
                        self._abandon()
            finally:
                self._inner.close()

        def __del__(self) -> None:
            try:
                self._abandon()
            except Exception:  # interpreter shutdown
                pass

        # --- in the call ---

        def _has_token(self, since: int) -> bool:
            """Whether the head so far surely holds the first token (False when unsure), looking at
            the chunks from ``timed[since]`` on (and the unfinished block before them)."""
            data = self._carry + b"".join(map(_chunk_of, self._timed[since:]))
            cut = data.rfind(b"\n\n")
            self._carry = data[cut + 2:] if cut >= 0 else data  # where the next chunks' first block starts
            return self._interp.holds_token(data)

        def _take(self) -> tuple[list[tuple[bytes, float]], list[bytes]]:
            timed, tail = self._timed[:], self._tail[:]
            self._timed.clear()  # in place: the C pipelines append to these lists
            self._tail.clear()
            if tail or timed:
                self._last = tail[-1] if tail else timed[-1][0]
            return timed, tail

        def _hand_over(self) -> None:
            self._state.defer(partial(self._read, *self._take()))

        def _end(self, how: str, error_type: Optional[str] = None) -> None:
            if not self._over:
                self._over = True
                self._state.defer(partial(self._finish, *self._take(), self._clock(), how, error_type))

        def _abandon(self) -> None:
            """Closed or dropped before the end: cancelled, unless the chunks not read yet hold the
            stream's end or an error event. Queued through the worker thread (see _observe)."""
            if not self._over:
                self._over = True
                finish = partial(self._finish, *self._take(), self._clock(), _SETTLE, None)
                _pending.put(partial(self._state.defer, finish))

        # --- with the batch ---

        def _reader(self, timed: list[tuple[bytes, float]], tail: list[bytes]) -> Observer:
            """The batch side's observer, given the chunks handed over (made on first use)."""
            observer = self._observer
            if observer is None:
                state = self._state
                state.count_retries()  # the call is open: its open was queued before any of this
                observer = self._observer = Observer(state.call, state.operation, "sse", sdk_reads=True,
                                                     refusals=state.m.settings.refusal_detector is not None)
                observer.handed_off = True  # the tap decides how the stream ends, not the observer
            observer.timed += timed
            observer.tail += tail
            return observer

        def _read(self, timed: list[tuple[bytes, float]], tail: list[bytes]) -> None:
            self._reader(timed, tail).drain()

        def _finish(self, timed: list[tuple[bytes, float]], tail: list[bytes], stopped: float, how: str,
                    error_type: Optional[str]) -> None:
            observer = self._reader(timed, tail)
            observer.call.stop(stopped)
            if how == _ENDED:
                observer.ended()
            elif how == _SETTLE:
                observer.settle()
            else:
                observer.fail(error_type)

    return Tap
