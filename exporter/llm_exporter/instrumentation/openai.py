"""OpenAI / AsyncOpenAI / AzureOpenAI: the methods instrumented.

``chat.completions.stream()`` and ``responses.stream()`` send their request through ``create``
(looked up on the resource when the helper's manager is entered), so ``create`` covers them.
"""

from __future__ import annotations

from ._calls import MethodSpec

PROVIDER = "openai"

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("chat", "completions"), "create", "chat"),
    MethodSpec(("chat", "completions"), "parse", "chat"),
    MethodSpec(("responses",), "create", "responses"),
    MethodSpec(("responses",), "parse", "responses"),
    MethodSpec(("embeddings",), "create", "embeddings"),
    MethodSpec(("completions",), "create", "completions"),
)
