"""Per-call state shared by the method wrappers and the per-attempt HTTP hooks.

The method wrapper owns the call's lifecycle; the SDK's retry loop runs the HTTP
hooks (httpx event hooks, or Anthropic client middleware) once per attempt inside
it. They meet through a contextvar holding the active ``CallState``.
"""

from __future__ import annotations

import contextvars
from functools import partial
from typing import Any, Optional

from ..errors import log_failure
from . import _ratelimit
from ._observe import observe

_active: contextvars.ContextVar[Optional["CallState"]] = contextvars.ContextVar(
    "llm_exporter_instrumented_call", default=None
)

#: Header the SDKs add to ``with_raw_response`` / ``with_streaming_response`` requests.
RAW_RESPONSE_HEADER = "x-stainless-raw-response"


def asks_raw(kwargs: dict[str, Any]) -> bool:
    """Whether a method call asks for the raw response (the SDKs' ``with_raw_response`` and
    ``with_streaming_response`` wrappers add the header through ``extra_headers``)."""
    extra = kwargs.get("extra_headers")
    if not extra:
        return False
    try:
        return any(isinstance(name, str) and name.lower() == RAW_RESPONSE_HEADER for name in extra)
    except Exception:
        return False


class CallState:
    """One instrumented API call: its ``Call`` plus what the HTTP hooks learn."""

    __slots__ = ("call", "provider", "model", "operation", "stream", "raw", "attempts", "observer", "raw_body")

    def __init__(self, call: Any, provider: str, model: str, operation: str, stream: bool,
                 raw: bool = False) -> None:
        self.call = call
        self.provider = provider
        self.model = model
        self.operation = operation
        self.stream = stream
        self.raw = raw  # the caller gets the raw response, not a parsed object
        self.attempts = 0
        self.observer: Any = None  # body observer that will finish the call (streams, raw responses)
        self.raw_body: Optional[bytes] = None  # body of a raw response already read by the SDK

    def on_attempt(self) -> None:
        """An HTTP attempt is about to be sent (runs inside the SDK's retry loop)."""
        self.attempts += 1
        if self.attempts > 1:
            try:
                self.call.add_retries(1)
            except Exception:
                log_failure("instrument.retries", "counting a retry failed")

    def on_response(self, response: Any, is_async: Optional[bool] = None) -> None:
        """Headers of every attempt (read with the batch); for the successful one, hook the body if needed."""
        found: Any = None
        names = None
        try:
            headers = response.headers
            if self.stream or self.raw:  # the content type decides now: map the headers once, here
                found, names = _ratelimit.header_map(headers)
            self.call.defer(partial(_ratelimit.record_headers, self.provider, self.model, headers, found, names))
        except Exception:
            log_failure("instrument.ratelimit", "reading rate-limit headers failed")
        status = getattr(response, "status_code", 0)
        if not (isinstance(status, int) and 200 <= status < 300) or not (self.stream or self.raw):
            return  # a parsed result (the wrapper reads it) or a failed attempt: no body to hook
        ctype = found.get(_ratelimit.CONTENT_TYPE) if found is not None else None
        if ctype is None:
            ctype = response.headers.get("content-type", "")
        if (ctype.find(b"text/event-stream") if isinstance(ctype, bytes) else str(ctype).find("text/event-stream")) >= 0:
            self.observer = observe(self, response, "sse", is_async=is_async)
            return
        if self.raw:
            # the caller gets the raw response instead of a parsed object: read usage from the body
            try:
                self.raw_body = response.content  # already read (plain with_raw_response)
            except Exception:
                self.observer = observe(self, response, "json", is_async=is_async)  # read later by the caller
