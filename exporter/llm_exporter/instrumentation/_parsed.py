"""A sync stream the SDK reads from ``create(stream=True)``, in a single-process app: read from
the events the SDK yields, not from the bytes.

Why: the SDK parses every event already. Reading its event objects as they pass costs a type
check per event in the call, where tapping the bytes (``_tap``) and parsing the SSE again with
the batch costs about twice as much CPU in all (benchmarks/README.md, ninth round).

The SDK ``Stream``'s event iterator is wrapped by a generator (``watch`` then ``attach``) that
notes the first token's time, the model, the usage, the finish reason and the end as the
events pass; the call is finished with the batch of finished calls from those notes. The
response body gets a pass-through wrapper whose only job is to see the response closed.

How a stream ends: the events run out (read to the end; without the stream's end event it was
cut: ``connection``); the SDK raises while reading (an error event, a read error); the caller
closes the stream or drops it before its end (cancelled, recorded through the worker thread,
as a finalizer may be the one to see it). The SDK closes the response itself at the end and on
errors, inside its own read: a close while the generator runs is left to the generator.
"""

from __future__ import annotations

import weakref
from functools import partial
from time import perf_counter
from typing import Any, Iterator, Optional

from ..errors import classify_error, log_failure
from ..responses import fields
from ._events import TOKEN_DELTA_FIELDS, ResponsesInterpreter, StreamError, TextCollector
from ._observe import _pending, ensure_worker, stream_base

_ENDED, _CANCELLED, _FAILED = "ended", "cancelled", "failed"


_classes: dict[type, type] = {}  # response type -> body wrapper class

#: the operations whose streams are read from the SDK's events (legacy completions streams are tapped)
READERS = frozenset(("messages", "chat", "responses"))


class EventStream(TextCollector):
    """Notes of one stream's events, and how it ended; finishes the call with the batch."""

    over = False  # finished, or handed to the batch / the worker as finished
    broken = False  # noting an event failed: the rest is passed on unread, the call finishes plainly
    first: Optional[float] = None
    model: Any = None
    finish_reason: Any = None
    response: Any = None  # the Responses API's final response object
    error: Optional[StreamError] = None  # an error event the SDK passed on (Responses)
    terminal = False  # the stream's end event was seen
    explicit_refusal = False
    _gen: Any = None  # weak reference to the generator, once attached

    def __init__(self, state: Any) -> None:
        self._state = state
        self.api = state.operation  # one of READERS
        self.usages: list[Any] = []
        self.collecting = state.m.settings.refusal_detector is not None
        self.text = []
        ensure_worker()  # here, not in a finalizer that cancels (see _observe)

    # --- in the call ---

    def attach(self, stream: Any) -> bool:
        """Wrap the SDK stream's event iterator; False if it has none (then nothing is read)."""
        try:
            events = stream._iterator  # the SDK's generator of parsed events (openai and anthropic)
            if not hasattr(events, "__next__"):
                return False
            gen = self._read(events)
            stream._iterator = gen
            self._gen = weakref.ref(gen)
            return True
        except Exception:
            log_failure("instrument.observe", "wrapping a stream's events failed")
            return False

    # One reader for the three APIs (their branches inline: no call per event), keeping what each
    # event is checked against in locals (the first token's time is mirrored in ``first``): a
    # content delta, most of a stream, costs a type check and a local test.

    def _read(self, events: Iterator[Any]) -> Iterator[Any]:
        api = self.api
        noting, first, collecting, model = True, None, self.collecting, None
        try:
            for event in events:
                if noting:
                    try:
                        if api == "messages":
                            kind = event.type
                            if kind == "content_block_delta":
                                if first is None or collecting:
                                    delta = event.delta
                                    if first is None and delta.type != "signature_delta":
                                        self.first = first = perf_counter()
                                    if collecting and delta.type == "text_delta":
                                        collecting = self.add_text(delta.text)
                            elif kind == "message_start":
                                message = event.message
                                self.model = message.model
                                if message.usage:
                                    self.usages.append(message.usage)
                            elif kind == "message_delta":
                                self.finish_reason = event.delta.stop_reason
                                if event.usage:
                                    self.usages.append(event.usage)
                            elif kind == "message_stop":
                                self.terminal = True
                        elif api == "chat":
                            if model is None:
                                self.model = model = event.model
                            for choice in event.choices:
                                if first is None or collecting:
                                    delta = fields(choice.delta)  # optional fields without the model's slow misses
                                    if first is None and any(delta.get(k) for k in TOKEN_DELTA_FIELDS):
                                        self.first = first = perf_counter()
                                    if collecting:
                                        collecting = self.add_text(delta.get("content"))
                                        if delta.get("refusal"):
                                            self.explicit_refusal = True
                                if choice.finish_reason is not None:
                                    self.finish_reason = choice.finish_reason
                                    self.terminal = True  # the SDK stops at [DONE] without passing it on
                            if event.usage:
                                self.usages.append(event.usage)
                        else:  # responses
                            kind = event.type
                            if kind.endswith(".delta"):
                                if first is None:
                                    self.first = first = perf_counter()
                            elif kind == "response.created":
                                if self.model is None:
                                    self.model = event.response.model
                            elif kind in ResponsesInterpreter.FINAL:
                                self.response = response = event.response
                                if self.model is None:
                                    self.model = response.model
                                if kind == "response.failed":
                                    err = fields(fields(response).get("error"))
                                    self.error = StreamError({"error": {"type": "server_error", **err}})
                                self.terminal = True
                            elif kind == "error":
                                err = fields(event)
                                self.error = StreamError({"error": {k: err.get(k) for k in ("code", "message", "param")}})
                                self.terminal = True
                    except Exception:
                        noting = self._broke()
                yield event
        except GeneratorExit:
            self.abandon()
            raise
        except BaseException as exc:
            self._end(_FAILED, classify_error(exc))  # now: an exception holds its frames alive
            raise
        self._end(_ENDED)

    def _broke(self) -> bool:
        """Noting an event failed: the rest pass on unread (returns the new ``noting``)."""
        self.broken = True
        log_failure("instrument.observe", "reading a streamed response failed")
        return False

    def closing(self) -> None:
        """The response is being closed: by the SDK inside its own read (the generator sees the
        end or the error next), or by the caller (cancelled, unless the end event was seen)."""
        if self.over:
            return
        gen = self._gen() if self._gen is not None else None
        if gen is None or not gen.gi_running:
            self.abandon()

    def _end(self, how: str, error_type: Optional[str] = None) -> None:
        if not self.over:
            self.over = True
            self._state.defer(partial(self._finish, how, perf_counter(), error_type))

    def abandon(self) -> None:
        """Closed or dropped before the end: cancelled, through the worker thread (see _observe)."""
        if not self.over:
            self.over = True
            _pending.put(partial(self._state.defer, partial(self._finish, _CANCELLED, perf_counter(), None)))

    def __del__(self) -> None:
        try:
            self.abandon()  # never attached, or the stream dropped unread
        except Exception:  # interpreter shutdown
            pass

    # --- with the batch ---

    def _finish(self, how: str, stopped: float, error_type: Optional[str]) -> None:
        state = self._state
        call = state.call
        call.stop(stopped)
        state.count_retries()
        state.record_headers()
        try:
            if self.first is not None:
                call.first_token(self.first)
            if self.model:
                call.set_response_model(self.model)
            for usage in self.usages:
                call.record_usage(usage)
            if self.finish_reason:
                call.set_finish_reason(self.finish_reason)
            if self.response is not None:
                call.record_response(self.response)
        except Exception:
            log_failure("instrument.observe", "reading a streamed response failed")
        if how == _FAILED and not self.terminal:  # an error after the end event: the call had ended
            call.finish(error=error_type)
        elif self.error is not None:
            call.finish(error=self.error)
        elif self.terminal or self.broken:
            if self.text or self.explicit_refusal:
                call.check_refusal("".join(self.text), explicit=self.explicit_refusal)
            call.finish()
        elif how == _CANCELLED:
            call.cancel()
        else:
            call.finish(error="connection")  # the events ran out before the end event: cut


def watch(state: Any, response: Any) -> EventStream:
    """For ``state``'s stream: an ``EventStream`` (``attach`` it to the SDK stream), and the
    response body wrapped so its close is seen."""
    watcher = EventStream(state)
    inner = getattr(response, "stream", None)
    if inner is not None:
        cls = _classes.get(type(response))
        if cls is None:
            cls = _classes[type(response)] = _make_closer(stream_base(response, False))
        response.stream = cls(inner, watcher)
    return watcher


def _make_closer(base: type) -> type:
    class ClosedSeen(base):  # type: ignore[misc, valid-type]
        """The body, passed on untouched (no work per chunk); its close is reported."""

        def __init__(self, inner: Any, watcher: EventStream) -> None:
            self._inner = inner
            self._watcher = watcher

        def __iter__(self) -> Iterator[bytes]:
            return iter(self._inner)

        def close(self) -> None:
            try:
                self._watcher.closing()
            finally:
                self._inner.close()

    return ClosedSeen
