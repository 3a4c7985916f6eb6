"""Helpers for tests of code that records LLM metrics.

``fresh_registry()`` gives every test its own registry and cardinality budgets::

    @pytest.fixture
    def registry():
        return llm_exporter.testing.fresh_registry()

    def test_x(registry):
        ...
        assert registry.get_sample_value("llm_requests_total", {...}) == 1
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from .config import configure
from .errors import reset_log_limits


def fresh_registry(**settings: Any) -> CollectorRegistry:
    """``configure(registry=CollectorRegistry(), ...)`` with default settings; returns the registry.

    Settings from earlier tests (label limits, buckets, pricing file, refusal and
    hedging detectors) are reset to defaults unless given in ``settings``.
    """
    registry = CollectorRegistry()
    defaults: dict[str, Any] = dict(pricing=None, label_limits=None, buckets=None, created_series=False,
                                    refusal_detector=None, hedging_detector=None, exemplars=True,
                                    feature_histograms=False)
    defaults.update(settings)
    configure(registry=registry, **defaults)
    reset_log_limits()
    return registry


def sample_value(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float | None:
    """``registry.get_sample_value(name, labels)`` for the series a call with ``labels`` lands in:
    a label the family does not expose is left out (``feature`` on histograms, unless
    ``configure(feature_histograms=True)``), so a test can give every call the same labels."""
    from . import contract, metrics

    family = next((m for m in contract.METRICS if name in m.samples), None)
    if family is not None:
        exposed = set(family.labels_with(metrics.current().settings.feature_histograms)) | {"le"}
        labels = {k: v for k, v in labels.items() if k in exposed}
    return registry.get_sample_value(name, labels)
