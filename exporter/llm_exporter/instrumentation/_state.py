"""Per-call state shared by the method wrappers and the per-attempt HTTP hooks.

The method wrapper owns the call's lifecycle; the SDK's retry loop runs the HTTP
hooks (httpx event hooks, or Anthropic client middleware) once per attempt inside
it. They meet through a contextvar holding the active ``CallState``.
"""

from __future__ import annotations

import contextvars
from typing import Any, Optional

from ..errors import log_failure

_active: contextvars.ContextVar[Optional["CallState"]] = contextvars.ContextVar(
    "llm_exporter_instrumented_call", default=None
)

#: Header the SDKs add to ``with_raw_response`` / ``with_streaming_response`` requests.
RAW_RESPONSE_HEADER = "x-stainless-raw-response"

#: header prefix -> (resource, kind) per provider
_OPENAI_RL = {
    "x-ratelimit-limit-requests": ("requests", "limit"),
    "x-ratelimit-remaining-requests": ("requests", "remaining"),
    "x-ratelimit-limit-tokens": ("tokens", "limit"),
    "x-ratelimit-remaining-tokens": ("tokens", "remaining"),
}
_ANTHROPIC_RL = {
    f"anthropic-ratelimit-{name}-{kind}": (name.replace("-", "_"), kind)
    for name in ("requests", "tokens", "input-tokens", "output-tokens")
    for kind in ("limit", "remaining")
}


class CallState:
    """One instrumented API call: its ``Call`` plus what the HTTP hooks learn."""

    __slots__ = ("call", "provider", "model", "operation", "stream", "attempts", "observer", "raw_body")

    def __init__(self, call: Any, provider: str, model: str, operation: str, stream: bool) -> None:
        self.call = call
        self.provider = provider
        self.model = model
        self.operation = operation
        self.stream = stream
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

    def on_response(self, response: Any, make_observer: Any) -> None:
        """Headers of every attempt; for the successful one, hook the body if needed.

        ``make_observer(state, response, kind)`` wraps the response body (kind "sse" or "json").
        """
        try:
            record_ratelimit_headers(self.provider, self.model, response.headers)
        except Exception:
            log_failure("instrument.ratelimit", "reading rate-limit headers failed")
        status = getattr(response, "status_code", 0)
        if not (isinstance(status, int) and 200 <= status < 300):
            return
        ctype = str(response.headers.get("content-type", ""))
        if "text/event-stream" in ctype:
            self.observer = make_observer(self, response, "sse")
            return
        if RAW_RESPONSE_HEADER in response.request.headers:
            # the caller gets the raw response instead of a parsed object: read usage from the body
            try:
                self.raw_body = response.content  # already read (plain with_raw_response)
            except Exception:
                self.observer = make_observer(self, response, "json")  # read later by the caller


def record_ratelimit_headers(provider: str, model: str, headers: Any) -> None:
    table = _ANTHROPIC_RL if provider == "anthropic" else _OPENAI_RL
    found: dict[str, dict[str, float]] = {}
    for name, (resource, kind) in table.items():
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            found.setdefault(resource, {})[kind] = float(raw)
        except ValueError:
            continue
    if not found:
        return
    from ..recorder import record_ratelimit

    for resource, values in found.items():
        record_ratelimit(provider, model, resource, remaining=values.get("remaining"), limit=values.get("limit"))
