"""Instructions per instrumented SDK call, counted by valgrind (optional, not in ``benchmarks/run``).

    python -m benchmarks.instructions [openai-plain openai-stream anthropic-plain anthropic-stream]

CPU time on this shared machine moves by tens of microseconds between runs; the number of
machine instructions a call executes does not. Each scenario runs twice under valgrind's
callgrind, plain client and ``instrument(client)``, against the local protocol server (its
own process, not traced); only the timed loop is counted (``--toggle-collect`` on
``operator.call``, which runs it). Needs valgrind (Debian package ``valgrind``); takes about
3 minutes. Instructions are not time: our code runs cold in the CPU caches between long
stretches of SDK code, so in a real call it takes more time per instruction than the SDK's own
(see benchmarks/README.md, Findings 2).
"""

from __future__ import annotations

import concurrent.futures
import gc
import operator
import os
import re
import shutil
import subprocess
import sys
from typing import Any

from benchmarks import bench_instrument as B

SCENARIOS = {"openai-plain": ("openai", False, 40), "openai-stream": ("openai", True, 12),
             "anthropic-plain": ("anthropic", False, 40), "anthropic-stream": ("anthropic", True, 20)}


def child(scenario: str, variant: str, port: int) -> None:
    """Runs under valgrind: warm up, then the counted loop of calls."""
    provider, stream, calls = SCENARIOS[scenario]
    import llm_exporter
    from prometheus_client import CollectorRegistry

    from llm_exporter.config import configure

    configure(registry=CollectorRegistry())
    if provider == "openai":
        from openai import OpenAI

        client: Any = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
        run = B.openai_call
    else:
        from anthropic import Anthropic

        client = Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="bench", max_retries=0)
        run = B.anthropic_call
    call = run(llm_exporter.instrument(client) if variant == "ours" else client, stream)
    call(20)
    gc.collect()
    gc.disable()  # collections run at different moments in the two variants
    operator.call(call, calls)


def count(scenario: str, variant: str, port: int) -> float:
    calls = SCENARIOS[scenario][2]
    cmd = ["valgrind", "--tool=callgrind", "--toggle-collect=_operator_call", "--callgrind-out-file=/dev/null",
           sys.executable, "-m", "benchmarks.instructions", "--child", scenario, variant, str(port)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONHASHSEED="0"),
                         cwd=str(B.H.REPO))
    found = re.search(r"Collected\s*:\s*(\d+)", out.stderr)
    if out.returncode != 0 or not found:
        raise RuntimeError(f"valgrind run failed ({scenario} {variant}):\n{out.stderr[-2000:]}")
    return int(found.group(1)) / calls


def main(names: list[str]) -> None:
    if shutil.which("valgrind") is None:
        sys.exit("valgrind not found (apt-get install -y valgrind)")
    names = names or list(SCENARIOS)
    proc, port = B.start_server()
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            jobs = {(n, v): pool.submit(count, n, v, port) for n in names for v in ("plain", "ours")}
            counts = {k: j.result() for k, j in jobs.items()}
    finally:
        B.stop_server(proc)
    lines = ["| call | plain instructions/call | instrumented | added | added / plain |", "|---|---|---|---|---|"]
    for n in names:
        plain, ours = counts[n, "plain"], counts[n, "ours"]
        lines.append(f"| {n} | {plain / 1e3:,.0f}k | {ours / 1e3:,.0f}k | +{(ours - plain) / 1e3:,.0f}k | "
                     f"{(ours - plain) / plain * 100:.2f}% |")
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main(sys.argv[1:])
