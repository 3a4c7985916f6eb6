#!/usr/bin/env python3
"""Series one replica exposes at a reference cardinality (docs/scale.md).

Records, with llm_exporter.record_call in a fresh registry, one streamed call with every
token type for each of 20 priced models (10 OpenAI, 10 Anthropic) x 50 features; then, with
--outcomes, the other outcomes a busy app sees per (model, feature): a truncated call, a
tool call, a rate-limited call retried once and a timeout. Prints the llm_* samples of one
scrape by family, and the size of that scrape.

  PYTHONPATH=exporter python scripts/measure_series.py [--outcomes] [--json]
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "exporter"))

from prometheus_client import generate_latest  # noqa: E402

from llm_exporter import localstack, record_call  # noqa: E402
from llm_exporter.testing import fresh_registry  # noqa: E402

MODELS, FEATURES = 20, 50


def models() -> list[tuple[str, str]]:
    names = list(yaml.safe_load((ROOT / "exporter" / "llm_exporter" / "pricing.yaml").read_text())["models"])
    openai = [m for m in names if m.startswith("gpt-")][: MODELS // 2]
    anthropic = [m for m in names if m.startswith("claude-")][: MODELS // 2]
    return [("openai", m) for m in openai] + [("anthropic", m) for m in anthropic]


def record(outcomes: bool) -> None:
    for provider, model in models():
        for f in range(FEATURES):
            feature = f"feature-{f:02d}"
            common = dict(provider=provider, model=model, feature=feature, duration_s=2.5)
            # Every token type, as a stream (time to first token, time per output token).
            record_call(**common, input_tokens=3000, cache_read_tokens=1024, cache_write_tokens=512,
                        output_tokens=400, reasoning_tokens=128, time_to_first_token_s=0.6)
            if outcomes:
                record_call(**common, input_tokens=3000, output_tokens=4096, finish_reason="length",
                            time_to_first_token_s=0.5)
                record_call(**common, input_tokens=3000, output_tokens=60, finish_reason="tool_calls")
                record_call(**common, error_type="rate_limit", attempt=1)
                record_call(**common, error_type="timeout")


def exposition(outcomes: bool) -> str:
    registry = fresh_registry()
    record(outcomes)
    return generate_latest(registry).decode()


def measure(outcomes: bool) -> dict:
    text = exposition(outcomes)
    families: collections.Counter[str] = collections.Counter()
    for line in text.splitlines():
        if line.startswith("llm_"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            families[family] += 1
    return {
        "models": MODELS, "features": FEATURES, "outcomes": outcomes,
        "llm_samples": sum(families.values()),
        "scrape_bytes": len(text.encode()),
        "by_family": dict(families.most_common()),
    }


def prometheus_cost(text: str, replicas: int, minutes: float) -> dict:
    """Prometheus scraping ``replicas`` targets that all serve ``text``."""
    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(replicas)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="llm-scale-") as tmp:
        port = localstack.free_port()
        config = localstack.prepare_prometheus_dir(
            Path(tmp), llm_app=[f"127.0.0.1:{s.server_port}" for s in servers],
            prometheus=[f"127.0.0.1:{port}"])
        try:
            with localstack.Prometheus(config, port=port, ready_timeout=120) as prom:
                time.sleep(minutes * 60)

                def value(q: str) -> float:
                    return localstack.query_value(prom.url, q) or 0.0

                return {
                    "replicas": replicas,
                    "minutes": minutes,
                    "head_series": value("prometheus_tsdb_head_series"),
                    "resident_memory_bytes": value('process_resident_memory_bytes{job="prometheus"}'),
                    "rule_eval_seconds_per_round": value("sum(prometheus_rule_group_last_duration_seconds)"),
                    "recorded_series": value('count({__name__=~"llm:.+"})'),
                    "scrape_seconds_per_target": value('avg(scrape_duration_seconds{job="llm-app"})'),
                }
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", action="store_true", help="also truncations, tool calls, errors, retries")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--prometheus", type=int, metavar="N", help="measure Prometheus scraping N replicas")
    parser.add_argument("--minutes", type=float, default=3.0)
    args = parser.parse_args()
    if args.prometheus:
        print(json.dumps(prometheus_cost(exposition(args.outcomes), args.prometheus, args.minutes), indent=2))
        return 0
    result = measure(args.outcomes)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['models']} models x {result['features']} features"
          f"{' with outcomes' if result['outcomes'] else ''}: {result['llm_samples']} llm_ samples per scrape, "
          f"{result['scrape_bytes']} bytes")
    for family, n in result["by_family"].items():
        print(f"  {n:8d}  {family}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
