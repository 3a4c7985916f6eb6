"""Section 3: scrape cost at the reference cardinality.

Reference data: 20 models x 50 features x 7 finish reasons (every token type
and both directions present in each call) = 7,000 recorded streamed chat calls,
1,000 (provider, model, feature, operation) label sets.

Cases, each scraped in interleaved rounds in this one process:

* ``floor: prometheus-client`` the same data in plain prometheus-client metrics
* ``ours: single-process``     our registry (filled via ``record_call``)
* ``ours: multi-process (4 workers)`` 4 worker processes each recorded the full
  data under ``PROMETHEUS_MULTIPROC_DIR``; this process merges their files
* ``otel: PrometheusMetricReader`` the OTel SDK holding the same data, exposed by
  ``opentelemetry-exporter-prometheus`` through prometheus-client

Time is ``generate_latest`` (the work behind ``GET /metrics``); ours over HTTP
is measured as well. Memory: peak RSS growth during one scrape, and RSS growth
from filling each state.
"""

from __future__ import annotations

import gc
import gzip
import os
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from collections import defaultdict
from typing import Any, Callable

from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from benchmarks import harness as H
from benchmarks import workload as W
from benchmarks.prototype_exposition import same_samples
from llm_exporter import contract as C

N_MODELS = H.scaled(20, 4)  # --quick: a small reference, so the harness check is fast
N_FEATURES = H.scaled(50, 10)
WORKERS = 4


def reference_sets() -> list[tuple[str, str, str, str]]:
    return sorted(W.label_sets(N_MODELS, N_FEATURES))


def reference_calls() -> list[tuple[tuple[str, str, str, str], str]]:
    return [(s, fr) for s in reference_sets() for fr in C.FINISH_REASONS]


def fill_ours() -> CollectorRegistry:
    """Our registry with the reference data (label budgets raised to fit it)."""
    from llm_exporter.config import configure
    from llm_exporter.recorder import record_call

    reg = CollectorRegistry()
    configure(registry=reg, **ours_config())
    kw = dict(W.RECORD_KW)
    for (p, m, f, o), fr in reference_calls():
        kw["finish_reason"] = fr
        record_call(provider=p, model=m, feature=f, operation=o, **kw)
    return reg


def ours_config() -> dict[str, Any]:
    """configure(...) arguments so the guard keeps every reference label value."""
    import inspect

    from llm_exporter.config import configure

    params = inspect.signature(configure).parameters
    return {"label_limits": {"model": 1000, "feature": 1000}} if "label_limits" in params else {}


def fill_floor() -> CollectorRegistry:
    m = W.PromMetrics()
    for s, fr in reference_calls():
        W.apply(m.bind(*s, finish_reason=fr))
    return m.registry


def fill_otel() -> tuple[CollectorRegistry, Any]:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader

    reg = CollectorRegistry()
    reader = PrometheusMetricReader(registry=reg, disable_target_info=True)
    m = W.OtelMetrics(reader)
    for s, fr in reference_calls():
        W.otel_record(m, W.otel_attrs(*s, finish_reason=fr))
    return reg, m


def worker(directory: str) -> None:
    """Child process: record the reference data in multiprocess mode, then exit."""
    assert os.environ.get("PROMETHEUS_MULTIPROC_DIR") == directory
    fill_ours()


def fill_multiprocess(directory: str) -> CollectorRegistry:
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=directory, prometheus_multiproc_dir=directory)
    procs = [
        subprocess.Popen([sys.executable, "-m", "benchmarks.bench_scrape", "--worker", directory],
                         env=env, cwd=str(H.REPO))
        for _ in range(WORKERS)
    ]
    for p in procs:
        if p.wait(timeout=300) != 0:
            raise RuntimeError(f"multiprocess worker exited {p.returncode}")
    return multiprocess_registry(directory)


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """What our /metrics serves in multiprocess mode: the merged worker files."""
    try:
        from llm_exporter import multiprocess as mp

        for name in ("collecting_registry",):
            fn = getattr(mp, name, None)
            if callable(fn):
                try:
                    return fn(directory)
                except TypeError:
                    continue
    except ImportError:
        pass
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=directory)
    return reg


def multiprocess_registry_reference(directory: str) -> CollectorRegistry:
    """prometheus-client's own MultiProcessCollector over the same files."""
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=directory)
    return reg


def series_by_family(reg: CollectorRegistry) -> dict[str, int]:
    return {fam.name: len(fam.samples) for fam in reg.collect()}


def label_dimensions(reg: CollectorRegistry) -> dict[str, int]:
    values: dict[str, set[str]] = defaultdict(set)
    for fam in reg.collect():
        if not fam.name.startswith("llm_") or fam.name == "llm_exporter_info":
            continue
        for s in fam.samples:
            for k, v in s.labels.items():
                if k not in ("le", "quantile"):
                    values[k].add(v)
    return {k: len(v) for k, v in sorted(values.items())}


def count_samples(body: bytes) -> int:
    return sum(1 for line in body.split(b"\n") if line and not line.startswith(b"#"))


def _status_kib(field: str) -> int:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def scrape_memory(fn: Callable[[], bytes]) -> int | None:
    """Peak RSS growth (bytes) during one scrape: VmHWM after minus VmRSS before.

    The high-water mark is reset first (Linux ``clear_refs``). A lower bound:
    memory the allocator kept from earlier scrapes is reused, not counted.
    (tracemalloc would be exact but makes a multi-process scrape take ~30 s.)
    """
    try:
        gc.collect()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = _status_kib("VmRSS")
        fn()
        return (_status_kib("VmHWM") - before) * 1024
    except (OSError, KeyError):
        return None


def state_memory(fill: Callable[[], Any]) -> tuple[Any, int | None]:
    """Python-heap bytes held by the filled metric state (tracemalloc)."""
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        obj = fill()
        gc.collect()
        return obj, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def http_scrape(fn_app_registry: CollectorRegistry) -> tuple[Callable[[], bytes], Callable[[], None]]:
    """GET /metrics from our HTTP server on 127.0.0.1 (random port)."""
    from llm_exporter.exposition import start_http_server

    res = start_http_server(0, addr="127.0.0.1", registry=fn_app_registry)
    server = res[0] if isinstance(res, tuple) else res
    port = server.server_address[1] if hasattr(server, "server_address") else server.server_port
    url = f"http://127.0.0.1:{port}/metrics"

    def get() -> bytes:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.read()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return get, stop


def main() -> None:
    t_start = time.perf_counter()
    disable_created_metrics()  # as our configure() does: compare like with like
    notes: list[str] = []
    info: dict[str, Any] = {"workers": WORKERS, "reference": f"{N_MODELS} models x {N_FEATURES} features x "
                            f"{len(C.FINISH_REASONS)} finish reasons = {len(reference_calls())} calls, "
                            f"{len(C.TOKEN_TYPES)} token types each"}
    scrapes: dict[str, Callable[[], bytes]] = {}
    state_bytes: dict[str, int] = {}
    cleanup: list[Callable[[], None]] = []

    floor_reg, state_bytes["floor: prometheus-client"] = state_memory(fill_floor)
    scrapes["floor: prometheus-client"] = lambda reg=floor_reg: generate_latest(reg)
    ours_reg = None
    try:
        ours_reg, state_bytes["ours: single-process"] = state_memory(fill_ours)
        # What /metrics serves: llm_exporter's own text renderer, then the rest of the registry.
        import llm_exporter.exposition as _exposition

        scrapes["ours: single-process"] = lambda reg=ours_reg: _exposition.generate_latest(reg)
        info["served_same_samples_as_prometheus_client"] = same_samples(
            _exposition.generate_latest(ours_reg), generate_latest(ours_reg))
    except Exception as exc:
        notes.append(f"ours single-process not measured: {type(exc).__name__}: {exc}")
        traceback.print_exc()
    tmp = tempfile.TemporaryDirectory(prefix="llm-bench-mp-")
    cleanup.append(tmp.cleanup)
    if ours_reg is not None:
        try:
            t0 = time.perf_counter()
            mp_reg = fill_multiprocess(tmp.name)
            info["multiprocess_fill_s"] = time.perf_counter() - t0
            info["multiprocess_files"] = sorted(os.listdir(tmp.name))
            info["multiprocess_dir_bytes"] = sum(os.path.getsize(os.path.join(tmp.name, f))
                                                 for f in os.listdir(tmp.name))
            import llm_exporter.exposition as _exposition  # what /metrics serves in multiprocess mode

            scrapes[f"ours: multi-process ({WORKERS} workers)"] = lambda reg=mp_reg: _exposition.generate_latest(reg)
            info["multiprocess_served_same_samples_as_prometheus_client"] = same_samples(
                _exposition.generate_latest(mp_reg), generate_latest(multiprocess_registry_reference(tmp.name)))
        except Exception as exc:
            notes.append(f"ours multi-process not measured: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        try:
            get, stop = http_scrape(ours_reg)
            cleanup.append(stop)
            scrapes["ours: single-process, HTTP GET /metrics"] = get
        except Exception as exc:
            notes.append(f"ours over HTTP not measured: {type(exc).__name__}: {exc}")
            traceback.print_exc()
    try:
        (otel_reg, otel_m), state_bytes["otel: PrometheusMetricReader"] = state_memory(fill_otel)
        cleanup.append(otel_m.shutdown)
        scrapes["otel: PrometheusMetricReader"] = lambda reg=otel_reg: generate_latest(reg)
    except Exception as exc:
        notes.append(f"otel reader not measured: {type(exc).__name__}: {exc}")
        traceback.print_exc()

    try:
        per_case: dict[str, Any] = {}
        for name, fn in scrapes.items():
            body = fn()
            per_case[name] = {
                "bytes": len(body),
                "gzip_bytes": len(gzip.compress(body, 6)),
                "samples": count_samples(body),
                "scrape_peak_heap_bytes": None if "HTTP" in name else scrape_memory(fn),
                "state_heap_bytes": state_bytes.get(name.split(",")[0]),
            }
        if ours_reg is not None:
            per_case["ours: single-process"]["openmetrics_bytes"] = len(generate_openmetrics(ours_reg))
        which, r = ("ours", ours_reg) if ours_reg is not None else ("floor", floor_reg)
        info[f"samples_per_family ({which})"] = series_by_family(r)
        info[f"distinct_values_per_label ({which})"] = label_dimensions(r)

        cases = {name: (lambda n, fn=fn: [fn() for _ in range(n)]) for name, fn in scrapes.items()}
        rounds = H.scaled(4, 2)
        info["setup_s"] = round(time.perf_counter() - t_start, 1)
        comp = H.interleaved(cases, ops=1, rounds=rounds, unit="ms/scrape", scale=1e3)
        ratios = {}
        for a in scrapes:
            for b in ("otel: PrometheusMetricReader", "floor: prometheus-client"):
                if a != b and b in scrapes:
                    ratios[f"{a} / {b}"] = comp.ratio(a, b)
        H.emit({"section": "scrape", "rounds": rounds, "info": info, "per_case": per_case,
                "comparison": comp.to_json(), "ratios": ratios, "notes": notes})
    finally:
        for fn in reversed(cleanup):
            fn()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        worker(sys.argv[2])
    else:
        main()
