"""Run the benchmark sections, each in a fresh process, and write the report.

    python -m benchmarks [--quick] [--out DIR] [section ...]

Sections: record, concurrency, scrape, instrument (default: all). Each section
prints one ``BENCH-RESULT {json}`` line; a section that fails or is not
available yet (e.g. a module it measures is missing) is reported as such, and
the others still run. Results go to ``DIR/results.json`` and ``DIR/results.md``
(default ``benchmarks/results/``) and the markdown is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import harness as H
from benchmarks import report

SECTIONS = ("record", "concurrency", "scrape", "instrument")
TIMEOUT_S = {"record": 120, "concurrency": 150, "scrape": 180, "instrument": 240}


def run_section(name: str, out: Path, quick: bool, source: Path | None = None) -> dict[str, Any]:
    """Run one section in a fresh process; ``source``: another tree's ``exporter/`` to measure."""
    env = dict(os.environ)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("prometheus_multiproc_dir", None)
    if quick:
        env["BENCH_QUICK"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(H.REPO), str(source) if source else None,
                                                      env.get("PYTHONPATH")]))
    log = out / (f"{name}.log" if source is None else f"{name}-baseline.log")
    t0 = time.perf_counter()
    print(f"[bench] {name} ...", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}"], cwd=str(H.REPO), env=env,
                              capture_output=True, text=True, timeout=TIMEOUT_S[name] * (1 if not quick else 2))
    except subprocess.TimeoutExpired as exc:
        log.write_text(f"timeout after {exc.timeout}s\n{exc.stdout or ''}\n{exc.stderr or ''}")
        return {"section": name, "error": f"timed out after {exc.timeout:.0f}s (log: {log.name})"}
    log.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    elapsed = time.perf_counter() - t0
    print(f"[bench] {name} done in {elapsed:.0f}s (exit {proc.returncode})", file=sys.stderr, flush=True)
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("BENCH-RESULT "):
            res = json.loads(line[len("BENCH-RESULT "):])
            res["wall_s"] = elapsed
            return res
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"section": name, "error": f"exit {proc.returncode}: {tail} (log: {log.name})"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sections", nargs="*", choices=[[], *SECTIONS], default=[])
    ap.add_argument("--quick", action="store_true", help="tiny rounds: checks the harness, numbers meaningless")
    ap.add_argument("--out", default=str(H.REPO / "benchmarks" / "results"))
    ap.add_argument("--baseline", metavar="REF", help="also measure the exporter of git REF (before/after table)")
    args = ap.parse_args(argv)
    sections = args.sections or list(SECTIONS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    machine = H.machine_info()
    baseline = None
    if args.baseline:
        with tempfile.TemporaryDirectory() as tree:
            archive = subprocess.run(["git", "archive", args.baseline, "exporter"], cwd=str(H.REPO), check=True,
                                     capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            baseline = {"ref": args.baseline, "sections": {
                name: run_section(name, out, args.quick, Path(tree) / "exporter") for name in sections}}
    results = {name: run_section(name, out, args.quick) for name in sections}
    machine["loadavg_end"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    machine["total_wall_s"] = round(time.perf_counter() - t0, 1)
    machine["quick"] = args.quick
    data = {"machine": machine, "sections": results, "baseline": baseline}
    (out / "results.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    md = report.render(data)
    (out / "results.md").write_text(md)
    print(md)
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
