"""llm-exporter: Prometheus metrics for LLM API calls.

Public API (stable names)::

    record_call(...)          manual helper, one call = one record
    track(...)                context manager / decorator timing a call
    feature(name)             context manager setting the feature label
    instrument(client)        auto-instrument an OpenAI / Anthropic client
    record_feedback(...)      user ratings
    record_score(...)         evaluation scores (0..1) by evaluator
    judge_factual_accuracy(...)  an LLM judge's score, recorded (ajudge_... for async clients)
    record_ratelimit(...)     rate-limit headroom from your own header parsing
    classify_error(exc)       exception -> error_type
    configure(...)            registry, pricing file, label budgets, buckets
    start_http_server(...)    serve /metrics; make_wsgi_app / make_asgi_app
    mark_process_dead(pid)    multi-process servers (gunicorn child_exit hook)
    metric_definitions()      the metric contract

Submodules are imported on first use so that ``import llm_exporter`` stays cheap
and never imports an LLM SDK.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "record_call": "llm_exporter.recorder",
    "record_ratelimit": "llm_exporter.recorder",
    "classify_error": "llm_exporter.errors",
    "track": "llm_exporter.tracking",
    "start_call": "llm_exporter.tracking",
    "Call": "llm_exporter.tracking",
    "feature": "llm_exporter.context",
    "record_feedback": "llm_exporter.quality",
    "RefusalDetector": "llm_exporter.quality",
    "HedgingDetector": "llm_exporter.quality",
    "record_score": "llm_exporter.quality",
    "judge_factual_accuracy": "llm_exporter.evaluation",
    "ajudge_factual_accuracy": "llm_exporter.evaluation",
    "JudgeResult": "llm_exporter.evaluation",
    "configure": "llm_exporter.config",
    "start_http_server": "llm_exporter.exposition",
    "make_wsgi_app": "llm_exporter.exposition",
    "make_asgi_app": "llm_exporter.exposition",
    "mark_process_dead": "llm_exporter.multiprocess",
    "instrument": "llm_exporter.instrumentation",
    "metric_definitions": "llm_exporter.contract",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llm_exporter' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
