"""Reading SSE events as they pass by: first token, usage, model, finish reason, the end.

Works on the wire JSON (dicts), so the caller's SDK objects are never touched and
every way of consuming a stream (iteration, ``text_stream``, ``get_final_message()``,
raw responses) is seen the same.
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from ..quality import DEFAULT_SCAN_CHARS, refusal_detection_enabled

DONE = "done"


#: chat delta fields that make a delta count as the first token (a role-only delta carries content "")
TOKEN_DELTA_FIELDS = ("content", "tool_calls", "function_call", "refusal", "reasoning_content", "reasoning", "audio")


class StreamError(Exception):
    """An error event inside a 200 stream (classified by its provider error type)."""

    def __init__(self, body: dict[str, Any]) -> None:
        err = body.get("error") if isinstance(body.get("error"), dict) else body
        super().__init__(str(err.get("message") or err.get("type") or "stream error"))
        self.body = body


class TextCollector:
    """Keeps the start of a streamed answer for the opt-in refusal detector."""

    collecting = False
    text_len = 0
    text: list[str]

    def add_text(self, text: Any) -> bool:
        """Keep ``text``; returns whether more is wanted (False once the detector has enough)."""
        if isinstance(text, str) and text:
            self.text.append(text)
            self.text_len += len(text)
            if self.text_len >= DEFAULT_SCAN_CHARS:
                self.collecting = False
        return self.collecting


class Interpreter(TextCollector):
    """Base: feeds one call from the events of one stream."""

    seen_token = False
    model_set = False
    explicit_refusal = False
    #: when the block being fed arrived (a reading of the call's clock), if it is read later
    arrived: Optional[float] = None

    def __init__(self, call: Any, refusals: Optional[bool] = None) -> None:
        """``refusals``: whether a refusal detector is configured (default: look it up)."""
        self.call = call
        # Text is kept only while the opt-in refusal detector wants it (the start of the answer).
        self.collecting = refusal_detection_enabled() if refusals is None else refusals
        self.text: list[str] = []

    def end_text(self) -> None:
        """The stream completed: run the refusal detector on what was collected."""
        if self.text or self.explicit_refusal:
            self.call.check_refusal("".join(self.text), explicit=self.explicit_refusal)

    def token(self) -> None:
        if not self.seen_token:
            self.seen_token = True
            self.call.first_token(self.arrived)

    def model(self, model: Any) -> None:
        if not self.model_set and isinstance(model, str) and model:
            self.model_set = True
            self.call.set_response_model(model)

    def feed(self, event: Optional[str], data: str) -> Any:
        """Returns None to go on, ``DONE`` at the end, or an exception for an error event."""
        raise NotImplementedError

    def skip_raw(self, block: bytes) -> bool:
        """True if the SSE event ``block`` (raw bytes, not decoded) is one ``feed``
        would ignore right now: the hot path, checked before decoding and parsing.

        Only ever True for blocks whose ``feed`` returns None without touching the call.
        """
        return False

    #: Read at once even after ``settled``: a chunk ending with ``END``, the end where the SDK
    #: stops reading instead of reading the body to its end (OpenAI's ``[DONE]``), and a chunk
    #: starting with ``ERROR_START``, an error event (the SDK raises on it). Either way the SDK
    #: closes the response next; reading the chunk first records the call before that, in the
    #: caller's thread. (An error event inside a chunk is read when the response is closed,
    #: on the worker thread.) The body's end needs no marker: the observer sees it.
    END: bytes = b""
    ERROR_START: bytes = b"event: error\n"

    def settled(self) -> bool:
        """True once nothing but the stream's last events can change what is recorded: the
        first token is seen and no text is being collected. The events in between need not
        be read as they pass; the observer reads them in batches."""
        return self.seen_token and not self.collecting

    #: Once ``settled``, a stream's middle is made of blocks of this kind (content deltas), and
    #: what the blocks among them can still record (usage, finish reason) is set again by the
    #: blocks at the end, where the last value wins; errors and the end come last. A batch is
    #: therefore read from its last block holding this marker on (see ``quiet_prefix``).
    QUIET: bytes = b""

    #: A complete event block (LF line ends) that ``feed`` certainly counts as a token: when
    #: the raw bytes of a stream's head hold one, the first token came at or before it. Only a
    #: shortcut for the observer (it stops taking a clock reading per chunk); None: no shortcut.
    TOKEN_BLOCK: Optional[re.Pattern[bytes]] = None
    #: Bytes every ``TOKEN_BLOCK`` match holds: the search starts at the block holding their first
    #: occurrence (a pattern that starts with ``(?:^|\n\n)`` is otherwise tried at every offset).
    TOKEN_HINT: bytes = b""

    @classmethod
    def holds_token(cls, data: bytes) -> bool:
        """Whether raw stream bytes (starting at a block) surely hold a ``TOKEN_BLOCK``; False when unsure."""
        pattern = cls.TOKEN_BLOCK
        if pattern is None or data.find(b"\r") >= 0:
            return False
        hint = data.find(cls.TOKEN_HINT)
        if hint < 0:
            return False
        # from the "\n\n" before that block (or the start): no match can start before it
        return pattern.search(data, max(data.rfind(b"\n\n", 0, hint), 0)) is not None

    def quiet_prefix(self, data: bytes) -> int:
        """Once ``settled``: an offset in ``data`` (raw SSE bytes, LF line ends, starting at a
        block) where reading may start without changing what is recorded: the start of the last
        block holding ``QUIET``. One backward search instead of a look at each block; 0 if none.
        """
        last = data.rfind(self.QUIET) if self.QUIET else -1
        if last < 0:
            return 0
        start = data.rfind(b"\n\n", 0, last)
        return start + 2 if start >= 0 else 0


class ChatInterpreter(Interpreter):
    """OpenAI chat completions (and legacy completions) chunks."""

    def feed(self, event: Optional[str], data: str) -> Any:
        if data.startswith("[DONE]"):
            return DONE
        if self.seen_token and self.model_set and not self.collecting and '"finish_reason":null' in data and '"error"' not in data \
                and ('"usage"' not in data or '"usage":null' in data):
            return None  # the hot path: a plain content chunk
        chunk = json.loads(data)
        if not isinstance(chunk, dict):
            return None
        if chunk.get("error"):
            return StreamError(chunk)
        self.model(chunk.get("model"))
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            if self.collecting:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    self.add_text(delta.get("content"))
                    if delta.get("refusal"):
                        self.explicit_refusal = True
                else:
                    self.add_text(choice.get("text"))
            if not self.seen_token:
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    if any(delta.get(k) for k in TOKEN_DELTA_FIELDS):
                        self.token()
                elif choice.get("text"):  # legacy completions
                    self.token()
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.call.set_finish_reason(reason)
        usage = chunk.get("usage")
        if usage:
            self.call.record_usage(usage)
        return None

    END = b"data: [DONE]\n\n"
    ERROR_START = b'data: {"error"'

    # compact JSON, as the API sends it (spaced JSON is read block by block)
    QUIET = b'"finish_reason":null'

    # a data line whose delta object has a non-empty "content" string (quotes inside strings are
    # escaped, so these are the JSON's own; [^{}] keeps to the delta object's first level)
    TOKEN_BLOCK = re.compile(rb'(?:^|\n\n)data: \{[^\n]*"delta":\{[^{}\n]*"content":"[^"][^\n]*\n\n')
    TOKEN_HINT = b'"content":"'

    def settled(self) -> bool:
        return self.seen_token and self.model_set and not self.collecting

    def skip_raw(self, block: bytes) -> bool:
        # the same test as feed's hot path, on the raw block instead of the decoded data
        # (rfind: these keys sit at the end of a chunk, a backward search meets them first)
        return (self.seen_token and self.model_set and not self.collecting
                and block.rfind(b'"finish_reason":null') >= 0
                and (block.rfind(b'"usage":null') >= 0 or block.find(b'"usage"') < 0)
                and block.find(b'"error"') < 0)


class ResponsesInterpreter(Interpreter):
    """OpenAI Responses API typed events."""

    FINAL = ("response.completed", "response.incomplete", "response.failed", "response.cancelled")
    _PARSED = frozenset(name.encode() for name in FINAL + ("response.created", "error"))

    def feed(self, event: Optional[str], data: str) -> Any:
        if event is not None:  # the event name repeats the type: skip parsing what we do not need
            if event.endswith(".delta"):
                self.token()
                return None
            if event not in self.FINAL and event not in ("response.created", "error"):
                return None
        ev = json.loads(data)
        if not isinstance(ev, dict):
            return None
        kind = ev.get("type") or event or ""
        if kind.endswith(".delta"):
            self.token()
            return None
        if kind == "response.created":
            self.model((ev.get("response") or {}).get("model"))
            return None
        if kind in self.FINAL:
            response = ev.get("response") or {}
            self.model(response.get("model"))
            self.call.record_response(response)
            if kind == "response.failed":
                err = response.get("error") if isinstance(response.get("error"), dict) else {}
                return StreamError({"error": {"type": "server_error", **err}})
            return DONE
        if kind == "error":
            return StreamError({"error": {k: v for k, v in ev.items() if k != "type"}})
        return None

    QUIET = b".delta\n"

    TOKEN_BLOCK = re.compile(rb'(?:^|\n\n)event: [^\n]*\.delta\ndata: [^\n]*\n\n')
    TOKEN_HINT = b".delta\ndata: "

    def skip_raw(self, block: bytes) -> bool:
        # feed decides on the event name alone for all but the events in _PARSED
        if not block.startswith(b"event:"):
            return False
        nl = block.find(b"\n")
        if nl < 0 or block.find(b"\nevent:", nl) >= 0:  # the parser keeps the last event line
            return False
        name = block[6:nl].strip()
        if name.endswith(b".delta"):
            return self.seen_token  # before the first token feed marks it
        return name not in self._PARSED


class MessagesInterpreter(Interpreter):
    """Anthropic Messages stream events."""

    #: events that never change what is recorded (the deltas inside a block do)
    _IGNORED = frozenset(("ping", "content_block_start", "content_block_stop"))
    _IGNORED_RAW = tuple(f"event: {name}\n".encode() for name in sorted(_IGNORED))

    def feed(self, event: Optional[str], data: str) -> Any:
        if event in self._IGNORED:
            return None
        if event == "content_block_delta" and self.seen_token and not self.collecting:
            return None  # the hot path: no need to parse once the first token is seen
        if event == "message_stop":
            return DONE
        ev = json.loads(data)
        if not isinstance(ev, dict):
            return None
        kind = ev.get("type") or event
        if kind == "content_block_delta":
            delta = ev.get("delta") or {}
            if delta.get("type") != "signature_delta":
                self.token()
            if self.collecting and delta.get("type") == "text_delta":
                self.add_text(delta.get("text"))
        elif kind == "message_start":
            message = ev.get("message") or {}
            self.model(message.get("model"))
            if message.get("usage"):
                self.call.record_usage(message["usage"])
        elif kind == "message_delta":
            reason = (ev.get("delta") or {}).get("stop_reason")
            if isinstance(reason, str):
                self.call.set_finish_reason(reason)
            if ev.get("usage"):
                self.call.record_usage(ev["usage"])
        elif kind == "message_stop":
            return DONE
        elif kind == "error":
            return StreamError(ev)
        return None

    QUIET = b"event: content_block_delta\n"

    # any delta but a signature's counts (see feed)
    TOKEN_BLOCK = re.compile(rb'(?:^|\n\n)event: content_block_delta\ndata: \{"type":"content_block_delta"[^\n]*'
                             rb'"delta":\{"type":"(?!signature_delta")[^\n]*\n\n')
    TOKEN_HINT = b"event: content_block_delta\n"

    def skip_raw(self, block: bytes) -> bool:
        # feed's own early returns; a block naming a second event is left to the parser (the last wins)
        if block.startswith(b"event: content_block_delta\n"):
            return self.seen_token and not self.collecting and block.find(b"\nevent:") < 0
        return block.startswith(self._IGNORED_RAW) and block.find(b"\nevent:") < 0


INTERPRETERS = {
    "chat": ChatInterpreter,
    "completions": ChatInterpreter,
    "responses": ResponsesInterpreter,
    "messages": MessagesInterpreter,
}
