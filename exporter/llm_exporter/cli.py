"""The ``llm-exporter`` command: ``demo``, ``stack``, ``capture`` and ``init-secrets``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__


def _scenario_help() -> str:
    from .demo import SCENARIOS

    return "; ".join(f"{s.name}: {s.description.rstrip('.')}" + (f" (fires {s.alert})" if s.alert else "")
                     for s in SCENARIOS.values())


def _add_demo_args(p: argparse.ArgumentParser, default_host: str) -> None:
    from .demo import DEFAULT_PORT, DEFAULT_RPS, SCENARIOS

    g = p.add_argument_group("demo app")
    g.add_argument("--host", default=default_host,
                   help=f"address for /metrics and /scenario (default {default_host})")
    g.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port for /metrics and /scenario (default {DEFAULT_PORT})")
    g.add_argument("--scenario", default="normal", choices=list(SCENARIOS),
                   help="scenario to start with; switch later with POST /scenario/<name>. " + _scenario_help())
    g.add_argument("--rps", type=float, default=None,
                   help=f"requests per second the app makes (default {DEFAULT_RPS:g}; 0.2 with --real)")
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible traffic")
    g.add_argument("--real", action="store_true",
                   help="call the real OpenAI / Anthropic APIs (needs OPENAI_API_KEY and/or ANTHROPIC_API_KEY; "
                        "costs money; only the normal and truncation scenarios apply)")
    g.add_argument("--time-scale", type=float, default=1.0, help=argparse.SUPPRESS)  # tests: faster fake delays


def _demo_config(args: argparse.Namespace):  # -> DemoConfig
    from .demo import DEFAULT_RPS, DemoConfig

    rps = args.rps if args.rps is not None else (0.2 if args.real else DEFAULT_RPS)
    return DemoConfig(host=args.host, port=args.port, scenario=args.scenario, rps=rps, seed=args.seed,
                      real=args.real, time_scale=args.time_scale)


def _cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    try:
        cfg = _demo_config(args)
        demo.run(cfg)
    except (ValueError, OSError) as exc:
        print(f"llm-exporter demo: {exc}", file=sys.stderr)
        return 2
    return 0


def _cmd_stack(args: argparse.Namespace) -> int:
    from . import stack

    cfg = stack.StackConfig(
        repo=Path(args.repo) if args.repo else stack.default_repo(),
        workdir=Path(args.workdir) if args.workdir else None,
        secrets_dir=Path(args.secrets_dir) if args.secrets_dir else None,
        prometheus_port=args.prometheus_port,
        alertmanager_port=args.alertmanager_port,
        demo=_demo_config(args),
        rules_dir=Path(args.rules_dir) if args.rules_dir else None,
        scrape_interval=args.scrape_interval,
        echo_pages=not args.quiet,
    )
    return stack.run(cfg)


def _cmd_capture(args: argparse.Namespace) -> int:
    from . import capture

    argv = ["--host", args.host, "--port", str(args.port)] + (["--quiet"] if args.quiet else [])
    return capture.main(argv)


def _cmd_init_secrets(args: argparse.Namespace) -> int:
    from . import stack

    try:
        owners = dict(stack.parse_owner(spec) for spec in args.owner)
        created = stack.init_secrets(args.directory, capture_url=args.capture_url, owners=owners)
    except ValueError as e:
        print(f"init-secrets: {e}", file=sys.stderr)
        return 2
    for path in created:
        print(f"created {path}")
        if path.name == "grafana_admin_password":
            print(f"Grafana login: admin / {path.read_text().strip()}")
    if not created:
        print(f"all secret files present in {args.directory}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .capture import DEFAULT_PORT as CAPTURE_PORT

    parser = argparse.ArgumentParser(
        prog="llm-exporter",
        description="Prometheus metrics, alerts and dashboards for LLM API calls: demo and local stack.",
    )
    parser.add_argument("--version", action="version", version=f"llm-exporter {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser(
        "demo", help="run the example LLM app with /metrics and switchable scenarios",
        description="Run an example LLM-powered app (real openai and anthropic SDK clients, instrumented "
                    "with llm_exporter.instrument) against a local fake provider, and serve /metrics. "
                    "Switch scenarios at run time: curl -X POST localhost:8000/scenario/error-burst",
    )
    _add_demo_args(p, default_host="127.0.0.1")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "stack", help="run demo + Prometheus + Alertmanager + capture receiver locally (no Docker)",
        description="Run the demo app, Debian prometheus and prometheus-alertmanager (from the repository's "
                    "config files) and a capture receiver for pages, all on 127.0.0.1. Prints where to look; "
                    "Ctrl-C stops everything it started. Needs the Debian packages prometheus and "
                    "prometheus-alertmanager (scripts/demo installs them).",
    )
    _add_demo_args(p, default_host="127.0.0.1")
    g = p.add_argument_group("stack")
    g.add_argument("--prometheus-port", type=int, default=9090, help="default 9090 (next free if busy; 0: any)")
    g.add_argument("--alertmanager-port", type=int, default=9093, help="default 9093 (next free if busy; 0: any)")
    g.add_argument("--repo", help="repository with prometheus/ and alertmanager/ (default: this checkout)")
    g.add_argument("--workdir", help="state, data and logs (default <repo>/.stack)")
    g.add_argument("--secrets-dir", help="directory named 'secrets' with the receiver secrets "
                                         "(default <repo>/secrets; missing files get demo values)")
    g.add_argument("--rules-dir", help="rule files to load instead of <repo>/prometheus/rules")
    g.add_argument("--scrape-interval", help="override the scrape interval, e.g. 1s")
    g.add_argument("--quiet", action="store_true", help="do not print received pages")
    p.set_defaults(func=_cmd_stack)

    p = sub.add_parser("capture", help="run the capture receiver (stand-in for PagerDuty and Slack)",
                       description="Receive Alertmanager's PagerDuty v2 / Slack / webhook POSTs, print one line "
                                   "per page and list them as JSON at GET /.")
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    p.add_argument("--port", type=int, default=CAPTURE_PORT, help=f"default {CAPTURE_PORT}")
    p.add_argument("--quiet", action="store_true", help="do not print a line per page")
    p.set_defaults(func=_cmd_capture)

    p = sub.add_parser("init-secrets", help="create missing secret files with demo values",
                       description="Create the secret files the stack reads (pagerduty_routing_key, slack_api_url, "
                                   "grafana_admin_password) where missing; existing files are kept.")
    p.add_argument("directory", nargs="?", default="secrets", help="default ./secrets")
    p.add_argument("--capture-url", default=f"http://127.0.0.1:{CAPTURE_PORT}",
                   help="base URL of the capture receiver the demo receivers point at")
    p.add_argument("--owner", action="append", default=[], metavar="NAME=UID[:GID]",
                   help="give secret file NAME (new or existing) to the container user UID, group GID or the "
                        "directory's, mode 0440 (docker-compose; needs root); repeatable")
    p.set_defaults(func=_cmd_init_secrets)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
