"""Quality signals: user feedback, the opt-in refusal and hedging detectors, evaluation scores.

None of them ever turns text into a label: feedback is bucketed to
positive/neutral/negative, a refusal or a hedged answer is a counter increment, a
score is an observation in a 0..1 histogram labelled by a bounded evaluator name.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Iterable

from . import contract, metrics
from .context import current_feature
from .errors import log_failure
from .locks import client_update

#: seed 000's QualityMonitor refusal patterns (case-insensitive regexes).
DEFAULT_REFUSAL_PATTERNS: tuple[str, ...] = (
    r"I cannot",
    r"I'm unable to",
    r"I don't have access",
    r"I apologize, but",
    r"As an AI",
    r"I'm not able to",
)

#: seed 000's QualityMonitor "hallucination markers" (hedging phrases), as whole words
#: (the seed's bare "probably" also matched "improbably") and with either apostrophe
#: (models often write "I’m").
DEFAULT_HEDGING_PATTERNS: tuple[str, ...] = (
    r"\bI think\b",
    r"\bI believe\b",
    r"\bprobably\b",
    r"\bmight be\b",
    r"\bI['’]m not sure\b",
    r"\bas far as I know\b",
)

#: Only the start of a response is scanned: refusals and hedges come first, and long
#: responses should not cost a full regex pass per call. Stream readers keep this many
#: characters of a streamed answer, so a larger ``scan_chars`` does not reach further there.
DEFAULT_SCAN_CHARS = 2000


class PatternDetector:
    """Case-insensitive regexes matched against the start of a response."""

    kind = "pattern"

    def __init__(self, patterns: Iterable[str], *, flags: int = re.IGNORECASE,
                 scan_chars: int = DEFAULT_SCAN_CHARS) -> None:
        pats = list(patterns)
        if not pats:
            raise ValueError(f"{type(self).__name__} needs at least one pattern")
        if isinstance(scan_chars, bool) or not isinstance(scan_chars, int) or scan_chars < 1:
            raise ValueError(f"scan_chars must be an int >= 1, got {scan_chars!r}")
        try:
            self._regex = re.compile("|".join(f"(?:{p})" for p in pats), flags)
        except re.error as e:
            raise ValueError(f"bad {self.kind} pattern: {e}") from None
        self.patterns = tuple(pats)
        self.scan_chars = scan_chars

    def matches(self, text: str | None) -> bool:
        if not text or not isinstance(text, str):
            return False
        return self._regex.search(text, 0, self.scan_chars) is not None


class RefusalDetector(PatternDetector):
    """Matches response text against refusal patterns (opt-in via ``configure``)."""

    kind = "refusal"

    def __init__(self, patterns: Iterable[str] = DEFAULT_REFUSAL_PATTERNS, *,
                 flags: int = re.IGNORECASE, scan_chars: int = DEFAULT_SCAN_CHARS) -> None:
        super().__init__(patterns, flags=flags, scan_chars=scan_chars)

    def is_refusal(self, text: str | None) -> bool:
        return self.matches(text)


class HedgingDetector(PatternDetector):
    """Matches hedging phrases ("I think", "probably", ...) in response text
    (opt-in: ``configure(hedging_detector=True)``); counted in ``llm_hedged_responses_total``."""

    kind = "hedging"

    def __init__(self, patterns: Iterable[str] = DEFAULT_HEDGING_PATTERNS, *,
                 flags: int = re.IGNORECASE, scan_chars: int = DEFAULT_SCAN_CHARS) -> None:
        super().__init__(patterns, flags=flags, scan_chars=scan_chars)

    def is_hedged(self, text: str | None) -> bool:
        return self.matches(text)


def text_scan_enabled(settings: Any) -> bool:
    """Whether any text detector (refusal or hedging) is configured in ``settings``
    (``metrics.Settings``): stream readers collect the start of a streamed answer only then."""
    try:
        return settings.refusal_detector is not None or settings.hedging_detector is not None
    except Exception:
        return False


def count_hedging(m: Any, key: tuple[str, str, str, str], hedged: bool) -> None:
    """One call recorded while the hedging detector is on: its series exists from then on
    (at 0, so rate() sees the first hedge and the drift rule knows the detector was on);
    +1 if the answer hedged. ``key``: the call's resolved (provider, model, feature, operation)."""
    try:
        with client_update:
            child = m.families["llm_hedged_responses_total"].labels(*key)
            if hedged:
                child.inc()
    except Exception:
        log_failure("hedging", "counting a hedged response failed")


def refusal_detection_enabled() -> bool:
    """Whether a refusal detector is configured (instrumentation skips text accumulation if not)."""
    try:
        return metrics.current().settings.refusal_detector is not None
    except Exception:
        return False


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
    labels = (g("feature", current_feature(feature)), g("model", model), value)
    with client_update:
        m.families["llm_feedback_total"].labels(*labels).inc()


def score_value(value: object) -> float:
    """A score as a float in 0..1; ``TypeError``/``ValueError`` otherwise (NaN included)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"score must be a number from 0 to 1, got {type(value).__name__}: {value!r}")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise ValueError(f"score must be from 0 to 1, got {value!r}")
    return v


def record_score(name: str, value: float, *, provider: str, model: str, feature: str | None = None) -> None:
    """Record one evaluation score as ``llm_eval_score{provider, model, feature, evaluator=name}``.

    ``value``: 0..1 (a bad value raises ``ValueError``/``TypeError``: a caller bug).
    ``provider``/``model``: of the evaluated response; ``feature=None`` uses the current
    ``feature(...)`` context. ``name`` (e.g. "factual_accuracy") goes through the cardinality
    guard (20 evaluators by default). Recording itself never raises.
    """
    if not isinstance(name, str):
        raise TypeError(f"evaluator name must be a str, got {type(name).__name__}")
    v = score_value(value)
    try:
        m = metrics.current()
        g = m.guard.resolve
        labels = (g("provider", provider), g("model", model), g("feature", current_feature(feature)),
                  g("evaluator", name))
        with client_update:
            m.families["llm_eval_score"].labels(*labels).observe(v)
    except Exception:
        log_failure("record_score", "recording an evaluation score failed")


_FAILURE_REASONS = frozenset(contract.EVAL_FAILURE_REASONS)


def record_eval_failure(name: str, reason: str) -> None:
    """Count an evaluation that produced no score: ``llm_eval_failures_total{evaluator, reason}``.

    ``reason``: one of ``contract.EVAL_FAILURE_REASONS``. Never raises for a metrics problem.
    """
    if reason not in _FAILURE_REASONS:
        raise ValueError(f"reason must be one of {contract.EVAL_FAILURE_REASONS}, got {reason!r}")
    try:
        m = metrics.current()
        evaluator = m.guard.resolve("evaluator", name)
        with client_update:
            m.families["llm_eval_failures_total"].labels(evaluator, reason).inc()
    except Exception:
        log_failure("record_score", "counting an evaluation failure failed")
