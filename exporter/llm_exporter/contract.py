"""The metric contract: every metric name, type, label and bucket, defined once.

Dashboards, recording rules, alerts and external checks depend on these names.
Everything else in the package (and the tests for rules and dashboards) reads
from here; nothing else spells a metric name.

``python -m llm_exporter.contract`` prints the contract as JSON; the mixin
imports the same JSON (``mixin/lib/contract.json``, generated and drift-tested).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

# --- closed label value sets -------------------------------------------------

COMMON_LABELS: tuple[str, ...] = ("provider", "model", "feature", "operation")

#: API operations; anything else is recorded as "other".
OPERATIONS: tuple[str, ...] = (
    "chat",
    "responses",
    "messages",
    "completions",
    "embeddings",
    "images",
    "audio",
    "moderations",
    "other",
)

#: Normalised finish reasons (see ``normalise.finish_reason``).
FINISH_REASONS: tuple[str, ...] = (
    "stop",
    "length",
    "tool_calls",
    "content_filter",
    "error",
    "cancelled",
    "other",
)

ERROR_TYPES: tuple[str, ...] = (
    "rate_limit",
    "timeout",
    "connection",
    "authentication",
    "permission",
    "bad_request",
    "not_found",
    "context_length",
    "content_filter",
    "overloaded",
    "server_error",
    "cancelled",
    "other",
)

#: Disjoint token types; their sum is the billed total of a call.
TOKEN_TYPES: tuple[str, ...] = ("input", "cache_read", "cache_write", "output", "reasoning")

DIRECTIONS: tuple[str, ...] = ("input", "output")

#: Rate-limit resources reported by provider headers.
RATELIMIT_RESOURCES: tuple[str, ...] = ("requests", "tokens", "input_tokens", "output_tokens")

#: User feedback ratings (``record_feedback`` maps ints 1..5 and thumbs onto these).
FEEDBACK_RATINGS: tuple[str, ...] = ("positive", "neutral", "negative")

#: Why an evaluation produced no score (``llm_eval_failures_total{reason}``): the judge's
#: answer was not a number, was a number outside 0..1, or the judge call itself failed.
EVAL_FAILURE_REASONS: tuple[str, ...] = ("not_a_number", "out_of_range", "judge_error")

#: Series created at 0 when a (provider, model, feature, operation) label set is first seen, so
#: that ``rate()`` sees their first increment: the finish reasons and error types that alerts and
#: dashboard ratios divide by or alert on. Others start at their first event (its increment is
#: missed by ``rate()`` over a window that starts before the series existed): docs/exporter.md.
EAGER_FINISH_REASONS: tuple[str, ...] = ("stop", "length", "content_filter", "error")
EAGER_ERROR_TYPES: tuple[str, ...] = ("rate_limit", "content_filter")

#: Default cap on the number of (provider, model, feature, operation) label sets: past it a new
#: label set folds its feature into ``OVERFLOW_VALUE`` (``llm_label_overflow_total{label="label_sets"}``).
#: ``configure(label_limits={"label_sets": N})``. About 19 series each (docs/exporter.md).
MAX_LABEL_SETS = 2000

#: Value a label takes once its distinct-value budget is spent.
OVERFLOW_VALUE = "__overflow__"
#: Feature label when none is given explicitly or by ``feature(...)``.
DEFAULT_FEATURE = "unknown"

# --- buckets -----------------------------------------------------------------

#: Wall time and time to first token: 10 ms to 640 s (past the OTel GenAI cap of
#: 81.92 s, for reasoning models and long streams). 5 s and 10 s are edges
#: because the latency alerts compare p95 against 5 s and p99 against 10 s.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 640.0,
)

#: Time per output token: decode speed sits between ~1 ms and ~1 s per token,
#: so the latency buckets would put almost every observation in 2 buckets.
TIME_PER_TOKEN_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5,
)

#: Tokens per request: 1 to 1M in 1-2.5-5 steps.
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
)

#: Evaluation scores (0..1): 0 and 1 are edges of their own (judges answer 0 and 1 often;
#: a p10 of 0 then means "at least 10 % scored 0", not an interpolation), tenths in between
#: and finer steps near the top, where a good model's scores sit and a drop shows first.
EVAL_SCORE_BUCKETS: tuple[float, ...] = (
    0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0,
)

# --- metric definitions --------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as exposed on /metrics."""

    name: str  # exposed family name, e.g. "llm_requests_total"
    type: str  # counter | histogram | gauge
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] | None = None
    #: prometheus-client multiprocess mode (gauges only)
    multiprocess_mode: str | None = None
    #: labels the family gets only with ``configure(feature_histograms=True)`` (the series budget:
    #: histograms are per provider/model/operation by default, docs/exporter.md)
    detail_labels: tuple[str, ...] = ()
    #: names of the samples this family exposes (derived)
    samples: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.type == "histogram":
            samples = tuple(self.name + s for s in ("_bucket", "_sum", "_count"))
        else:
            samples = (self.name,)
        object.__setattr__(self, "samples", samples)

    def labels_with(self, detail: bool) -> tuple[str, ...]:
        """The labels exposed: with ``detail``, the detail labels too (in the common labels' order)."""
        if not detail or not self.detail_labels:
            return self.labels
        common = tuple(lb for lb in COMMON_LABELS if lb in self.labels or lb in self.detail_labels)
        return common + tuple(lb for lb in self.labels if lb not in common)

    @property
    def base_name(self) -> str:
        """Name passed to prometheus-client (which appends ``_total`` to counters)."""
        if self.type == "counter" and self.name.endswith("_total"):
            return self.name[: -len("_total")]
        return self.name


_C = COMMON_LABELS
#: Histograms' labels by default: the common labels without ``feature`` (``feature`` is a detail
#: label, on with ``configure(feature_histograms=True)``). A histogram costs 19 series per label
#: set, 5 of them 95; per feature they would be most of a scrape (docs/exporter.md, "Series budget").
_H = ("provider", "model", "operation")
_DETAIL = ("feature",)

METRICS: tuple[MetricSpec, ...] = (
    MetricSpec(
        "llm_requests_total", "counter",
        "Finished LLM calls, by normalised finish reason.",
        _C + ("finish_reason",),
    ),
    MetricSpec(
        "llm_request_duration_seconds", "histogram",
        "Wall time of an LLM call; for streams, until the stream ends.",
        _H, LATENCY_BUCKETS, detail_labels=_DETAIL,
    ),
    MetricSpec(
        "llm_time_to_first_token_seconds", "histogram",
        "Streams only: time from the call's start to the first content, tool or reasoning delta.",
        _H, LATENCY_BUCKETS, detail_labels=_DETAIL,
    ),
    MetricSpec(
        "llm_time_per_output_token_seconds", "histogram",
        "Streams only: (duration - time to first token) / (output tokens - 1).",
        _H, TIME_PER_TOKEN_BUCKETS, detail_labels=_DETAIL,
    ),
    MetricSpec(
        "llm_tokens_total", "counter",
        "Tokens by disjoint type (input is uncached input; output is visible output); "
        "the types add up to the billed total.",
        _C + ("token_type",),
    ),
    MetricSpec(
        "llm_tokens_per_request", "histogram",
        "Tokens per call: input includes cached tokens, output includes reasoning tokens.",
        _H + ("direction",), TOKEN_BUCKETS, detail_labels=_DETAIL,
    ),
    MetricSpec(
        "llm_cost_usd_total", "counter",
        "Estimated cost in USD from the token parts and the price table.",
        _C,
    ),
    MetricSpec(
        "llm_cache_savings_usd_total", "counter",
        "Estimated USD not spent because input tokens were read from the prompt cache: "
        "cache_read tokens x (input price - cache_read price).",
        _C,
    ),
    MetricSpec(
        "llm_errors_total", "counter",
        "Failed LLM calls, by error type.",
        _C + ("error_type",),
    ),
    MetricSpec(
        "llm_retries_total", "counter",
        "Attempts after the first (SDK-internal or caller retries).",
        _C,
    ),
    MetricSpec(
        "llm_in_flight_requests", "gauge",
        "LLM calls started and not yet finished.",
        ("provider", "model", "feature"), multiprocess_mode="livesum",
    ),
    MetricSpec(
        "llm_unpriced_requests_total", "counter",
        "Calls whose model has no price in the price table (their cost is not counted).",
        ("provider", "model"),
    ),
    MetricSpec(
        "llm_label_overflow_total", "counter",
        "Label values folded into the overflow value by the cardinality guard.",
        ("label",),
    ),
    MetricSpec(
        "llm_exporter_info", "gauge",
        "llm-exporter version and price table version (always 1).",
        ("version", "pricing_version"), multiprocess_mode="max",
    ),
    MetricSpec(
        "llm_ratelimit_remaining", "gauge",
        "Remaining rate-limit budget reported by the provider's response headers.",
        ("provider", "model", "resource"), multiprocess_mode="mostrecent",
    ),
    MetricSpec(
        "llm_ratelimit_limit", "gauge",
        "Rate-limit budget per window reported by the provider's response headers.",
        ("provider", "model", "resource"), multiprocess_mode="mostrecent",
    ),
    MetricSpec(
        "llm_refusals_total", "counter",
        "Responses the opt-in refusal detector matched.",
        _C,
    ),
    MetricSpec(
        "llm_feedback_total", "counter",
        "User feedback ratings.",
        ("feature", "model", "rating"),
    ),
    MetricSpec(
        "llm_hedged_responses_total", "counter",
        "Responses the opt-in hedging detector matched (\"I think\", \"probably\", ...); "
        "the series exists (at 0) for every label set recorded while the detector is on.",
        _C,
    ),
    MetricSpec(
        "llm_eval_score", "histogram",
        "Evaluation scores from 0 to 1 (record_score, or a judge model), by evaluator; "
        "provider, model and feature are those of the evaluated response.",
        ("provider", "model", "feature", "evaluator"), EVAL_SCORE_BUCKETS,
    ),
    MetricSpec(
        "llm_eval_failures_total", "counter",
        "Evaluations that produced no score, by evaluator and reason.",
        ("evaluator", "reason"),
    ),
)

METRICS_BY_NAME: dict[str, MetricSpec] = {m.name: m for m in METRICS}

#: Closed sets for labels whose values are not free-form.
CLOSED_LABEL_VALUES: dict[str, tuple[str, ...]] = {
    "operation": OPERATIONS,
    "finish_reason": FINISH_REASONS,
    "error_type": ERROR_TYPES,
    "token_type": TOKEN_TYPES,
    "direction": DIRECTIONS,
    "resource": RATELIMIT_RESOURCES,
    "rating": FEEDBACK_RATINGS,
    "reason": EVAL_FAILURE_REASONS,
}


def metric_definitions() -> list[MetricSpec]:
    """All metric families: names, types, labels and buckets."""
    return list(METRICS)


def sample_names() -> set[str]:
    """Every sample name a scrape can contain (histograms expand to _bucket/_sum/_count)."""
    return {s for m in METRICS for s in m.samples}


def as_dict() -> dict[str, Any]:
    """The contract as plain JSON data (for Jsonnet and external checks)."""
    data = {
        "metrics": {m.name: {k: v for k, v in asdict(m).items() if k != "name"} for m in METRICS},
        "labels": {"common": list(COMMON_LABELS), **{k: list(v) for k, v in CLOSED_LABEL_VALUES.items()}},
        "overflow_value": OVERFLOW_VALUE,
        "default_feature": DEFAULT_FEATURE,
    }
    return json.loads(json.dumps(data))


def main() -> None:
    json.dump(as_dict(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
