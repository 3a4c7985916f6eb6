"""Quality signals: user feedback and the opt-in refusal detector.

Neither ever turns text into a label: feedback is bucketed to
positive/neutral/negative and a refusal is a counter increment.
"""

from __future__ import annotations

import re
from typing import Iterable

from . import contract, metrics
from .context import current_feature

#: seed 000's QualityMonitor refusal patterns (case-insensitive regexes).
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"I cannot",
    r"I'm unable to",
    r"I don't have access",
    r"I apologize, but",
    r"As an AI",
    r"I'm not able to",
)

#: Only the start of a response is scanned: refusals come first, and long
#: responses should not cost a full regex pass per call.
DEFAULT_SCAN_CHARS = 2000


class RefusalDetector:
    """Matches response text against refusal patterns (opt-in via ``configure``)."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_REFUSAL_PATTERNS, *,
                 flags: int = re.IGNORECASE, scan_chars: int = DEFAULT_SCAN_CHARS) -> None:
        pats = list(patterns)
        if not pats:
            raise ValueError("RefusalDetector needs at least one pattern")
        try:
            self._regex = re.compile("|".join(f"(?:{p})" for p in pats), flags)
        except re.error as e:
            raise ValueError(f"bad refusal pattern: {e}") from None
        self.patterns = tuple(pats)
        self.scan_chars = scan_chars

    def is_refusal(self, text: str | None) -> bool:
        if not text:
            return False
        return self._regex.search(text, 0, self.scan_chars) is not None


def text_scan_enabled(settings: metrics.Settings) -> bool:
    """Whether a detector that reads answer text is configured (streams keep no text otherwise)."""
    return settings.refusal_detector is not None


def detector() -> RefusalDetector | None:
    return metrics.current().settings.refusal_detector


_RATINGS = frozenset(contract.FEEDBACK_RATINGS)


def rating_value(rating: object) -> str:
    """int 1..5 (1-2 negative, 3 neutral, 4-5 positive), bool (thumbs up/down) or a rating name."""
    if isinstance(rating, bool):
        return "positive" if rating else "negative"
    if isinstance(rating, int):
        if 1 <= rating <= 5:
            return "negative" if rating <= 2 else "neutral" if rating == 3 else "positive"
        raise ValueError(f"rating must be 1..5, got {rating}")
    if isinstance(rating, str):
        r = rating.strip().lower()
        if r in _RATINGS:
            return r
        raise ValueError(f"rating must be one of {contract.FEEDBACK_RATINGS}, got {rating!r}")
    raise ValueError(f"rating must be an int 1..5, a bool or one of {contract.FEEDBACK_RATINGS}, got {rating!r}")


def record_feedback(feature: str | None, model: str, rating: int | bool | str) -> None:
    """Count one user rating as ``llm_feedback_total{feature, model, rating}``.

    ``feature=None`` uses the current ``feature(...)`` context. Bad ratings raise
    ``ValueError``; the label values go through the cardinality guard.
    """
    value = rating_value(rating)
    m = metrics.current()
    g = m.guard.resolve
    m.families["llm_feedback_total"].labels(g("feature", current_feature(feature)), g("model", model), value).inc()
