"""Normalisation of label values and token counts.

Closed label sets (operation, finish_reason, error_type, ...) come from the
contract; anything unknown becomes "other". Free-form labels (provider, model,
feature) are sanitised here and bounded by ``labels.LabelGuard``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from . import contract

MAX_LABEL_LENGTH = 64
UNKNOWN = "unknown"

#: Per-call bounds. A value beyond them is a caller bug (a wrong unit, garbage) and could push a
#: counter or a histogram sum to +Inf for the life of the process (or raise half-way through an
#: update): ``record_call`` rejects it with ``ValueError``, ``recorder.record`` never applies it.
MAX_TOKENS = 10**15  # per token count (exact as a float; a million billion)
MAX_SECONDS = 1e9  # durations and time to first token (about 31.7 years)
MAX_COST_USD = 1e9  # cost_usd given, or computed from the price table

# --- free-form label values ------------------------------------------------------


def sanitise(value: object, max_length: int = MAX_LABEL_LENGTH) -> str:
    """A safe label value: printable, stripped, at most ``max_length`` chars, never empty."""
    s = value if type(value) is str else str(value)
    s = s.strip()
    if not s.isprintable():
        # Newlines, tabs and control characters make unreadable series; drop them.
        s = "".join(c for c in s if c.isprintable()).strip()
    if len(s) > max_length:
        s = s[:max_length].rstrip()
    return s or UNKNOWN


def provider(value: object) -> str:
    """Providers are compared case-insensitively: "OpenAI" and "openai" are one series."""
    return sanitise(value).lower()


# --- closed sets ------------------------------------------------------------------

_OPERATION_ALIASES = {
    "chat.completions": "chat",
    "chat_completions": "chat",
    "chat_completion": "chat",
    "chat.completion": "chat",
    "response": "responses",
    "message": "messages",
    "completion": "completions",
    "embedding": "embeddings",
    "image": "images",
    "moderation": "moderations",
}
_OPERATIONS = frozenset(contract.OPERATIONS)


def operation(value: object) -> str:
    """Map an operation name onto ``contract.OPERATIONS`` ("other" if unknown)."""
    if type(value) is str and value in _OPERATIONS:
        return value
    s = str(value).strip().lower()
    if s in _OPERATIONS:
        return s
    return _OPERATION_ALIASES.get(s, "other")


#: Provider finish/stop reasons -> contract.FINISH_REASONS.
_FINISH_REASONS = {
    # OpenAI chat / completions
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
    # Anthropic messages
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "other",
    # OpenAI Responses (status / incomplete_details.reason)
    "completed": "stop",
    "max_output_tokens": "length",
    # Gemini-style values (upper case in their API)
    "max_tokens_reached": "length",
    "safety": "content_filter",
    "recitation": "content_filter",
    "blocklist": "content_filter",
    "prohibited_content": "content_filter",
    # ours
    "error": "error",
    "failed": "error",
    "cancelled": "cancelled",
    "canceled": "cancelled",
    "other": "other",
}


def finish_reason(value: object, *, strict: bool = False) -> str:
    """Map a provider finish reason onto ``contract.FINISH_REASONS``.

    Unknown strings become "other". A non-string is a programmer error: with
    ``strict`` it raises ``TypeError``, otherwise it becomes "other".
    """
    if type(value) is str:
        r = _FINISH_REASONS.get(value)
        if r is not None:
            return r
        return _FINISH_REASONS.get(value.strip().lower(), "other")
    if strict:
        raise TypeError(f"finish_reason must be a str, got {type(value).__name__}: {value!r}")
    return "other"


_ERROR_TYPES = frozenset(contract.ERROR_TYPES)


def error_type(value: object, *, strict: bool = False) -> str:
    """Map an error type string onto ``contract.ERROR_TYPES`` ("other" if unknown)."""
    if type(value) is str:
        if value in _ERROR_TYPES:
            return value
        s = value.strip().lower()
        return s if s in _ERROR_TYPES else "other"
    if strict:
        raise TypeError(f"error_type must be a str or None, got {type(value).__name__}: {value!r}")
    return "other"


# --- tokens -------------------------------------------------------------------------


class TokenParts(NamedTuple):
    """Disjoint token counts of one call; they add up to the billed total."""

    input: int  # uncached input
    cache_read: int
    cache_write: int
    output: int  # visible output (excludes reasoning)
    reasoning: int

    @property
    def input_all(self) -> int:
        return self.input + self.cache_read + self.cache_write

    @property
    def output_all(self) -> int:
        return self.output + self.reasoning


class TokenMismatch(ValueError):
    """Token counts that cannot describe one call (e.g. cached > input)."""


def is_additive(provider_name: str) -> bool:
    """Anthropic reports input tokens *excluding* cache reads and writes; others include them."""
    return provider_name == "anthropic"


def token_parts(
    *,
    additive: bool,
    input_tokens: int,
    output_tokens: int,
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
    reasoning_tokens: int = 0,
    strict: bool = True,
) -> TokenParts:
    """Provider-semantics token counts -> disjoint ``TokenParts``.

    ========================  ==========================  ==========================
    argument                  additive (Anthropic)        inclusive (OpenAI & others)
    ========================  ==========================  ==========================
    input_tokens              uncached input only          all input incl. cache read
                                                           and cache write
    cache_read_tokens         read from cache              subset of input_tokens
    cache_write_tokens        written to cache             subset of input_tokens
    output_tokens             all output incl. reasoning   all output incl. reasoning
    reasoning_tokens          subset of output_tokens      subset of output_tokens
    ========================  ==========================  ==========================

    Inconsistent numbers raise ``TokenMismatch`` when ``strict``; otherwise the
    derived part is clamped to 0 (the caller logs).
    """
    return split_tokens(additive, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                        reasoning_tokens, strict)


def split_tokens(additive: bool, inp: int, out: int, cr: int, cw: int, rs: int, strict: bool) -> TokenParts:
    """Positional ``token_parts`` for the hot path."""
    uncached = inp if additive else inp - cr - cw
    visible = out - rs
    if uncached >= 0 and visible >= 0:
        return _make_parts((uncached, cr, cw, visible, rs))
    if uncached < 0:
        if strict:
            raise TokenMismatch(
                f"cache_read_tokens ({cr}) + cache_write_tokens ({cw}) exceed input_tokens ({inp}); "
                "for this provider input_tokens includes cached tokens "
                "(pass provider='anthropic' for additive semantics)"
            )
        uncached = 0
    if visible < 0:
        if strict:
            raise TokenMismatch(
                f"reasoning_tokens ({rs}) exceed output_tokens ({out}); output_tokens includes reasoning tokens"
            )
        visible = 0
    return _make_parts((uncached, cr, cw, visible, rs))


_make_parts = TokenParts._make


def shown(value: object) -> str:
    """``repr`` for error messages; a huge int is not printed (str() of one may itself fail)."""
    if type(value) is int and value.bit_length() > 64:
        return f"an int of {value.bit_length()} bits"
    return f"{value!r:.80}"


def check_count(name: str, value: object) -> int:
    """Validate a token count argument: a whole number in [0, MAX_TOKENS] (programmer errors raise)."""
    if type(value) is int:
        if value < 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
        if value > MAX_TOKENS:
            raise ValueError(f"{name} must be <= {MAX_TOKENS}, got {shown(value)}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}: {value!r:.80}")
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{name} must be a finite number, got {value}")
        if value != int(value):
            raise ValueError(f"{name} must be a whole number, got {value}")
    number = int(value)
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {number}")
    if number > MAX_TOKENS:
        raise ValueError(f"{name} must be <= {MAX_TOKENS}, got {shown(value)}")
    return number


def check_seconds(name: str, value: object, *, optional: bool = False) -> float | None:
    """Validate a duration argument: a number of seconds in [0, MAX_SECONDS]."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {type(value).__name__}: {value!r:.80}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond the float range
        seconds = math.inf
    if not 0.0 <= seconds <= MAX_SECONDS:  # NaN fails too
        raise ValueError(f"{name} must be a finite number >= 0 and <= {MAX_SECONDS:g}, got {shown(value)}")
    return seconds


def check_cost(name: str, value: object) -> float:
    """Validate a cost in USD: a number in [0, MAX_COST_USD]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number or None, got {type(value).__name__}")
    try:
        cost = float(value)
    except OverflowError:
        cost = math.inf
    if not 0.0 <= cost <= MAX_COST_USD:
        raise ValueError(f"{name} must be a finite number >= 0 and <= {MAX_COST_USD:g}, got {shown(value)}")
    return cost


def soft_count(value: object) -> int | None:
    """Lenient count for duck-typed SDK objects: ints >= 0, else None (unknown)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value == value and value >= 0 and value != math.inf:
        return int(value)
    return None
