"""Rate-limit response headers -> ``llm_ratelimit_remaining`` / ``llm_ratelimit_limit``.

Noted for every HTTP attempt (``note``, with the batch of finished calls, ``Call.defer``). The
gauges show the latest values, so a batch reads only the newest headers per (provider, model)
when they carry every value (``record_newest``): one in a batch of calls, not one per call. Reading
them is kept to C-level work: one pass that maps the lower-case header names to their values
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


def content_type(headers: Any) -> Any:
    """The content-type header's value (bytes from httpx's own list, else as the mapping gives
    it; None if absent), without mapping every header."""
    entries = getattr(headers, "_list", None)
    if type(entries) is list:
        for entry in entries:
            if entry[1] == CONTENT_TYPE:
                return entry[2]
        return None
    return headers.get("content-type")


Noted = tuple[Any, Optional[dict[bytes, Any]], Optional[list[bytes]]]  # (headers, found, names)


def note(m: Any, provider: str, model: str, headers: Any, found: Optional[dict[bytes, Any]] = None,
         names: Optional[list[bytes]] = None) -> None:
    """``record_headers``, or in a batch of finished calls, at its end with the newest headers of
    the same (provider, model) (``record_newest``). Never raises."""
    store = m.store
    if store is None or not store.newest((provider, model), (headers, found, names), record_newest):
        record_headers(provider, model, headers, found, names)


def record_newest(key: tuple[str, str], noted: list[Noted]) -> None:
    """The headers a batch noted for one (provider, model), in order: the newest alone when they
    carry every value (the usual response: all earlier values are overwritten), else all in order."""
    provider, model = key
    headers, found, names = noted[-1]
    if record_headers(provider, model, headers, found, names) or len(noted) == 1:
        return
    for headers, found, names in noted:  # the newest again last: its values win
        record_headers(provider, model, headers, found, names)


def record_headers(provider: str, model: str, headers: Any, found: Optional[dict[bytes, Any]] = None,
                   names: Optional[list[bytes]] = None) -> bool:
    """``record`` from a response's headers (``found``, ``names``: their ``header_map``, if made
    already); True if every value was set. Never raises."""
    try:
        if found is None:
            found, names = header_map(headers)
        return record(provider, model, found, names)
    except Exception:
        log_failure("instrument.ratelimit", "reading rate-limit headers failed")
        return False


def record(provider: str, model: str, found: dict[bytes, Any], names: Optional[list[bytes]]) -> bool:
    """Store the rate-limit values among ``found`` (a header sent twice is ambiguous: ignored);
    True if every value was sent, as digits, and stored (no earlier value is left)."""
    wanted = NAMES["anthropic" if provider == "anthropic" else "openai"]
    values = list(map(found.get, wanted))
    if values.count(None) == len(values):
        return False
    if names is not None:
        values = [None if v is not None and names.count(n) > 1 else v for n, v in zip(wanted, values)]
    m = metrics.current()
    entry = ratelimits(m, provider, model)
    try:
        # the usual response: every value sent, as digits, and the entry's gauges exist
        if entry.lazy and None not in values and None not in entry.children[:len(values)] \
                and all(map(bytes.isdigit, values)):
            entry.slots[:len(values)] = values
            return True
    except TypeError:  # a value that is not bytes
        pass
    set_ratelimits(m, entry, values)
    return False
