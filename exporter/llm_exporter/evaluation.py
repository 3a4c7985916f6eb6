"""An LLM judge for factual accuracy (seed 000's ``evaluate_factual_accuracy``), recorded as scores.

    from llm_exporter.evaluation import judge_factual_accuracy

    result = judge_factual_accuracy(OpenAI(), answer, reference, judge_model="gpt-4o-mini",
                                    provider="openai", model="gpt-4.1-mini", feature="search")
    result.score   # 0..1, or None when the judge did not answer with a number in 0..1

The judge is called through the client you pass (``openai`` or ``anthropic``, sync or async),
instrumented with ``llm_exporter.instrument`` (idempotent) inside ``feature("eval-judge")``: its
calls, tokens and cost are recorded like any other call, under their own feature. A score is
recorded with ``quality.record_score`` under the *evaluated* response's provider, model and
feature. An answer that is not a number in 0..1 gives ``score=None`` and counts
``llm_eval_failures_total{evaluator, reason}``; no score is made up (seed 000 returned 0.5).
A judge call that raises counts ``reason="judge_error"`` and the exception propagates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .context import feature as feature_block
from .context import current_feature
from .quality import record_eval_failure, record_score

DEFAULT_EVALUATOR = "factual_accuracy"
DEFAULT_JUDGE_FEATURE = "eval-judge"

#: seed 000's judge prompt (the fake provider recognises it by its fixed lines).
PROMPT = """Compare the response to the ground truth and rate factual accuracy from 0 to 1.
Only respond with a number.
Response: {response}
Ground Truth: {reference}
Accuracy (0-1):"""

# A bare decimal, optionally followed by a full stop: "0.8", "1", ".75", "0.8."
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*\.?\s*")


@dataclass(frozen=True)
class JudgeResult:
    """What the judge said. ``score`` is None when its answer was not a number in 0..1."""

    score: float | None
    answer: str  # the judge's raw answer (for your logs; never a label)
    error: str | None = None  # None, "not_a_number" or "out_of_range"

    @property
    def ok(self) -> bool:
        return self.score is not None


def prompt(response: str, reference: str, max_chars: int = 1000) -> str:
    """The judge prompt; both texts cut to ``max_chars`` (seed 000: 1000)."""
    return PROMPT.format(response=response[:max_chars], reference=reference[:max_chars])


def parse_score(answer: Any) -> JudgeResult:
    """The judge's answer as a score: a number in 0..1, else an error (never a guess)."""
    text = answer if isinstance(answer, str) else ""
    m = _NUMBER.fullmatch(text)
    if m is None:
        return JudgeResult(None, text, "not_a_number")
    value = float(m.group(1))
    if not 0.0 <= value <= 1.0:
        return JudgeResult(None, text, "out_of_range")
    return JudgeResult(value, text)


def _provider(client: Any, is_async: bool) -> str:
    kind = None
    for cls in type(client).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root in ("openai", "anthropic"):
            kind = root
            break
    if kind is None:
        raise TypeError(f"the judge client must be an openai or anthropic client, got {type(client).__name__}")
    if any(c.__name__.startswith("Async") for c in type(client).__mro__) != is_async:
        use = "ajudge_factual_accuracy" if not is_async else "judge_factual_accuracy"
        raise TypeError(f"{type(client).__name__}: use {use} for this client")
    return kind


def _request(client: Any, judge_model: str, text: str, max_tokens: int, is_async: bool) -> tuple[Any, str]:
    """(a function making the judge call, provider). Seed 000's call: one user message, a few tokens."""
    kind = _provider(client, is_async)
    messages = [{"role": "user", "content": text}]
    if kind == "anthropic":
        return (lambda: client.messages.create(model=judge_model, max_tokens=max_tokens, messages=messages)), kind
    return (lambda: client.chat.completions.create(model=judge_model, max_tokens=max_tokens,
                                                   messages=messages)), kind


def _answer_text(resp: Any, kind: str) -> str | None:
    try:
        if kind == "anthropic":
            return "".join(b.text for b in resp.content if getattr(b, "type", None) == "text")
        return resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


def _finish(result: JudgeResult, evaluator: str, provider: str, model: str, feature: Any) -> JudgeResult:
    if result.score is not None:
        record_score(evaluator, result.score, provider=provider, model=model, feature=feature)
    else:
        record_eval_failure(evaluator, result.error or "not_a_number")
    return result


def _check(evaluator: Any, provider: Any, model: Any) -> None:
    for name, value in (("evaluator", evaluator), ("provider", provider), ("model", model)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str, got {type(value).__name__}")


def judge_factual_accuracy(client: Any, response: str, reference: str, *, judge_model: str, provider: str,
                           model: str, feature: str | None = None, evaluator: str = DEFAULT_EVALUATOR,
                           judge_feature: str = DEFAULT_JUDGE_FEATURE, max_chars: int = 1000,
                           max_tokens: int = 8) -> JudgeResult:
    """Ask ``judge_model`` (through ``client``: ``OpenAI`` or ``Anthropic``) how factually accurate
    ``response`` is against ``reference``, and record the score (see the module docstring).

    ``provider``/``model``/``feature``: the evaluated response's (``feature=None``: the current
    ``feature(...)``, read before the judge call). For async clients use ``ajudge_factual_accuracy``.
    """
    _check(evaluator, provider, model)
    evaluated_feature = current_feature(feature)
    from .instrumentation import instrument

    create, kind = _request(instrument(client), judge_model, prompt(response, reference, max_chars), max_tokens,
                            False)
    try:
        with feature_block(judge_feature):
            resp = create()
    except Exception:
        record_eval_failure(evaluator, "judge_error")
        raise
    return _finish(parse_score(_answer_text(resp, kind)), evaluator, provider, model, evaluated_feature)


async def ajudge_factual_accuracy(client: Any, response: str, reference: str, *, judge_model: str,
                                  provider: str, model: str, feature: str | None = None,
                                  evaluator: str = DEFAULT_EVALUATOR, judge_feature: str = DEFAULT_JUDGE_FEATURE,
                                  max_chars: int = 1000, max_tokens: int = 8) -> JudgeResult:
    """``judge_factual_accuracy`` for ``AsyncOpenAI`` / ``AsyncAnthropic`` clients."""
    _check(evaluator, provider, model)
    evaluated_feature = current_feature(feature)
    from .instrumentation import instrument

    create, kind = _request(instrument(client), judge_model, prompt(response, reference, max_chars), max_tokens,
                            True)
    try:
        with feature_block(judge_feature):
            resp = await create()
    except Exception:
        record_eval_failure(evaluator, "judge_error")
        raise
    return _finish(parse_score(_answer_text(resp, kind)), evaluator, provider, model, evaluated_feature)


__all__ = ["JudgeResult", "ajudge_factual_accuracy", "judge_factual_accuracy", "parse_score", "prompt"]
