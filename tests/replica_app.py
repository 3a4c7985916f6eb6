"""One replica of an app for tests/test_replicas_live.py: serves /metrics on --port and records
calls with llm_exporter.record_call at a fixed pace for --seconds, then keeps serving.

Every tick records one call per feature: "k8s-burst" fails 3 calls in 10 (server_error),
"k8s-steady" never fails. After each tick it prints the running totals as one JSON line, so
the test knows exactly what this process recorded even if it is killed mid-run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from llm_exporter import record_call, start_http_server

PROVIDER, MODEL = "openai", "gpt-4o-mini"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, required=True, help="how long to record calls")
    parser.add_argument("--per-second", type=int, default=10, help="calls per second per feature")
    args = parser.parse_args()

    start_http_server(args.port, addr="127.0.0.1")
    totals = {"k8s-burst": 0, "k8s-burst-errors": 0, "k8s-steady": 0}
    print(json.dumps({"ready": True, **totals}), flush=True)
    period = 1.0 / args.per_second
    start = time.monotonic()
    tick = 0
    while time.monotonic() - start < args.seconds:
        failed = tick % 10 < 3
        record_call(provider=PROVIDER, model=MODEL, feature="k8s-burst", duration_s=0.2, input_tokens=50,
                    output_tokens=20, error_type="server_error" if failed else None)
        record_call(provider=PROVIDER, model=MODEL, feature="k8s-steady", duration_s=0.2, input_tokens=50,
                    output_tokens=20)
        totals["k8s-burst"] += 1
        totals["k8s-burst-errors"] += failed
        totals["k8s-steady"] += 1
        print(json.dumps(totals), flush=True)
        tick += 1
        # Fixed pace from the start (no drift when a tick runs late on a busy machine).
        time.sleep(max(0.0, start + tick * period - time.monotonic()))
    print(json.dumps({"done": True, **totals}), flush=True)
    sys.stdin.read()  # serve until the test closes stdin or kills us


if __name__ == "__main__":
    main()
