"""``instrument(client, feature=None)``: metrics for an OpenAI or Anthropic client in one line.

    client = llm_exporter.instrument(OpenAI(), feature="support_triage")

Two layers, both duck-typed so no SDK is imported here:

* the client's resource methods (``chat.completions.create``, ``responses.create``,
  ``embeddings.create``, ``messages.create``, ``messages.stream``, ...) are wrapped to
  start and finish one ``Call`` per API call;
* a per-HTTP-attempt hook inside the SDK's retry loop (the HTTP client's event
  hooks; Anthropic's client middleware as the fallback) counts retries, reads
  rate-limit headers and observes the successful response body, so streams are
  measured without replacing the SDK's stream objects.

The caller's results, streams and exceptions are the SDK's own, unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, TypeVar

from ..errors import log_failure
from ._observe import flush

__all__ = ["instrument", "flush", "is_instrumented"]

C = TypeVar("C")

_MARK = "_llm_exporter_instrumented"


def _kind(client: Any) -> tuple[Optional[str], bool]:
    """(provider, is_async) from the client's class hierarchy."""
    provider: Optional[str] = None
    is_async = False
    for cls in type(client).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if provider is None and root in ("openai", "anthropic"):
            provider = root
        if cls.__name__.startswith("Async"):
            is_async = True
    return provider, is_async


def is_instrumented(client: Any) -> bool:
    return bool(getattr(client, _MARK, False))


def instrument(client: C, feature: Optional[str] = None) -> C:
    """Instrument an ``OpenAI``/``AsyncOpenAI``/``AzureOpenAI``/``Anthropic``/``AsyncAnthropic`` client.

    Returns the same client. Idempotent. ``feature`` is the default feature label for
    its calls (a ``llm_exporter.feature(...)`` block around a call overrides it).
    Clients derived with ``copy()``/``with_options()`` are instrumented too.
    Never raises for an instrumentation problem (it is logged); raises ``TypeError``
    for an object that is not a supported client.
    """
    if feature is not None and not isinstance(feature, str):
        raise TypeError(f"feature must be a str or None, got {type(feature).__name__}")
    provider, is_async = _kind(client)
    if provider is None:
        raise TypeError(f"instrument() supports openai and anthropic clients, got {type(client).__name__}")
    if is_instrumented(client):
        return client
    try:
        if provider == "openai":
            from .openai import instrument_openai as install
        else:
            from .anthropic import instrument_anthropic as install
        if not install(client, feature, is_async):
            log_failure("instrument.hooks", "%s client: no per-attempt hook point found; retries, rate-limit "
                        "headers and stream details are not recorded", type(client).__name__, exc_info=False)
        _wrap_copy(client, feature)
        setattr(client, _MARK, True)
    except Exception:
        log_failure("instrument", "instrumenting %s failed; the client works uninstrumented", type(client).__name__)
    return client


def _wrap_copy(client: Any, feature: Optional[str]) -> None:
    """``client.with_options(...)`` returns a new client: instrument it as well."""
    for name in ("copy", "with_options"):
        original = getattr(client, name, None)
        if original is None or getattr(original, _MARK, False):
            continue

        def make(orig: Any) -> Any:
            @functools.wraps(orig)
            def derived(*args: Any, **kwargs: Any) -> Any:
                new = orig(*args, **kwargs)
                try:
                    instrument(new, feature)
                except Exception:
                    log_failure("instrument.copy", "instrumenting a derived client failed")
                return new

            setattr(derived, _MARK, True)
            return derived

        setattr(client, name, make(original))
