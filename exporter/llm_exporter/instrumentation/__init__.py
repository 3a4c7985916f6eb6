"""``instrument(client, feature=None)``: metrics for an OpenAI or Anthropic client in one line.

    client = llm_exporter.instrument(OpenAI(), feature="support_triage")

Duck-typed (no SDK is imported here). Two layers:

* the resource methods in each provider's table (``openai.METHODS``, ``anthropic.METHODS``) are
  wrapped on the client's resource objects: one ``Call`` per API call (``_calls``), a stream read
  from the events the SDK yields (``_streams``);
* the event hooks of the SDK's HTTP client run once per HTTP attempt inside the SDK's retry
  loop: retries and rate-limit headers (``_hooks``).

The caller's results, streams, responses and exceptions are the SDK's own, unchanged.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, TypeVar

from ..errors import log_failure, log_once
from . import anthropic, openai
from ._calls import install_methods
from ._hooks import install_event_hooks

__all__ = ["instrument", "is_instrumented"]

C = TypeVar("C")

_MARK = "_llm_exporter_instrumented"
_TABLES = {"openai": openai.METHODS, "anthropic": anthropic.METHODS}


def _kind(client: Any) -> tuple[Optional[str], bool]:
    """(provider, is_async) from the client's class hierarchy."""
    provider: Optional[str] = None
    is_async = False
    for cls in type(client).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if provider is None and root in _TABLES:
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
        if not install_event_hooks(client, is_async):
            log_once(f"instrument.hooks:{type(client).__name__}", "%s: no HTTP client event hooks found (private "
                     "_client, see docs/instrumentation.md); retries and rate-limit headers are not recorded",
                     type(client).__name__)
        install_methods(client, provider, _TABLES[provider], feature, is_async)
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
