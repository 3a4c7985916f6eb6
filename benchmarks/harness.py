"""Timing harness: interleaved rounds, medians, side-by-side ratios, machine facts.

The machine is noisy (2 shared cores), so no single timing is trusted:

* every case runs in *rounds*; in each round every case runs once, in a rotated
  order, so slow phases of the machine hit all cases alike;
* a case's figure is the median of its per-round figures;
* a ratio A/B is the median of the per-round ratios A_r/B_r (measured side by
  side in the same round), not a ratio of two medians from different moments.

The garbage collector is paused inside timed blocks (as ``timeit`` does) and run
between them, so one case's garbage is not paid for by the next.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent

#: ``BENCH_QUICK=1`` shrinks every section (smoke test of the harness itself).
QUICK = os.environ.get("BENCH_QUICK") == "1"


def scaled(full: int, quick: int) -> int:
    return quick if QUICK else full


@dataclass
class Series:
    """Per-round measurements of one case (unit given by the section)."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def q1(self) -> float:
        return _quantile(self.values, 0.25)

    @property
    def q3(self) -> float:
        return _quantile(self.values, 0.75)


def _quantile(values: Sequence[float], q: float) -> float:
    s = sorted(values)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Comparison:
    """Results of one interleaved run: per-case series, per-round aligned."""

    unit: str
    series: dict[str, Series]
    #: the same blocks timed with the process CPU clock (``interleaved(cpu=True)``)
    cpu: "Comparison | None" = None

    def median(self, name: str) -> float:
        return self.series[name].median

    def ratio(self, a: str, b: str) -> tuple[float, float, float]:
        """Median, q1, q3 of the per-round ratio a/b (side by side, same round)."""
        ratios = [x / y for x, y in zip(self.series[a].values, self.series[b].values) if y > 0]
        return statistics.median(ratios), _quantile(ratios, 0.25), _quantile(ratios, 0.75)

    def diff(self, a: str, b: str) -> tuple[float, float, float]:
        """Median, q1, q3 of the per-round difference a - b."""
        diffs = [x - y for x, y in zip(self.series[a].values, self.series[b].values)]
        return statistics.median(diffs), _quantile(diffs, 0.25), _quantile(diffs, 0.75)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "unit": self.unit,
            "cases": {
                k: {"median": s.median, "q1": s.q1, "q3": s.q3, "rounds": s.values}
                for k, s in self.series.items()
            },
        }
        if self.cpu is not None:
            out["cpu"] = self.cpu.to_json()
        return out


def interleaved(
    cases: Mapping[str, Callable[[int], Any]],
    *,
    ops: int,
    rounds: int,
    warmup_rounds: int = 1,
    unit: str = "ns/op",
    scale: float = 1e9,
    cpu: bool = False,
    setup: Callable[[str], Any] | None = None,
    teardown: Callable[[str], Any] | None = None,
) -> Comparison:
    """Run ``cases[name](ops)`` round-robin; record time per op for each round.

    Each callable performs ``ops`` operations itself (the loop lives in the
    case so the harness adds no per-op overhead). ``scale`` turns seconds per op
    into the reported unit (1e9: ns/op, 1e6: us/op). ``cpu=True`` also times each
    block with the process CPU clock (work done in this process, by any of its
    threads, not time spent waiting on a server in another process).
    ``setup(name)``/``teardown(name)`` run around each block, untimed.
    """
    names = list(cases)
    series = {n: Series() for n in names}
    cpu_series = {n: Series() for n in names}
    # Everything built during setup moves to the permanent generation, so the
    # collections between blocks only walk new garbage (cheap and even).
    gc.collect()
    gc.freeze()
    try:
        for r in range(warmup_rounds + rounds):
            order = names[r % len(names):] + names[: r % len(names)]
            for name in order:
                if setup is not None:
                    setup(name)
                gc.collect()
                gc.disable()
                try:
                    c0 = time.process_time()
                    t0 = time.perf_counter()
                    cases[name](ops)
                    dt = time.perf_counter() - t0
                    dc = time.process_time() - c0
                finally:
                    gc.enable()
                    if teardown is not None:
                        teardown(name)
                if r >= warmup_rounds:
                    series[name].values.append(dt / ops * scale)
                    cpu_series[name].values.append(dc / ops * scale)
    finally:
        gc.unfreeze()
    return Comparison(unit, series, Comparison(unit + " (CPU)", cpu_series) if cpu else None)


@dataclass
class Paired:
    """Per-pair differences ``a - b`` of single operations run back to back (process CPU time)."""

    unit: str
    diffs: list[float]
    b_values: list[float]

    def median_ci(self) -> tuple[float, float, float]:
        """Median difference and its 95 % confidence interval (order statistics, no normality assumed)."""
        s = sorted(self.diffs)
        n = len(s)
        half = 1.96 * (n ** 0.5) / 2
        lo, hi = max(0, int(n / 2 - half)), min(n - 1, int(n / 2 + half + 1))
        return statistics.median(s), s[lo], s[hi]

    def to_json(self) -> dict[str, Any]:
        med, lo, hi = self.median_ci()
        return {"unit": self.unit, "median_diff": med, "ci95": [lo, hi], "pairs": len(self.diffs),
                "q1": _quantile(self.diffs, 0.25), "q3": _quantile(self.diffs, 0.75),
                "b_median": statistics.median(self.b_values), "diffs": self.diffs}


def paired(a: Callable[[], Any], b: Callable[[], Any], *, pairs: int, unit: str = "us", scale: float = 1e6,
           warmup: int = 20) -> Paired:
    """Run ``a()`` and ``b()`` back to back ``pairs`` times (order alternating) and keep
    each pair's CPU-time difference.

    A slow phase of the machine hits both halves of a pair alike, so the median of the
    per-pair differences resolves a few microseconds where block timings of two cases
    drift apart by tens. The collector runs between pairs, never inside one.
    """
    return grouped({"a": a, "b": b}, "b", rounds=pairs, unit=unit, scale=scale, warmup=warmup)["a"]


def grouped(fns: dict[str, Callable[[], Any]], base: str, *, rounds: int, unit: str = "us", scale: float = 1e6,
            warmup: int = 20) -> dict[str, Paired]:
    """``paired`` for several variants against one ``base``: each round runs every function once,
    back to back, in an order that rotates and reverses from round to round; each variant's
    figure is its per-round difference from the base, so two variants' differences come from
    the same rounds (side by side)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    cpu = time.process_time
    diffs: dict[str, list[float]] = {name: [] for name in names if name != base}
    base_values: list[float] = []
    gc.collect()
    gc.freeze()
    try:
        for r in range(rounds):
            k = r % len(names)
            order = names[k:] + names[:k]
            if (r // len(names)) % 2:
                order.reverse()
            took: dict[str, float] = {}
            gc.collect(0)
            gc.disable()
            try:
                t0 = cpu()
                for name in order:
                    fns[name]()
                    t1 = cpu()
                    took[name] = t1 - t0
                    t0 = t1
            finally:
                gc.enable()
            for name, values in diffs.items():
                values.append((took[name] - took[base]) * scale)
            base_values.append(took[base] * scale)
    finally:
        gc.unfreeze()
    return {name: Paired(unit, values, base_values) for name, values in diffs.items()}


def calibrate(fn: Callable[[int], Any], target_s: float = 0.03, start: int = 100) -> int:
    """Number of ops that makes one block of ``fn`` take about ``target_s``."""
    n = start
    while True:
        t0 = time.perf_counter()
        fn(n)
        dt = time.perf_counter() - t0
        if dt >= target_s / 4 or n >= 10_000_000:
            return max(1, int(n * target_s / max(dt, 1e-9)))
        n *= 4


# --- machine and versions ------------------------------------------------------

_PACKAGES = (
    "llm-exporter",
    "prometheus-client",
    "openai",
    "anthropic",
    "httpx",
    "httpx2",  # the HTTP library of openai >= 3.6x and anthropic >= 2.1x
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-prometheus",
    "opentelemetry-instrumentation-openai",
    "opentelemetry-instrumentation-anthropic",
    "opentelemetry-instrumentation-openai-v2",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5,
        )
        rev = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "exporter"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return rev + ("+dirty(exporter/)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    versions = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "loadavg_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "git": _git_rev(),
        "versions": versions,
    }


# --- section plumbing --------------------------------------------------------------

def emit(result: dict[str, Any]) -> None:
    """A section's result: JSON on stdout's last line (read by ``benchmarks.__main__``)."""
    sys.stdout.flush()
    print("BENCH-RESULT " + json.dumps(result), flush=True)


def fmt(x: float, digits: int = 3) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"
