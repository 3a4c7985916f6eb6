"""Multi-process servers (gunicorn, uvicorn workers) via prometheus-client's files.

Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty, writable directory *before* the app
(or anything) imports prometheus-client, in every worker. Each worker writes its
values to files there; ``/metrics`` (``llm_exporter.exposition``) aggregates them
with ``MultiProcessCollector``. Counters and histograms are summed;
``llm_in_flight_requests`` uses ``livesum`` (only live workers count).

When a worker exits, call ``mark_process_dead(pid)`` so its live gauges
disappear, e.g. in ``gunicorn.conf.py``::

    from llm_exporter import mark_process_dead

    def child_exit(server, worker):
        mark_process_dead(worker.pid)
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry
from prometheus_client import multiprocess as _mp

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


def directory() -> str | None:
    """The multiprocess directory, or None when not in multiprocess mode."""
    return os.environ.get(ENV_VAR) or os.environ.get("prometheus_multiproc_dir") or None


def mark_process_dead(pid: int, path: str | None = None) -> None:
    """Drop the live-gauge files of a dead worker (``pid``). No-op outside multiprocess mode."""
    path = path or directory()
    if path is None:
        return
    _mp.mark_process_dead(pid, path)


def collecting_registry(path: str | None = None) -> CollectorRegistry:
    """A registry that aggregates every process's values from the directory."""
    registry = CollectorRegistry()
    _mp.MultiProcessCollector(registry, path=path or directory())
    return registry
