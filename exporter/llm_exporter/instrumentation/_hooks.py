"""Per-attempt observation through the SDK's HTTP client event hooks (httpx / httpx2 API).

The SDK's retry loop sends each attempt through its HTTP client, so a request hook
counts attempts and a response hook reads rate-limit headers and hooks the
successful body. Hooks do nothing unless an instrumented call is active.
"""

from __future__ import annotations

from typing import Any

from ..errors import log_failure
from ._state import _active

HOOK_ATTR = "_llm_exporter_hook"


def request_hook(request: Any) -> None:
    state = _active.get()
    if state is not None:
        state.attempts += 1  # the wrapper gives the attempts after the first to the call as retries


def response_hook(response: Any, is_async: bool = False) -> None:
    state = _active.get()
    if state is not None:
        try:
            if state.stream or state.raw:
                state.on_response(response, is_async)
            else:  # a parsed result: its headers are read with the batch (CallState.on_response)
                state.headers.append(response.headers)
        except Exception:
            log_failure("instrument.hook", "response hook failed")


async def arequest_hook(request: Any) -> None:
    request_hook(request)


async def aresponse_hook(response: Any) -> None:
    response_hook(response, True)


for _f in (request_hook, response_hook, arequest_hook, aresponse_hook):
    setattr(_f, HOOK_ATTR, True)


def install_event_hooks(client: Any, is_async: bool) -> bool:
    """Add our hooks to the SDK client's HTTP client (shared by ``copy()``-derived clients)."""
    http = getattr(client, "_client", None)  # the SDKs keep their httpx client here
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict):
        return False
    requests = list(hooks.get("request", []))
    responses = list(hooks.get("response", []))
    if any(getattr(h, HOOK_ATTR, False) for h in requests + responses):
        return True  # already there (a copy of an instrumented client shares its HTTP client)
    requests.append(arequest_hook if is_async else request_hook)
    responses.append(aresponse_hook if is_async else response_hook)
    http.event_hooks = {**hooks, "request": requests, "response": responses}
    return True
