"""``configure(...)``: registry, price file, label budgets, buckets and options.

Settings not passed keep their current value. Every call builds a fresh set of
metric families (and cardinality budgets) in the chosen registry and removes the
previous set from its registry, so ``configure(registry=CollectorRegistry())``
fully isolates a test.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import prometheus_client
from prometheus_client import CollectorRegistry

from . import contract, metrics
from . import pricing as _pricing
from .quality import HedgingDetector, RefusalDetector

_UNSET: Any = object()


def _check_buckets(buckets: Mapping[str, Iterable[float]]) -> dict[str, tuple[float, ...]]:
    out: dict[str, tuple[float, ...]] = {}
    for name, bounds in buckets.items():
        spec = contract.METRICS_BY_NAME.get(name)
        if spec is None or spec.type != "histogram":
            hists = sorted(m.name for m in contract.METRICS if m.type == "histogram")
            raise ValueError(f"buckets: {name!r} is not a histogram of the contract (one of {hists})")
        values = tuple(float(b) for b in bounds)
        if not values or any(math.isnan(v) for v in values) or list(values) != sorted(set(values)):
            raise ValueError(f"buckets for {name}: need a non-empty, strictly increasing list, got {bounds!r}")
        out[name] = values
    return out


def configure(
    *,
    registry: CollectorRegistry | None = _UNSET,
    pricing: str | os.PathLike[str] | None = _UNSET,
    label_limits: Mapping[str, int] | None = _UNSET,
    buckets: Mapping[str, Iterable[float]] | None = _UNSET,
    created_series: bool = _UNSET,
    refusal_detector: Any = _UNSET,
    hedging_detector: Any = _UNSET,
    exemplars: bool = _UNSET,
    feature_histograms: bool = _UNSET,
) -> CollectorRegistry:
    """Configure the exporter; returns the registry in use.

    registry: where our metric families live (default ``prometheus_client.REGISTRY``,
        so the app's own metrics share /metrics). ``None`` means the default.
    pricing: path of a user price file overriding/extending the bundled table
        (default: env ``LLM_EXPORTER_PRICING``); ``None`` means bundled only.
        A bad file raises ``llm_exporter.pricing.PricingError`` naming the file, key and problem.
    label_limits: distinct-value budgets per label, e.g. ``{"feature": 500}``
        (defaults: provider 20, model 100, feature 200, evaluator 20), and ``"label_sets"``: the
        cap on (provider, model, feature, operation) label sets (default 2000; past it a new
        label set's feature folds into ``__overflow__``).
    buckets: histogram bucket overrides by metric name.
    created_series: expose ``*_created`` series. Off by default; this switch is
        process-global in prometheus-client (it affects every metric).
    refusal_detector: ``quality.RefusalDetector(...)``, ``True`` (default
        patterns) or ``None``/``False`` (off, the default).
    hedging_detector: ``quality.HedgingDetector(...)``, ``True`` (seed 000's hedging
        phrases) or ``None``/``False`` (off, the default).
    exemplars: attach OpenTelemetry ``trace_id`` exemplars to histogram
        observations when a span is active (default on; never in multiprocess mode).
    feature_histograms: histograms per feature too (off: per provider, model and operation,
        about 95 fewer series per label set; docs/exporter.md, "Series budget").
    """
    with metrics._active_lock:
        old = metrics._active
        if old is not None:
            s = metrics.Settings(**vars(old.settings))
        else:
            s = metrics.Settings(registry=prometheus_client.REGISTRY, pricing_path=_pricing.user_path_from_env())
        if registry is not _UNSET:
            s.registry = registry if registry is not None else prometheus_client.REGISTRY
        if pricing is not _UNSET:
            s.pricing_path = os.fspath(pricing) if pricing is not None else None
        if label_limits is not _UNSET:
            s.label_limits = dict(label_limits or {})
        if buckets is not _UNSET:
            s.buckets = _check_buckets(buckets or {})
        if created_series is not _UNSET:
            s.created_series = bool(created_series)
        if refusal_detector is not _UNSET:
            s.refusal_detector = _detector(refusal_detector, RefusalDetector, "refusal_detector")
        if hedging_detector is not _UNSET:
            s.hedging_detector = _detector(hedging_detector, HedgingDetector, "hedging_detector")
        if exemplars is not _UNSET:
            s.exemplars = bool(exemplars)
        if feature_histograms is not _UNSET:
            s.feature_histograms = bool(feature_histograms)
        return metrics.activate(s).registry


def _detector(value: Any, cls: type, setting: str) -> Any:
    """A detector setting: an instance of ``cls``, True (its defaults), or None/False (off)."""
    if value is None or value is False:
        return None
    if value is True:
        return cls()
    if isinstance(value, cls):
        return value
    raise TypeError(f"{setting} must be a {cls.__name__}, True or None, got {type(value).__name__}")


def settings() -> metrics.Settings:
    """The active settings (read-only view; change them with ``configure``)."""
    return metrics.current().settings
