"""OpenAI / AsyncOpenAI / AzureOpenAI: wrapped resource methods + HTTP client event hooks.

The openai SDK has no middleware, so per-attempt observation (retries, rate-limit
headers, the response body) goes through the event hooks of its httpx client.
``chat.completions.stream()`` and ``responses.stream()`` call ``create`` and are
covered by it.
"""

from __future__ import annotations

from typing import Any, Optional

from ._hooks import install_event_hooks
from ._wrap import MethodSpec, install_methods

PROVIDER = "openai"

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("chat", "completions"), "create", "chat"),
    MethodSpec(("chat", "completions"), "parse", "chat"),
    MethodSpec(("responses",), "create", "responses"),
    MethodSpec(("responses",), "parse", "responses"),
    MethodSpec(("embeddings",), "create", "embeddings"),
    MethodSpec(("completions",), "create", "completions"),
)


def instrument_openai(client: Any, feature: Optional[str], is_async: bool) -> bool:
    hooks = install_event_hooks(client, is_async)
    install_methods(client, PROVIDER, METHODS, feature, is_async)
    return hooks
