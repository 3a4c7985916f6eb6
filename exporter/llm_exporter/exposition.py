"""Serve /metrics: ``start_http_server``, ``make_wsgi_app``, ``make_asgi_app``.

Thin wrappers over prometheus-client (which negotiates the format: OpenMetrics,
with exemplars, when the scraper's Accept header asks for it). Without an
explicit registry they serve the *currently configured* registry (so a later
``configure(registry=...)`` is honoured), or, under ``PROMETHEUS_MULTIPROC_DIR``,
every worker's values aggregated from the multiprocess directory.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from . import metrics, multiprocess


class _Current(Collector):
    """Collects whatever registry is active at scrape time."""

    def _target(self) -> Any:
        if multiprocess.directory() is not None:
            return multiprocess.collecting_registry()
        return metrics.current().registry

    def collect(self) -> Iterable[Any]:
        return self._target().collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:  # ?name[]=... filtering
        return self._target().restricted_registry(names)


def _registry(registry: CollectorRegistry | None) -> Any:
    metrics.current()  # make sure our families (and llm_exporter_info) exist before the first scrape
    return registry if registry is not None else _Current()


def start_http_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None) -> tuple[Any, Any]:
    """Serve /metrics on ``addr:port`` in a daemon thread; returns ``(server, thread)``.

    Stop it with ``server.shutdown(); server.server_close()``. ``port=0`` picks a
    free port (``server.server_port``).
    """
    return prometheus_client.start_http_server(port, addr=addr, registry=_registry(registry))


def make_wsgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """WSGI app serving the metrics (mount it at /metrics)."""
    return prometheus_client.make_wsgi_app(_registry(registry))


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """ASGI app serving the metrics (mount it at /metrics)."""
    return prometheus_client.make_asgi_app(_registry(registry))
