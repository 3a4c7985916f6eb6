"""A stream read from the events the SDK yields: one reader with three hooks (event, end, error).

The SDKs' ``Stream`` / ``AsyncStream`` yield parsed events from a generator they keep in
``_iterator``; iteration, ``__next__`` and the stream helpers (``chat.completions.stream()``,
``responses.stream()``, ``messages.stream()``) all read through it. ``attach`` puts a generator
around it that passes every event on unchanged and feeds a ``Reader``. The call ends once
(``Call.finish``):

* the events run out after the stream's end event: complete, with the stream's finish reason;
* they run out before it: ``error_type="connection"`` (the body was cut);
* the SDK raises while reading (an error event, bad JSON, a read error): that error;
* the caller closes the stream or drops it before the end: ``cancelled``.

The response's ``close`` / ``aclose`` is wrapped on the instance, behaving the same, to see a
close by the caller: the stream helpers close the response, not the generator. A stream dropped
unclosed is finished by a finalizer; ``gcsafe`` keeps that from deadlocking.
"""

from __future__ import annotations

from typing import Any, AsyncIterator, Callable, Iterator, Optional

from ..errors import log_failure
from ..quality import DEFAULT_SCAN_CHARS
from ..responses import fields

#: chat delta fields that make a delta the first token (a role-only delta carries content "")
TOKEN_DELTA_FIELDS = ("content", "tool_calls", "function_call", "refusal", "reasoning_content", "reasoning", "audio")
#: Responses API events that end a stream
FINAL_EVENTS = frozenset(("response.completed", "response.incomplete", "response.failed", "response.cancelled"))


class StreamError(Exception):
    """An error the SDK passes on as an event instead of raising (Responses API), classified by
    ``errors.classify_error`` from ``body`` like the SDK's own errors."""

    def __init__(self, body: dict[str, Any]) -> None:
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        super().__init__(str(err.get("message") or err.get("code") or err.get("type") or "stream error"))
        self.body = body


class Reader:
    """Feeds one ``Call`` from one stream's events and finishes it when the stream ends."""

    seen_token = False
    seen_model = False
    terminal = False  # the stream's end event was seen
    broken = False  # reading an event failed: the rest pass on unread
    error: Optional[StreamError] = None
    explicit_refusal = False

    def __init__(self, call: Any, api: str, scan_text: bool) -> None:
        self.call = call
        self._handle: Callable[[Reader, Any], None] = _HANDLERS[api]
        self.collecting = scan_text  # keep the start of the answer for the opt-in text detectors
        self._text: list[str] = []
        self._text_len = 0

    # --- the three hooks ---

    def event(self, event: Any) -> None:
        if not self.broken:
            try:
                self._handle(self, event)
            except Exception:
                self.broken = True
                log_failure("instrument.stream", "reading a stream event failed; the rest of the stream is not read")

    def end(self) -> None:
        """The events ran out."""
        if self.error is not None:
            self.call.finish(self.error)
        elif self.terminal or self.broken:
            self._complete()
        else:
            self.call.finish("connection")  # cut before its end event

    def fail(self, exc: BaseException) -> None:
        """The SDK raised while reading (after the end event, the call had ended already)."""
        if self.terminal and self.error is None:
            self._complete()
        else:
            self.call.finish(exc)

    # --- closed by the caller, or dropped ---

    def closed(self) -> None:
        if self.call.finished:
            return
        if self.error is not None:
            self.call.finish(self.error)
        elif self.terminal:
            self._complete()
        elif self.broken:
            self._complete()  # finish_reason "other": see _complete
        else:
            self.call.cancel()

    def __del__(self) -> None:
        try:
            self.closed()  # a stream dropped unread or unclosed
        except Exception:  # interpreter shutdown
            pass

    # --- helpers for the handlers ---

    def token(self) -> None:
        if not self.seen_token:
            self.seen_token = True
            self.call.first_token()

    def model(self, model: Any) -> None:
        if not self.seen_model:
            self.seen_model = True
            self.call.set_response_model(model)

    def text(self, text: Any) -> None:
        if isinstance(text, str) and text:
            self._text.append(text)
            self._text_len += len(text)
            if self._text_len >= DEFAULT_SCAN_CHARS:
                self.collecting = False

    def _complete(self) -> None:
        if self.broken and not self.terminal:
            self.call.set_finish_reason("other")  # its end was not observed: never "stop"
        elif self._text or self.explicit_refusal:
            self.call.check_refusal("".join(self._text), explicit=self.explicit_refusal)
        self.call.finish()


# --- per API: what an event tells -------------------------------------------------------


def _chat(r: Reader, chunk: Any) -> None:
    """OpenAI chat completion chunks (and legacy completions: ``choices[].text``)."""
    r.model(chunk.model)
    for choice in chunk.choices:
        if not r.seen_token or r.collecting:
            delta = fields(getattr(choice, "delta", None))
            if delta:
                if any(delta.get(k) for k in TOKEN_DELTA_FIELDS):
                    r.token()
                if r.collecting:
                    r.text(delta.get("content"))
                    if delta.get("refusal"):
                        r.explicit_refusal = True
            else:
                text = getattr(choice, "text", None)
                if text:
                    r.token()
                    if r.collecting:
                        r.text(text)
        if choice.finish_reason is not None:
            r.call.set_finish_reason(choice.finish_reason)
            r.terminal = True  # the SDK stops at [DONE] without passing it on
    usage = getattr(chunk, "usage", None)
    if usage:
        r.call.record_usage(usage)


def _responses(r: Reader, event: Any) -> None:
    """OpenAI Responses API events (the final response carries usage, model and status)."""
    kind = event.type
    if kind.endswith(".delta"):
        r.token()
    elif kind == "response.created":
        r.model(event.response.model)
    elif kind in FINAL_EVENTS:
        r.call.record_response(event.response)  # also runs the text detectors on the answer
        r.terminal = True
        if kind == "response.failed":
            err = fields(fields(event.response).get("error"))
            r.error = StreamError({"error": {"type": "server_error", **err}})
    elif kind == "error":
        err = fields(event)
        r.error = StreamError({"error": {k: err.get(k) for k in ("code", "message", "param")}})
        r.terminal = True


def _messages(r: Reader, event: Any) -> None:
    """Anthropic Messages stream events."""
    kind = event.type
    if kind == "content_block_delta":
        delta = event.delta
        if delta.type != "signature_delta":
            r.token()
        if r.collecting and delta.type == "text_delta":
            r.text(delta.text)
    elif kind == "message_start":
        message = event.message
        r.model(message.model)
        if message.usage:
            r.call.record_usage(message.usage)
    elif kind == "message_delta":
        r.call.set_finish_reason(event.delta.stop_reason)
        if event.usage:
            r.call.record_usage(event.usage)
    elif kind == "message_stop":
        r.terminal = True


_HANDLERS: dict[str, Callable[[Reader, Any], None]] = {
    "chat": _chat,
    "completions": _chat,
    "responses": _responses,
    "messages": _messages,
}


# --- around the SDK's event generator ----------------------------------------------------


def _read(reader: Reader, events: Iterator[Any]) -> Iterator[Any]:
    try:
        for event in events:
            reader.event(event)
            yield event
    except GeneratorExit:
        reader.closed()
        raise
    except BaseException as exc:
        reader.fail(exc)
        raise
    reader.end()


async def _aread(reader: Reader, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    try:
        async for event in events:
            reader.event(event)
            yield event
    except GeneratorExit:
        reader.closed()
        raise
    except BaseException as exc:
        reader.fail(exc)
        raise
    reader.end()


def attach(call: Any, api: str, stream: Any, scan_text: bool) -> bool:
    """Read ``stream`` (an SDK ``Stream`` / ``AsyncStream``) for ``call``; False when it has no
    event generator to read (then nothing was changed)."""
    events = getattr(stream, "_iterator", None)  # private in both SDKs: docs/instrumentation.md
    is_async = hasattr(events, "__anext__")
    if api not in _HANDLERS or not (is_async or hasattr(events, "__next__")):
        return False
    reader = Reader(call, api, scan_text)
    response = getattr(stream, "response", None)
    if is_async:
        agen = _aread(reader, events)
        stream._iterator = agen
        original_aclose = getattr(response, "aclose", None)
        if original_aclose is not None:
            async def aclose() -> None:
                if not agen.ag_running:  # while it runs, the SDK closes at the end: the generator decides
                    reader.closed()
                await original_aclose()

            response.aclose = aclose
    else:
        gen = _read(reader, events)
        stream._iterator = gen
        original_close = getattr(response, "close", None)
        if original_close is not None:
            def close() -> None:
                if not gen.gi_running:
                    reader.closed()
                original_close()

            response.close = close
    return True
