"""Rate-limit response headers -> ``llm_ratelimit_remaining`` / ``llm_ratelimit_limit``.

Runs for every HTTP attempt, so it is kept cheap: one pass over the headers (which
also picks up the content type); ``recorder.record_ratelimit`` sets the gauges from
children it caches per (provider, model, resource).
"""

from __future__ import annotations

from typing import Any

from ..recorder import record_ratelimit


def _table(pairs: dict[str, tuple[str, str]]) -> dict[Any, tuple[str, str]]:
    # str and bytes keys: httpx gives raw bytes pairs, other header mappings str
    return {**pairs, **{k.encode(): v for k, v in pairs.items()}}


#: header name (lower case) -> (resource, kind) per provider
_TABLES = {
    "openai": _table({
        "x-ratelimit-limit-requests": ("requests", "limit"),
        "x-ratelimit-remaining-requests": ("requests", "remaining"),
        "x-ratelimit-limit-tokens": ("tokens", "limit"),
        "x-ratelimit-remaining-tokens": ("tokens", "remaining"),
    }),
    "anthropic": _table({
        f"anthropic-ratelimit-{name}-{kind}": (name.replace("-", "_"), kind)
        for name in ("requests", "tokens", "input-tokens", "output-tokens")
        for kind in ("limit", "remaining")
    }),
}
_CONTENT_TYPE = ("content-type", b"content-type")


def scan(provider: str, headers: Any) -> tuple[dict[str, dict[str, float]], str]:
    """``({resource: {kind: raw value}}, content type)`` from response headers in one pass.

    Values stay as sent (str or bytes); ``record_ratelimit`` parses them and ignores
    what is not a finite number >= 0."""
    table = _TABLES["anthropic" if provider == "anthropic" else "openai"]
    raw = getattr(headers, "raw", None)  # httpx.Headers: [(name, value)] as bytes
    items = raw if isinstance(raw, list) else headers.items()
    found: dict[str, dict[str, Any]] = {}
    ctypes: list[str] = []
    for name, value in items:
        name = name.lower()
        hit = table.get(name)
        if hit is None:
            if name in _CONTENT_TYPE:
                ctypes.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
            continue
        resource, kind = hit
        values = found.setdefault(resource, {})
        values[kind] = None if kind in values else value  # sent twice: ambiguous, ignored
    return found, ", ".join(ctypes)


def record(provider: str, model: str, found: dict[str, dict[str, Any]]) -> None:
    """Set the gauges for values from ``scan`` (``record_ratelimit`` never raises)."""
    for resource, values in found.items():
        record_ratelimit(provider, model, resource, remaining=values.get("remaining"), limit=values.get("limit"))
