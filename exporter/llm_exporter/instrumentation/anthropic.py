"""Anthropic / AsyncAnthropic: wrapped resource methods + per-attempt HTTP hooks.

Per-attempt observation (retries, rate-limit headers, the response body) goes
through the event hooks of the SDK's HTTP client, as for OpenAI. anthropic's
client middleware would do the same job, but a client with any middleware takes
a slower path through the SDK for every call (each attempt's options copied,
every plain call upgraded to a raw response and parsed from it): ~35 us per call,
more than all our own work on a non-streamed call. The middleware is kept as the
fallback for an HTTP client without event hooks.
"""

from __future__ import annotations

from typing import Any, Optional

from ..errors import log_failure
from ._hooks import install_event_hooks, request_hook, response_hook
from ._wrap import MethodSpec, install_methods

PROVIDER = "anthropic"

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("messages",), "create", "messages"),
    MethodSpec(("messages",), "parse", "messages"),
    MethodSpec(("messages",), "stream", "messages", manager=True),
)

_middleware_class: Optional[type] = None


def _attempt(response: Any, is_async: bool) -> None:
    http_response = getattr(response, "http_response", None)  # the SDK's wrapper of the httpx response
    if http_response is not None:
        response_hook(http_response, is_async)


def middleware_class() -> Optional[type]:
    """Our ``anthropic.Middleware`` subclass (None if the SDK has no middleware)."""
    global _middleware_class
    if _middleware_class is None:
        try:
            from anthropic import Middleware
        except ImportError:
            return None

        class LLMExporterMiddleware(Middleware):  # type: ignore[misc, valid-type]
            """Per-attempt metrics: retries, rate-limit headers, the response body."""

            def handle(self, request: Any, call_next: Any) -> Any:
                request_hook(request)
                response = call_next(request)
                _attempt(response, False)
                return response

            async def handle_async(self, request: Any, call_next: Any) -> Any:
                request_hook(request)
                response = await call_next(request)
                _attempt(response, True)
                return response

        _middleware_class = LLMExporterMiddleware
    return _middleware_class


def _install_middleware(client: Any) -> bool:
    cls = middleware_class()
    current = getattr(client, "_middleware", None)
    build = getattr(client, "_build_middleware_chain", None)
    if cls is None or not isinstance(current, tuple) or not callable(build):
        return False
    if any(isinstance(m, cls) for m in current):
        return True  # copied from an instrumented client
    # innermost: sees each attempt's own response; the chain is prebuilt at construction
    client._middleware = current + (cls(),)
    client._middleware_chain = build()
    return True


def instrument_anthropic(client: Any, feature: Optional[str], is_async: bool) -> bool:
    attached = install_event_hooks(client, is_async)
    if not attached:
        try:
            attached = _install_middleware(client)
        except Exception:
            log_failure("instrument.middleware", "installing the anthropic middleware failed")
    install_methods(client, PROVIDER, METHODS, feature, is_async)
    return attached
