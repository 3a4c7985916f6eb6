"""Rate-limit response headers -> ``llm_ratelimit_remaining`` / ``llm_ratelimit_limit``.

Runs for every HTTP attempt (with the batch of finished calls, ``Call.defer``), so the usual
case is kept to C-level work: one pass that maps the lower-case header names to their values
(``header_map``), one lookup per header we read, and, when every value is present and plain
digits, one list store into the (provider, model)'s ``recorder.RateLimits`` (parsed when
scraped). Anything else takes ``recorder.set_ratelimits``, which checks each value.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Optional

from .. import metrics
from ..contract import RATELIMIT_RESOURCES
from ..errors import log_failure
from ..recorder import ratelimits, set_ratelimits


def _names(pattern: str, resources: tuple[str, ...]) -> tuple[bytes, ...]:
    """Header names in ``RateLimits`` slot order: (remaining, limit) per resource."""
    assert resources == RATELIMIT_RESOURCES[:len(resources)]  # the slots follow the contract's order
    return tuple(pattern.format(resource=r.replace("_", "-"), kind=kind).encode()
                 for r in resources for kind in ("remaining", "limit"))


#: provider -> header names (lower case) in slot order
NAMES = {
    "openai": _names("x-ratelimit-{kind}-{resource}", ("requests", "tokens")),
    "anthropic": _names("anthropic-ratelimit-{resource}-{kind}", RATELIMIT_RESOURCES),
}
CONTENT_TYPE = b"content-type"

_NAME_VALUE = itemgetter(1, 2)  # httpx.Headers keeps (raw name, lower-case name, value) per header
_NAME = itemgetter(1)


def header_map(headers: Any) -> tuple[dict[bytes, Any], Optional[list[bytes]]]:
    """``({lower-case name: value}, names)`` of response headers; ``names`` lists every name
    (lower case) when one is sent twice, else None."""
    entries = getattr(headers, "_list", None)
    if type(entries) is list:
        found = dict(map(_NAME_VALUE, entries))
        return found, (list(map(_NAME, entries)) if len(found) < len(entries) else None)
    raw = getattr(headers, "raw", None)  # any other httpx-like headers object: [(name, value)]
    items = raw if isinstance(raw, list) else list(headers.items())
    names = [(n if isinstance(n, bytes) else str(n).encode("latin-1")).lower() for n, _ in items]
    found = dict(zip(names, (v for _, v in items)))
    return found, (names if len(found) < len(names) else None)


def record_headers(provider: str, model: str, headers: Any, found: Optional[dict[bytes, Any]] = None,
                   names: Optional[list[bytes]] = None) -> None:
    """``record`` from a response's headers (``found``, ``names``: their ``header_map``, if made
    already); run with the batch of finished calls. Never raises."""
    try:
        if found is None:
            found, names = header_map(headers)
        record(provider, model, found, names)
    except Exception:
        log_failure("instrument.ratelimit", "reading rate-limit headers failed")


def record(provider: str, model: str, found: dict[bytes, Any], names: Optional[list[bytes]]) -> None:
    """Store the rate-limit values among ``found`` (a header sent twice is ambiguous: ignored)."""
    wanted = NAMES["anthropic" if provider == "anthropic" else "openai"]
    values = list(map(found.get, wanted))
    if values.count(None) == len(values):
        return
    if names is not None:
        values = [None if v is not None and names.count(n) > 1 else v for n, v in zip(wanted, values)]
    m = metrics.current()
    entry = ratelimits(m, provider, model)
    try:
        # the usual response: every value sent, as digits, and the entry's gauges exist
        if entry.lazy and None not in values and None not in entry.children[:len(values)] \
                and all(map(bytes.isdigit, values)):
            entry.slots[:len(values)] = values
            return
    except TypeError:  # a value that is not bytes
        pass
    set_ratelimits(m, entry, values)
