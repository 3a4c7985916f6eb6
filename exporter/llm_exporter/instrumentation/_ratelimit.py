"""Rate-limit response headers -> ``llm_ratelimit_remaining`` / ``llm_ratelimit_limit``.

Runs for every HTTP attempt, so it is kept cheap: one pass over the headers (which
also picks up the content type), and the gauge children cached per
(provider, model, resource) instead of ``.labels()`` on every call.

Same semantics as ``recorder.record_ratelimit``: label values go through the active
metrics' label guard; only finite values >= 0 are set; a gauge child is created only
when its value is seen. Label sets folded to the overflow value are never cached,
so every fold is still counted in ``llm_label_overflow_total``.
"""

from __future__ import annotations

import math
from typing import Any, Optional

from .. import contract, metrics, normalise
from ..errors import log_failure
from ..recorder import record_ratelimit

#: kind ("remaining" / "limit") -> gauge family name, from the contract
_FAMILY = {spec.name.rsplit("_", 1)[1]: spec.name for spec in contract.METRICS
           if spec.labels == ("provider", "model", "resource")}


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
_DUPLICATE = object()  # a header sent twice: its values joined would not parse as a number


def scan(provider: str, headers: Any) -> tuple[dict[str, dict[str, float]], str]:
    """``({resource: {kind: value}}, content type)`` from response headers in one pass."""
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
        values[kind] = _DUPLICATE if kind in values else value
    ctype = ", ".join(ctypes)
    if not found:
        return found, ctype
    clean: dict[str, dict[str, float]] = {}
    for resource, values in found.items():
        for kind, value in values.items():
            v = _number(value)
            if v is not None:
                clean.setdefault(resource, {})[kind] = v
    return clean, ctype


def _number(value: Any) -> Optional[float]:
    if value is _DUPLICATE:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) and v >= 0 else None


# (metrics instance, {(provider, model, resource): [labels, remaining child, limit child]})
_cache: tuple[Any, dict[tuple[str, str, str], list[Any]]] = (None, {})
_CACHE_MAX = 4096


def record(provider: str, model: str, found: dict[str, dict[str, float]]) -> None:
    """Set the gauges for values from ``scan``. Never raises."""
    for resource, values in found.items():
        try:
            _set(provider, model, resource, values)
        except Exception:
            # storage without prometheus-client children, or a bug here: the plain path
            log_failure("instrument.ratelimit-cache", "cached rate-limit gauges failed; using record_ratelimit")
            record_ratelimit(provider, model, resource, remaining=values.get("remaining"),
                             limit=values.get("limit"))


def _set(provider: str, model: str, resource: str, values: dict[str, float]) -> None:
    global _cache
    m = metrics.current()
    owner, entries = _cache
    if owner is not m:  # reconfigured: children of the old families are gone
        entries = {}
        _cache = (m, entries)
    key = (provider, model, resource)
    entry = entries.get(key)
    if entry is None:
        g = m.guard.resolve
        labels = (g("provider", normalise.provider(provider)), g("model", model), resource)
        entry = [labels, None, None]
        if contract.OVERFLOW_VALUE not in labels:  # folded ones go through the guard each time
            if len(entries) >= _CACHE_MAX:
                entries.clear()
            entries[key] = entry
    for slot, kind in ((1, "remaining"), (2, "limit")):
        v = values.get(kind)
        if v is None:
            continue
        child = entry[slot]
        if child is None:
            child = entry[slot] = m.families[_FAMILY[kind]].labels(*entry[0])
        child.set(v)
