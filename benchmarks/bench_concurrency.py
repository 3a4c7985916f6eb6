"""Section 4: threads and processes.

* Threads: the same total number of recorded calls done by 1 thread, or split
  over 2 threads, in this process (interleaved rounds). With the GIL, 2 threads
  cannot be faster; the figure shows what locking and GIL hand-offs cost
  (ns per call, wall time / total calls).
* Processes: worker processes each record N calls after a common start signal,
  with prometheus-client in plain (in-memory) or multiprocess (mmap files under
  PROMETHEUS_MULTIPROC_DIR) mode, 1 or 2 workers at once. Each worker times
  its own loop over 150 label sets; ns per call is the median over workers, then
  over rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable

from benchmarks import harness as H
from benchmarks import workload as W


def _sets() -> list[tuple[str, str, str, str]]:
    # Worker processes use 150 label sets: in multiprocess mode every new series
    # costs a key write in each mmap file, which would dominate a short worker.
    return W.label_sets(10, 15) if os.environ.get("BENCH_WORKER") else W.label_sets()


def _ours() -> Callable[[int], None]:
    from prometheus_client import CollectorRegistry

    from llm_exporter.config import configure
    from llm_exporter.recorder import record_call

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        configure()  # multiprocess mode writes to files; the registry is irrelevant
    else:
        configure(registry=CollectorRegistry())
    sets = _sets()
    kw = W.RECORD_KW

    def rec(p: str, m: str, f: str, o: str) -> None:
        record_call(provider=p, model=m, feature=f, operation=o, **kw)

    for s in sets:
        rec(*s)
    it = W.cycle(sets)

    def run(n: int) -> None:
        # one shared cycle, as in the floor: concurrent threads take different label sets
        nxt = it.__next__  # itertools.cycle.__next__ is atomic under the GIL
        for _ in range(n):
            p, m, f, o = nxt()
            rec(p, m, f, o)

    return run


def _floor() -> Callable[[int], None]:
    return W.floor_cached(W.PromMetrics(), _sets())


KINDS: dict[str, Callable[[], Callable[[int], None]]] = {"ours": _ours, "floor": _floor}


def threaded(fn: Callable[[int], None], threads: int) -> Callable[[int], None]:
    """Run ``n`` ops split over ``threads`` threads (started before the clock, released together)."""
    if threads == 1:
        return fn

    def run(n: int) -> None:
        share = n // threads
        go = threading.Barrier(threads)

        def body() -> None:
            go.wait()
            fn(share)

        ts = [threading.Thread(target=body) for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()

    return run


def worker(kind: str, n: int) -> None:
    """Child: warm up, wait for 'go' on stdin, time ``n`` calls, print ns/call."""
    fn = KINDS[kind]()
    fn(min(n, 2000))
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.perf_counter()
    fn(n)
    dt = time.perf_counter() - t0
    print(json.dumps({"ns_per_call": dt / n * 1e9}), flush=True)


def run_workers(kind: str, mp: bool, count: int, n: int) -> list[float]:
    env = dict(os.environ, BENCH_WORKER="1")
    tmp = None
    if mp:
        tmp = tempfile.TemporaryDirectory(prefix="llm-bench-mpc-")
        env["PROMETHEUS_MULTIPROC_DIR"] = tmp.name
    else:
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.pop("prometheus_multiproc_dir", None)
    try:
        procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.bench_concurrency", "--worker", kind, str(n)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                  cwd=str(H.REPO))
                 for _ in range(count)]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready", "worker failed to start"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        out = []
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline()
            p.wait(timeout=120)
            out.append(json.loads(line)["ns_per_call"])
        return out
    finally:
        if tmp is not None:
            tmp.cleanup()


def main() -> None:
    notes: list[str] = []
    # --- threads, in process
    cases: dict[str, Callable[[int], None]] = {}
    for kind, make in KINDS.items():
        try:
            fn = make()
        except Exception as exc:
            notes.append(f"{kind} not measured: {type(exc).__name__}: {exc}")
            continue
        cases[f"{kind}: 1 thread"] = fn
        cases[f"{kind}: 2 threads"] = threaded(fn, 2)
    ops = H.scaled(4000, 400)
    rounds = H.scaled(9, 3)
    comp = H.interleaved(cases, ops=ops, rounds=rounds, unit="ns/call (wall / total calls)")
    ratios = {}
    for kind in KINDS:
        if f"{kind}: 1 thread" in cases:
            ratios[f"{kind}: 2 threads / 1 thread"] = comp.ratio(f"{kind}: 2 threads", f"{kind}: 1 thread")

    # --- processes
    configs = [("ours", False, 1), ("ours", True, 1), ("ours", False, 2), ("ours", True, 2),
               ("floor", False, 1), ("floor", True, 1)]
    if "ours: 1 thread" not in cases:
        configs = [c for c in configs if c[0] != "ours"]
    n = H.scaled(6000, 500)
    prounds = H.scaled(4, 2)
    proc: dict[str, list[float]] = {}
    per_round: dict[str, list[float]] = {}
    for r in range(prounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        for kind, mp, count in order:
            name = f"{kind}: {'multiprocess' if mp else 'plain'}, {count} process{'es' if count > 1 else ''}"
            vals = run_workers(kind, mp, count, n)
            proc.setdefault(name, []).extend(vals)
            per_round.setdefault(name, []).append(sorted(vals)[len(vals) // 2])
    pcomp = H.Comparison("ns/call (per worker)", {k: H.Series(v) for k, v in per_round.items()})
    pratios = {}
    for kind in ("ours", "floor"):
        a, b = f"{kind}: multiprocess, 1 process", f"{kind}: plain, 1 process"
        if a in per_round and b in per_round:
            pratios[f"{a} / {b}"] = pcomp.ratio(a, b)
    for mode in ("plain", "multiprocess"):
        a, b = f"ours: {mode}, 2 processes", f"ours: {mode}, 1 process"
        if a in per_round:
            pratios[f"{a} / {b}"] = pcomp.ratio(a, b)
    if "ours: multiprocess, 1 process" in per_round:
        pratios["ours / floor (multiprocess, 1 process)"] = pcomp.ratio("ours: multiprocess, 1 process",
                                                                         "floor: multiprocess, 1 process")
    H.emit({"section": "concurrency", "threads": {"comparison": comp.to_json(), "ratios": ratios,
                                                  "ops_per_block": ops, "rounds": rounds},
            "processes": {"comparison": pcomp.to_json(), "ratios": pratios, "calls_per_worker": n,
                          "rounds": prounds},
            "switch_interval_s": sys.getswitchinterval(), "notes": notes})


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], int(sys.argv[3]))
    else:
        main()
