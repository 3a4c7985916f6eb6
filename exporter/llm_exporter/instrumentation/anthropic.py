"""Anthropic / AsyncAnthropic: the methods instrumented.

``messages.stream()`` returns a manager that sends its request on ``__enter__`` through the
``messages`` resource's request function ``_post`` (private; no public seam sees that request
with its stream: docs/instrumentation.md). It is wrapped as a ``request`` method: a call is
opened there only for a streamed request that no wrapped method opened (``create`` and ``parse``
call it too, inside their own call).
"""

from __future__ import annotations

from ._calls import MethodSpec

PROVIDER = "anthropic"

METHODS: tuple[MethodSpec, ...] = (
    MethodSpec(("messages",), "create", "messages"),
    MethodSpec(("messages",), "parse", "messages"),
    MethodSpec(("messages",), "_post", "messages", request=True),
)
