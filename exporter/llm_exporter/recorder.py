"""Recording: ``record_call`` (the manual helper), ``record_ratelimit``, and the
one internal path (``record``) that both ``record_call`` and ``Call.finish`` use.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from . import contract, gcsafe, metrics, normalise
from .context import current_feature
from .errors import classify_error, log_failure
from .locks import client_update
from .metrics import Bundle, Metrics
from .normalise import MAX_COST_USD, MAX_SECONDS, MAX_TOKENS, TokenParts

# --- exemplars ---------------------------------------------------------------------

try:  # optional: link histogram observations to the active OpenTelemetry trace
    from opentelemetry import context as _otel_context
    from opentelemetry import trace as _otel_trace
except Exception:  # pragma: no cover - exercised only without opentelemetry-api
    _otel_trace = None


def exemplar(m: Metrics) -> dict[str, str] | None:
    """``{"trace_id": <32 hex>}`` when an OpenTelemetry span is active, else None."""
    if _otel_trace is None or not m.exemplars:
        return None
    try:
        if not _otel_context.get_current():
            return None  # an empty context holds no span: skip the span lookups (every call pays them)
        ctx = _otel_trace.get_current_span().get_span_context()
        if ctx.is_valid:
            return {"trace_id": format(ctx.trace_id, "032x")}
    except Exception:
        log_failure("exemplar", "reading the OpenTelemetry span context failed")
    return None


# --- the record path -----------------------------------------------------------------


def record(
    m: Metrics,
    b: Bundle,
    *,
    finish_reason: str,
    error_type: str | None,
    duration: float,
    ttft: float | None,
    parts: TokenParts | None,
    cost_usd: float | None,
    retries: int,
    price_models: tuple[str | None, ...],
    refused: bool,
    ex: dict[str, str] | None,
    checked: bool = False,
) -> None:
    """Record one finished call into bundle ``b`` (labels resolved).

    Everything that needs no lock (time per output token, price lookup) is worked
    out here; ``b.apply`` then makes all updates at once.

    No value that could make a counter or a sum non-finite (or raise half-way through
    ``apply``) gets there: a duration out of range drops the call; a ttft, token counts
    or retries out of range are dropped; a computed cost that is not finite or above
    ``MAX_COST_USD`` counts the call as unpriced (each logged). ``checked``: the caller
    (``record_call``) already rejected such arguments with ``ValueError``.
    """
    if not checked:
        if not 0.0 <= duration <= MAX_SECONDS:  # NaN fails too
            log_failure("value-range", "call duration %s out of range; the call was not recorded",
                        normalise.shown(duration), exc_info=False)
            return
        if ttft is not None and not 0.0 <= ttft <= MAX_SECONDS:
            log_failure("value-range", "time to first token %s out of range; dropped", normalise.shown(ttft),
                        exc_info=False)
            ttft = None
        if parts is not None and (parts[0] > MAX_TOKENS or parts[1] > MAX_TOKENS or parts[2] > MAX_TOKENS
                                  or parts[3] > MAX_TOKENS or parts[4] > MAX_TOKENS):
            log_failure("value-range", "token count above %d; the call's usage was dropped", MAX_TOKENS,
                        exc_info=False)
            parts = None
        if retries and not 0 <= retries <= MAX_TOKENS:
            log_failure("value-range", "retries %s out of range; dropped", normalise.shown(retries), exc_info=False)
            retries = 0
    tpot = None
    if ttft is not None and parts is not None:
        produced = parts[3] + parts[4]
        if produced > 1 and duration >= ttft:
            tpot = (duration - ttft) / (produced - 1)
    savings = None
    unpriced = False
    if parts is not None and cost_usd is None and (parts[0] or parts[1] or parts[2] or parts[3] or parts[4]):
        price = None
        for model in price_models:
            price = m.pricing.lookup(model)
            if price is not None:
                break
        if price is None:
            unpriced = True
        else:
            cost_usd = price.cost(parts)
            if not 0.0 <= cost_usd <= MAX_COST_USD:  # absurd prices or counts: never added, NaN/+Inf included
                log_failure("cost-range", "computed cost %s for model %s out of range; counted as unpriced",
                            normalise.shown(cost_usd), normalise.shown(price_models), exc_info=False)
                cost_usd = None
                unpriced = True
            elif parts.cache_read:
                savings = price.cache_savings(parts)
                if not 0.0 <= savings <= MAX_COST_USD:
                    savings = None
    with gcsafe.section:
        b.apply(finish_reason, error_type, duration, ttft, tpot, parts, cost_usd, savings, unpriced, retries, refused,
                ex)


# --- record_call -----------------------------------------------------------------------


_COUNT_NAMES = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")


def _label_arg(name: str, value: object, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r}")


def record_call(
    *,
    provider: str,
    model: str,
    feature: str | None = None,
    operation: str = "chat",
    duration_s: float,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    finish_reason: str = "stop",
    time_to_first_token_s: float | None = None,
    error_type: str | BaseException | None = None,
    attempt: int = 0,
    cost_usd: float | None = None,
) -> None:
    """Record one finished LLM call (the manual helper).

    Token arguments use *provider semantics*, exactly as the provider's usage reports them:

    ====================  =====================================  ======================================
    argument              provider="anthropic" (additive)        any other provider (OpenAI style)
    ====================  =====================================  ======================================
    input_tokens          uncached input (``usage.input_tokens``)  all input incl. cache read and write
                                                                  (``prompt_tokens`` / ``input_tokens``)
    cache_read_tokens     ``cache_read_input_tokens``             ``cached_tokens`` (part of input)
    cache_write_tokens    ``cache_creation_input_tokens``         ``cache_write_tokens`` (part of input)
    output_tokens         all output incl. reasoning              all output incl. reasoning
    reasoning_tokens      ``thinking_tokens`` (part of output)    ``reasoning_tokens`` (part of output)
    ====================  =====================================  ======================================

    They map to the disjoint ``llm_tokens_total{token_type}`` series: input (uncached),
    cache_read, cache_write, output (visible = output - reasoning), reasoning
    (``normalise.token_parts``). Cost comes from the price table for ``model``
    unless ``cost_usd`` is given; an unpriced model with tokens counts in
    ``llm_unpriced_requests_total`` instead.

    ``time_to_first_token_s`` marks a stream: TTFT and time per output token
    ((duration - ttft) / (output_tokens - 1)) are recorded. ``error_type`` (a
    contract error type string or an exception) counts in ``llm_errors_total``
    and makes the default finish_reason "error" ("cancelled" for cancellations).
    ``attempt`` is this attempt's 0-based index: an attempt > 0 is a retry
    (``llm_retries_total`` += 1).

    Raises ``TypeError``/``ValueError`` for bad arguments (negative or NaN
    counts or durations, non-string labels, inconsistent token counts). Failures
    inside the metrics library itself are logged, never raised.
    """
    if not (type(provider) is str and type(model) is str and type(operation) is str
            and (feature is None or type(feature) is str)):
        _label_arg("provider", provider)
        _label_arg("model", model)
        _label_arg("feature", feature, optional=True)
        _label_arg("operation", operation)
    # fast paths for the common, valid case; the checks below give the messages
    if type(duration_s) is float and 0.0 <= duration_s <= MAX_SECONDS:
        duration = duration_s
    else:
        duration = normalise.check_seconds("duration_s", duration_s)  # type: ignore[assignment]
    ttft = None
    if time_to_first_token_s is not None:
        ttft = normalise.check_seconds("time_to_first_token_s", time_to_first_token_s)
        if ttft is not None and ttft > duration:
            raise ValueError(f"time_to_first_token_s ({ttft}) exceeds duration_s ({duration})")
    counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens)
    if not (type(input_tokens) is int and type(output_tokens) is int and type(cache_read_tokens) is int
            and type(cache_write_tokens) is int and type(reasoning_tokens) is int
            and 0 <= input_tokens <= MAX_TOKENS and 0 <= output_tokens <= MAX_TOKENS
            and 0 <= cache_read_tokens <= MAX_TOKENS and 0 <= cache_write_tokens <= MAX_TOKENS
            and 0 <= reasoning_tokens <= MAX_TOKENS):
        counts = tuple(normalise.check_count(name, value) for name, value in zip(_COUNT_NAMES, counts))
    fr = normalise.finish_reason(finish_reason, strict=True)
    et: str | None
    if error_type is None:
        et = None
    elif isinstance(error_type, BaseException):
        et = classify_error(error_type)
    else:
        et = normalise.error_type(error_type, strict=True)
    if et is not None and fr == "stop":
        fr = "cancelled" if et == "cancelled" else "error"
    if type(attempt) is not int or attempt < 0:
        raise ValueError(f"attempt must be an int >= 0 (0 = first attempt), got {attempt!r}")
    if cost_usd is not None:
        cost_usd = normalise.check_cost("cost_usd", cost_usd)
    inp, out, cr, cw, rs = counts
    has_usage = inp or out or cr or cw or rs
    parts = None
    if has_usage:
        parts = normalise.split_tokens(normalise.is_additive(normalise.provider(provider)), inp, out, cr, cw, rs, True)

    try:
        m = metrics.current()
        record(
            m, m.lookup(provider, model, current_feature(feature), operation),
            finish_reason=fr, error_type=et, duration=duration, ttft=ttft,
            parts=parts, cost_usd=cost_usd,
            retries=1 if attempt > 0 else 0, price_models=(model,), refused=False, ex=exemplar(m), checked=True,
        )
    except Exception:
        log_failure("record_call", "recording an LLM call failed; the metric update was dropped")


# --- rate limits -----------------------------------------------------------------------

_RESOURCES = contract.RATELIMIT_RESOURCES
_RATELIMIT_CACHE_MAX = 4096
_FAMILIES = ("llm_ratelimit_remaining", "llm_ratelimit_limit")


def _gauge_value(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int beyond the float range
        return None
    return v if math.isfinite(v) and v >= 0 else None


class RateLimits:
    """The latest rate-limit values of one (provider, model).

    ``slots`` holds (remaining, limit) per resource in ``contract.RATELIMIT_RESOURCES`` order:
    None (never sent), a header value of plain digits (bytes, as sent) or a float. Single-process
    gauges read the slots when scraped (``set_function``), so a response costs one list store
    (instrumentation._ratelimit) and header values are parsed once per scrape, not per call.
    Multi-process gauges live in prometheus-client's files and are set on every update.
    """

    __slots__ = ("labels", "slots", "children", "lazy")

    def __init__(self, labels: tuple[str, str], lazy: bool) -> None:
        self.labels = labels
        self.slots: list[Any] = [None] * (2 * len(_RESOURCES))
        self.children: list[Any] = [None] * (2 * len(_RESOURCES))
        self.lazy = lazy

    def read(self, i: int) -> float:
        # slots hold only numbers and digit strings; a scrape must never fail on one
        try:
            return float(self.slots[i])
        except Exception:
            return math.nan

    def set(self, m: Metrics, i: int, value: Any, number: float) -> None:
        """Slot ``i`` gets ``value`` (digits as sent, or ``number``, its checked value)."""
        self.slots[i] = value
        child = self.children[i]
        if child is None:
            with client_update:
                child = m.families[_FAMILIES[i % 2]].labels(*self.labels, _RESOURCES[i // 2])
                if self.lazy:
                    child.set_function(functools.partial(self.read, i))
            self.children[i] = child
        if not self.lazy:
            with client_update:
                child.set(number)


def ratelimits(m: Metrics, provider: str, model: str) -> RateLimits:
    """The ``RateLimits`` entry for raw (provider, model) label values, cached per pair."""
    entries = m.ratelimits
    key = (provider, model)
    entry = entries.get(key)
    if entry is None:
        g = m.guard.resolve
        entry = RateLimits((g("provider", normalise.provider(provider)), g("model", model)), not m.multiprocess)
        if contract.OVERFLOW_VALUE not in entry.labels:  # folded values go through the guard (and are counted) each time
            if len(entries) >= _RATELIMIT_CACHE_MAX:
                entries.clear()
            entries[key] = entry
    return entry


def set_ratelimits(m: Metrics, entry: RateLimits, values: list[Any]) -> None:
    """Slots ``0..len(values)-1`` from raw header values (None: not sent); what is not a finite
    number >= 0 is ignored and the slot keeps its value."""
    with gcsafe.section:
        for i, raw in enumerate(values):
            number = _gauge_value(raw)
            if number is not None:
                entry.set(m, i, raw if type(raw) is bytes and raw.isdigit() else number, number)


def record_ratelimit(provider: str, model: str, resource: str, remaining: Any = None, limit: Any = None) -> None:
    """Set ``llm_ratelimit_remaining``/``llm_ratelimit_limit`` from provider headers.

    ``resource`` is one of ``contract.RATELIMIT_RESOURCES``; values may be header
    strings. Never raises: unparseable values are ignored.
    """
    try:
        if resource not in _RESOURCES:
            log_failure(f"ratelimit-resource:{resource!s:.40}",
                        "unknown rate-limit resource %r ignored (known: %s)", resource,
                        ", ".join(contract.RATELIMIT_RESOURCES), exc_info=False)
            return
        rem, lim = _gauge_value(remaining), _gauge_value(limit)
        if rem is None and lim is None:
            return
        m = metrics.current()
        entry = ratelimits(m, provider, model)
        i = 2 * _RESOURCES.index(resource)
        with gcsafe.section:
            if rem is not None:
                entry.set(m, i, rem, rem)
            if lim is not None:
                entry.set(m, i + 1, lim, lim)
    except Exception:
        log_failure("record_ratelimit", "recording rate-limit headers failed")
