"""Helpers shared by the dashboard tests: load the generated dashboards, walk
their targets, substitute Grafana's template variables, walk PromQL ASTs.

(No tests here; the name only keeps it within the dashboards' test files.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import _jsonnet
import promql_parser
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
SCHEMA = ROOT / "grafana" / "schema" / "dashboard.schema.json"
RECORDING_RULES = ROOT / "prometheus" / "rules" / "llm-recording-rules.yaml"

UIDS = {"llm-overview.json": "llm-overview", "llm-cost.json": "llm-cost", "llm-latency-quality.json": "llm-latency-quality"}
VARIABLES = ("provider", "model", "feature")

# Durations no real query uses, so the AST tells which Grafana interval a range was.
MAGIC = {"$__rate_interval": "4242s", "$__range": "4343s", "$__interval": "4141s"}
MAGIC_SECONDS = {name: int(value[:-1]) for name, value in MAGIC.items()}


def mixin_config() -> dict:
    """The mixin's _config (without the contract) as JSON."""
    snippet = "local c = (import 'mixin.libsonnet')._config; { [k]: c[k] for k in std.objectFields(c) if k != 'contract' }"
    return json.loads(_jsonnet.evaluate_snippet("config", snippet, jpathdir=[str(ROOT / "mixin")]))


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARD_DIR.glob("*.json"))}


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows included, also panels nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))
    return out


@dataclass(frozen=True)
class Target:
    file: str
    panel: str
    panel_type: str
    ref_id: str
    expr: str
    legend: str
    instant: bool


def targets(all_dashboards: dict[str, dict] | None = None) -> list[Target]:
    out = []
    for file, d in (all_dashboards or dashboards()).items():
        for p in panels(d):
            for t in p.get("targets", []):
                out.append(Target(file, p["title"], p["type"], t["refId"], t["expr"], t.get("legendFormat", ""), bool(t.get("instant"))))
    return out


def substitute(expr: str, values: dict[str, str] | None = None, intervals: dict[str, str] | None = None) -> str:
    """Grafana's interpolation: $__rate_interval & co, then $var / ${var} (All = '.*')."""
    for name, value in (intervals or MAGIC).items():
        expr = expr.replace(name, value)
    values = values or {}

    def var(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        return values.get(name, ".*")

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", var, expr)


# --- PromQL AST walking (promql-parser: Prometheus's grammar, in Rust) ---------

def children(node: object) -> list[object]:
    if isinstance(node, promql_parser.BinaryExpr):
        return [node.lhs, node.rhs]
    if isinstance(node, promql_parser.AggregateExpr):
        return [n for n in (node.param, node.expr) if n is not None]
    if isinstance(node, promql_parser.Call):
        return list(node.args)
    if isinstance(node, (promql_parser.ParenExpr, promql_parser.UnaryExpr, promql_parser.SubqueryExpr)):
        return [node.expr]
    if isinstance(node, promql_parser.MatrixSelector):
        return [node.vector_selector]
    return []


def walk(node: object, parents: tuple = ()) -> Iterator[tuple[object, tuple]]:
    """(node, ancestors) pairs, depth first."""
    yield node, parents
    for child in children(node):
        yield from walk(child, parents + (node,))


def parse(expr: str) -> object:
    return promql_parser.parse(expr)


def selectors(ast: object) -> list[promql_parser.VectorSelector]:
    return [n for n, _ in walk(ast) if isinstance(n, promql_parser.VectorSelector)]


def matchers(vs: promql_parser.VectorSelector) -> dict[str, tuple[str, str]]:
    """label -> (op, value); op is '=', '!=', '=~' or '!~'."""
    ops = {"MatchOp.Equal": "=", "MatchOp.NotEqual": "!=", "MatchOp.Re": "=~", "MatchOp.NotRe": "!~"}
    return {m.name: (ops[str(m.op)], m.value) for m in vs.matchers.matchers}


def detail_label_uses(ast: object, detail: dict[str, set[str]]) -> list[str]:
    """Where an expression matches, groups by or joins on a detail label of a series it reads.

    ``detail`` maps a series name to its family's contract ``detail_labels`` (the histograms'
    ``feature``, present only with ``configure(feature_histograms=True)``). A matcher on one,
    or a ``by``/``on``/``ignoring``/``group_*`` list above the selector naming one, would
    match nothing, or split nothing, with the default exporter. (``without`` only drops.)
    """
    found = []
    for node, parents in walk(ast):
        if not isinstance(node, promql_parser.VectorSelector) or node.name not in detail:
            continue
        labels = detail[node.name]
        for label in sorted(labels & set(matchers(node))):
            found.append(f"{node.name} matches {label}")
        for parent in parents:
            listed: set[str] = set()
            if isinstance(parent, promql_parser.AggregateExpr) and parent.modifier is not None:
                if str(parent.modifier.type).endswith(".By"):
                    listed = set(parent.modifier.labels)
            elif isinstance(parent, promql_parser.BinaryExpr) and parent.modifier is not None:
                if parent.modifier.matching is not None:
                    listed = set(parent.modifier.matching.labels)
                listed |= set(parent.modifier.group_labels or ())
            for label in sorted(labels & listed):
                found.append(f"{node.name} grouped or joined by {label}")
    return found


def range_seconds(ms: promql_parser.MatrixSelector) -> int:
    r = ms.range
    return int(r.total_seconds()) if isinstance(r, timedelta) else int(r)


def recording_rule_names() -> set[str]:
    if not RECORDING_RULES.exists():
        return set()
    data = yaml.safe_load(RECORDING_RULES.read_text()) or {}
    return {r["record"] for g in data.get("groups", []) for r in g.get("rules", []) if "record" in r}
