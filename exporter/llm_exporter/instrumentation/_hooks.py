"""Once per HTTP attempt, inside the SDK's retry loop: the event hooks of the SDK's HTTP client.

The SDK sends each attempt through its httpx (or httpx2) client, whose public ``event_hooks``
run a request hook (counts the attempt: retries are the attempts after the first) and a response
hook (reads the rate-limit headers, keeps the response for a raw result's body). They do nothing
unless an instrumented call is active in the same context, so an HTTP client shared with other
code is not affected. The SDK client keeps its HTTP client in the private ``_client`` (no public
accessor): see docs/instrumentation.md.
"""

from __future__ import annotations

from typing import Any

from ..contract import RATELIMIT_RESOURCES
from ..errors import log_failure
from ..recorder import ratelimits, set_ratelimits
from ._calls import active

HOOK_ATTR = "_llm_exporter_hook"


def _names(pattern: str, resources: tuple[str, ...]) -> tuple[bytes, ...]:
    """Header names (lower case) in ``recorder.RateLimits`` slot order: (remaining, limit) per resource."""
    assert resources == RATELIMIT_RESOURCES[:len(resources)]  # the slots follow the contract's order
    return tuple(pattern.format(resource=r.replace("_", "-"), kind=kind).encode()
                 for r in resources for kind in ("remaining", "limit"))


#: provider -> rate-limit header names
RATELIMIT_HEADERS = {
    "openai": _names("x-ratelimit-{kind}-{resource}", ("requests", "tokens")),
    "anthropic": _names("anthropic-ratelimit-{resource}-{kind}", RATELIMIT_RESOURCES),
}


def record_ratelimit_headers(m: Any, provider: str, model: str, headers: Any) -> None:
    """``llm_ratelimit_remaining`` / ``llm_ratelimit_limit`` from one response's headers (a header
    sent twice is ambiguous: ignored). Never raises."""
    try:
        names = RATELIMIT_HEADERS["anthropic" if provider == "anthropic" else "openai"]
        found: dict[bytes, Any] = {}
        for name, value in headers.raw:  # public on httpx and httpx2 Headers: [(name, value)] as sent
            name = name.lower()
            if name in names:
                found[name] = None if name in found else value
        if found:
            set_ratelimits(m, ratelimits(m, provider, model), [found.get(n) for n in names])
    except Exception:
        log_failure("instrument.ratelimit", "reading rate-limit headers failed")


def request_hook(request: Any) -> None:
    state = active()
    if state is not None:
        state.attempts += 1


def response_hook(response: Any) -> None:
    state = active()
    if state is not None:
        state.response = response
        record_ratelimit_headers(state.m, state.provider, state.model, response.headers)


async def arequest_hook(request: Any) -> None:
    request_hook(request)


async def aresponse_hook(response: Any) -> None:
    response_hook(response)


for _hook in (request_hook, response_hook, arequest_hook, aresponse_hook):
    setattr(_hook, HOOK_ATTR, True)


def install_event_hooks(client: Any, is_async: bool) -> bool:
    """Add our hooks to the SDK client's HTTP client (shared by clients derived with ``copy()``);
    False if it has none (then retries and rate limits are not recorded)."""
    http = getattr(client, "_client", None)
    hooks = getattr(http, "event_hooks", None)
    if not isinstance(hooks, dict):
        return False
    requests = list(hooks.get("request", []))
    responses = list(hooks.get("response", []))
    if any(getattr(h, HOOK_ATTR, False) for h in requests + responses):
        return True
    requests.append(arequest_hook if is_async else request_hook)
    responses.append(aresponse_hook if is_async else response_hook)
    http.event_hooks = {**hooks, "request": requests, "response": responses}
    return True
