"""Offline proof for the Grafana dashboards: schema, lint (dashboard-linter's
rules, ported), PromQL validity (promtool) and the metric contract.

The live check against a real Prometheus is in test_dashboards_live.py.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from llm_exporter import contract

sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import (  # noqa: E402
    DASHBOARD_DIR,
    MAGIC_SECONDS,
    ROOT,
    SCHEMA,
    UIDS,
    VARIABLES,
    dashboards,
    detail_label_uses,
    matchers,
    mixin_config,
    panels,
    parse,
    range_seconds,
    recording_rule_names,
    selectors,
    substitute,
    Target,
    targets,
    walk,
)
import promql_parser  # noqa: E402

DASHBOARDS = dashboards()
CONFIG = mixin_config()
TARGETS = targets(DASHBOARDS)

# dashboard-linter lint/rule_panel_units.go (the categories our panels can use).
VALID_UNITS = {
    "none", "string", "short", "percent", "percentunit", "locale", "sci",
    "currencyUSD", "currencyEUR", "currencyGBP",
    "bytes", "decbytes", "bits",
    "hertz", "ns", "µs", "ms", "s", "m", "h", "d", "dtdurationms", "dtdurations",
    "cps", "ops", "reqps", "rps", "wps", "iops", "cpm", "opm", "rpm", "wpm",
}


def test_the_three_dashboards_are_generated_with_fixed_uids():
    assert {name: d["uid"] for name, d in DASHBOARDS.items()} == UIDS
    titles = [d["title"] for d in DASHBOARDS.values()]
    assert len(set(titles)) == len(titles)  # Grafana logs duplicate titles every 30 s


# --- schema ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_validates_against_grafana_schema(validator, name):
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(DASHBOARDS[name])]
    assert errors == []


def test_schema_is_pinned_and_matches_our_schema_version():
    schema = json.loads(SCHEMA.read_text())
    pin = schema["x-grafana-schema"]
    assert pin["package"] == "@grafana/schema" and pin["version"].count(".") == 2
    script = (ROOT / "grafana" / "schema" / "generate.sh").read_text()
    assert f'GRAFANA_SCHEMA_VERSION:-{pin["version"]}' in script
    for d in DASHBOARDS.values():
        assert d["schemaVersion"] == pin["defaultSchemaVersion"] == 41


def test_schema_rejects_broken_dashboards(validator):
    """The committed schema is strict enough to catch real mistakes."""
    base = DASHBOARDS["llm-overview.json"]
    panel = next(i for i, p in enumerate(base["panels"]) if p["type"] != "row")
    breakages = {
        "panel without type": lambda d: d["panels"][panel].pop("type"),
        "string width": lambda d: d["panels"][panel]["gridPos"].update(w="6"),
        "width over 24": lambda d: d["panels"][panel]["gridPos"].update(w=30),
        "unknown top-level key": lambda d: d.update(dashboardTitle="x"),
        "variable without name": lambda d: d["templating"]["list"][1].pop("name"),
        "bad variable refresh": lambda d: d["templating"]["list"][1].update(refresh=5),
        "no schemaVersion": lambda d: d.pop("schemaVersion"),
    }
    for what, breaks in breakages.items():
        d = copy.deepcopy(base)
        breaks(d)
        assert list(validator.iter_errors(d)), what


# --- lint: dashboard-linter rules -------------------------------------------------

@pytest.mark.parametrize("name", sorted(UIDS))
def test_dashboard_level_rules(name):
    d = DASHBOARDS[name]
    assert d["editable"] is False
    assert d["title"] and d.get("description")
    assert set(CONFIG["dashboardTags"]) <= set(d["tags"])


@pytest.mark.parametrize("name", sorted(UIDS))
def test_template_variables(name):
    variables = {v["name"]: v for v in DASHBOARDS[name]["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["label"], ds["query"]) == ("datasource", "Data source", "prometheus")
    assert list(variables) == ["datasource", *VARIABLES]
    for label in VARIABLES:
        v = variables[label]
        assert v["type"] == "query"
        assert v["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert v["refresh"] == 2, "refresh on time range change"
        assert v["multi"] is True and v["includeAll"] is True and v["allValue"] == ".*"
        query = v["query"]["query"]
        assert query.startswith("label_values(") and query.endswith(f", {label})")
        selector = query[len("label_values("): -len(f", {label})")]
        vs = parse(substitute(selector))
        assert isinstance(vs, promql_parser.VectorSelector)
        assert vs.name in contract.sample_names() and label in contract.METRICS_BY_NAME[vs.name].labels
        assert CONFIG["llmSelector"] in selector


def lint_panels(name: str, dashboard: dict) -> list[str]:
    """panel-title-description, panel-units, panel-datasource, panel-no-targets."""
    problems = []
    for p in panels(dashboard):
        if p["type"] == "row":
            continue
        where = f"{name} / {p.get('title')!r}"
        if not p.get("title"):
            problems.append(f"{where}: no title")
        if not p.get("description"):
            problems.append(f"{where}: no description")
        unit = p.get("fieldConfig", {}).get("defaults", {}).get("unit")
        if unit not in VALID_UNITS:
            problems.append(f"{where}: unit {unit!r}")
        if p.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
            problems.append(f"{where}: panel datasource {p.get('datasource')}")
        if not p.get("targets"):
            problems.append(f"{where}: no targets")
        if [q["title"] for q in panels(dashboard)].count(p.get("title")) > 1:
            problems.append(f"{where}: title used twice")
        ref_ids = [t["refId"] for t in p.get("targets", [])]
        if len(set(ref_ids)) != len(ref_ids):
            problems.append(f"{where}: duplicate refIds {ref_ids}")
        for t in p.get("targets", []):
            if t.get("datasource") != {"type": "prometheus", "uid": "${datasource}"}:
                problems.append(f"{where} {t['refId']}: target datasource {t.get('datasource')}")
    return problems


@pytest.mark.parametrize("name", sorted(UIDS))
def test_panels_have_title_description_unit_datasource_and_targets(name):
    assert lint_panels(name, DASHBOARDS[name]) == []


def lint_grid(dashboard: dict) -> list[str]:
    """Unique panel ids; panels inside 24 columns; no two panels share a cell."""
    problems = []
    ps = panels(dashboard)
    ids = [p["id"] for p in ps]
    if len(ids) != len(set(ids)):
        problems.append(f"duplicate panel ids {ids}")
    cells: dict[tuple[int, int], str] = {}
    for p in ps:
        g = p["gridPos"]
        if not (g["w"] >= 1 and g["h"] >= 1 and 0 <= g["x"] and g["x"] + g["w"] <= 24):
            problems.append(f"{p['title']!r}: outside the grid {g}")
        if p["type"] == "row" and (g["x"], g["w"], g["h"]) != (0, 24, 1):
            problems.append(f"row {p['title']!r}: {g}")
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                if (x, y) in cells:
                    problems.append(f"{p['title']!r} overlaps {cells[(x, y)]!r} at {(x, y)}")
                cells[(x, y)] = p["title"]
    return problems


@pytest.mark.parametrize("name", sorted(UIDS))
def test_panel_ids_unique_and_grid_does_not_overlap(name):
    assert lint_grid(DASHBOARDS[name]) == []


def test_targets_parse_as_promql():
    for t in TARGETS:
        try:
            parse(substitute(t.expr))
        except Exception as exc:  # the parser raises plain ValueError-like errors
            pytest.fail(f"{t.file} / {t.panel} {t.ref_id}: {exc}\n{t.expr}")


def lint_ranges_and_counters(ts: list[Target]) -> list[str]:
    """dashboard-linter target-rate-interval-rule and target-counter-agg-rule.

    rate/irate take [$__rate_interval]; increase takes [$__rate_interval] or, in
    instant stat/table panels that total the selected range, [$__range]. A
    counter (_total) sits directly in rate/irate/increase.
    """
    problems = []
    for t in ts:
        ast = parse(substitute(t.expr))
        for node, parents in walk(ast):
            where = f"{t.file} / {t.panel} {t.ref_id}"
            if isinstance(node, promql_parser.MatrixSelector):
                call = parents[-1] if parents else None
                fn = call.func.name if isinstance(call, promql_parser.Call) else None
                seconds = range_seconds(node)
                allowed = {MAGIC_SECONDS["$__rate_interval"]}
                if fn == "increase" and t.instant and t.panel_type in ("stat", "table"):
                    allowed.add(MAGIC_SECONDS["$__range"])
                if fn not in ("rate", "irate", "increase") or seconds not in allowed:
                    problems.append(f"{where}: {fn}(...[{seconds}s])")
            if isinstance(node, promql_parser.VectorSelector) and node.name.endswith("_total"):
                ok = (len(parents) >= 2 and isinstance(parents[-1], promql_parser.MatrixSelector)
                      and isinstance(parents[-2], promql_parser.Call)
                      and parents[-2].func.name in ("rate", "irate", "increase"))
                if not ok:
                    problems.append(f"{where}: counter {node.name} not in rate/irate/increase")
    return problems


def test_rate_uses_rate_interval_and_counters_are_only_rated():
    assert lint_ranges_and_counters(TARGETS) == []


def lint_selectors(ts: list[Target]) -> list[str]:
    """Every series is the app's (llmSelector) and every variable filters it."""
    job_label, _, job_value = CONFIG["llmSelector"].partition("=")
    problems = []
    for t in ts:
        for vs in selectors(parse(t.expr.replace("$__rate_interval", "1m").replace("$__range", "1h"))):
            spec = contract.METRICS_BY_NAME.get(vs.name) or next(
                (m for m in contract.METRICS if vs.name in m.samples), None)
            got = matchers(vs)
            where = f"{t.file} / {t.panel} {t.ref_id} {vs.name}"
            if got.get(job_label) != ("=", json.loads(job_value)):
                problems.append(f"{where}: no {CONFIG['llmSelector']}")
            for label in VARIABLES:
                if spec is not None and label in spec.labels and got.get(label) != ("=~", f"${label}"):
                    problems.append(f"{where}: not filtered by ${label}")
    return problems


def test_every_selector_uses_app_selector_and_the_variables():
    assert lint_selectors(TARGETS) == []


def test_lint_rules_catch_broken_dashboards():
    """Each ported rule finds the defect it is for (so the passing runs mean something)."""
    name = "llm-overview.json"
    d = copy.deepcopy(DASHBOARDS[name])
    first = next(p for p in d["panels"] if p["type"] != "row")
    first["description"] = ""
    first["fieldConfig"]["defaults"]["unit"] = "tokens"
    first["targets"][0]["datasource"] = {"type": "prometheus", "uid": "prometheus"}
    problems = lint_panels(name, d)
    assert any("no description" in p for p in problems)
    assert any("unit 'tokens'" in p for p in problems)
    assert any("target datasource" in p for p in problems)

    d = copy.deepcopy(DASHBOARDS[name])
    d["panels"][2]["gridPos"]["x"] = 2  # onto its left neighbour
    d["panels"][3]["id"] = d["panels"][4]["id"]
    problems = lint_grid(d)
    assert any("overlaps" in p for p in problems) and any("duplicate panel ids" in p for p in problems)

    bad = [
        Target(name, "fixed window", "timeseries", "A", 'sum(rate(llm_requests_total{job="llm-app"}[5m]))', "", False),
        Target(name, "raw counter", "timeseries", "A", 'sum(llm_cost_usd_total{job="llm-app"})', "", False),
        Target(name, "range in a graph", "timeseries", "A", 'sum(increase(llm_cost_usd_total{job="llm-app"}[$__range]))', "", False),
    ]
    problems = lint_ranges_and_counters(bad)
    assert [p.split(":")[0].split(" / ")[1] for p in problems] == ["fixed window A", "raw counter A", "range in a graph A"]

    unfiltered = [Target(name, "no vars", "timeseries", "A", 'sum(rate(llm_requests_total{model=~"$model"}[$__rate_interval]))', "", False)]
    problems = lint_selectors(unfiltered)
    assert any(CONFIG["llmSelector"] in p for p in problems)
    assert any("$provider" in p for p in problems) and any("$feature" in p for p in problems)
    assert not any("$model" in p for p in problems)


def test_every_metric_is_in_the_contract_or_the_recording_rules():
    known = contract.sample_names() | recording_rule_names()
    unknown = {(t.file, t.panel, vs.name) for t in TARGETS for vs in selectors(parse(substitute(t.expr)))
               if vs.name not in known}
    assert unknown == set()
    # and every label matched on exists on that metric (a label, or a detail label that
    # test_histogram_panels_never_use_a_detail_label then rules out), with values from closed sets
    for t in TARGETS:
        for vs in selectors(parse(substitute(t.expr))):
            spec = next(m for m in contract.METRICS if vs.name in m.samples)
            for label, (op, value) in matchers(vs).items():
                if label == "job" or label == "le":
                    continue
                assert label in spec.labels or label in spec.detail_labels, (t.panel, vs.name, label)
                closed = contract.CLOSED_LABEL_VALUES.get(label)
                if closed and not value.startswith("$"):
                    assert set(value.split("|")) <= set(closed), (t.panel, label, value)


def test_panel_exprs_pass_promtool_check_rules(tmp_path: Path):
    """Prometheus's own parser (promtool) on every target, as recording rules."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (scripts/install-deps installs Debian's prometheus)")
    rules = [{"record": f"dashboard:target_{i}", "expr": substitute(t.expr, intervals={
        "$__rate_interval": "1m", "$__range": "1h", "$__interval": "30s"})} for i, t in enumerate(TARGETS)]
    for d in DASHBOARDS.values():
        for a in d["annotations"]["list"]:
            if "expr" in a:
                rules.append({"record": f"dashboard:annotation_{len(rules)}", "expr": a["expr"]})
    path = tmp_path / "dashboard-targets.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-targets", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(rules)} rules found" in result.stdout


# --- content: the panels the issue and the seeds ask for ------------------------

REQUIRED_PANELS = {
    "llm-overview.json": [
        "Request rate", "Error ratio", "Latency percentiles by operation", "Time to first token",
        "Output tokens / s", "Spend per hour", "Spend today", "Finish reasons", "Truncation rate by model",
        "Content-filter rate by model", "Error rate by error type", "Retries", "In-flight calls",
        "Rate-limit headroom", "Priced-call coverage",
    ],
    "llm-cost.json": [
        "Spend by feature", "Spend by model", "Spend by provider", "Cost per request", "Cost per 1k tokens",
        "Projected daily spend", "Projected monthly spend", "Tokens by type", "Cache hit ratio",
        "Unpriced models", "Unpriced calls / s",
    ],
    "llm-latency-quality.json": [
        "Latency distribution", "Time to first token distribution", "Time per output token",
        "Latency p95 by model", "Latency p99 by model", "Refusal rate by model",
        "Response length vs one week ago", "User feedback ratings", "Hedging rate by model",
        "Evaluation scores", "Unscored evaluations in range",
    ],
}


@pytest.mark.parametrize("name", sorted(REQUIRED_PANELS))
def test_required_panels_are_present(name):
    titles = {p["title"] for p in panels(DASHBOARDS[name])}
    assert set(REQUIRED_PANELS[name]) <= titles


def test_seed_panels_query_what_their_title_says():
    by_title = {(t.file, t.panel): t for t in TARGETS}
    cost = by_title[("llm-cost.json", "Spend by feature")].expr
    assert "llm_cost_usd_total" in cost and "by (feature)" in cost
    trunc = by_title[("llm-overview.json", "Truncation rate by model")].expr
    assert 'finish_reason="length"' in trunc and trunc.count("by (model)") == 3  # rare events, or 0 per model, over calls
    lat = [t.expr for t in TARGETS if t.panel == "Latency percentiles by operation"]
    assert [e.split(",")[0] for e in lat] == ["histogram_quantile(0.5", "histogram_quantile(0.95", "histogram_quantile(0.99"]
    assert all("by (operation, le)" in e for e in lat)
    err = by_title[("llm-overview.json", "Error rate by error type")].expr
    assert "llm_errors_total" in err and "by (error_type)" in err
    hedging = by_title[("llm-latency-quality.json", "Hedging rate by model")].expr
    assert "llm_hedged_responses_total" in hedging and hedging.count("by (model)") == 2
    assert 'finish_reason!~"error|cancelled"' in hedging  # share of answered calls, as the alert's rule
    scores = [t.expr for t in TARGETS if t.panel == "Evaluation scores"]
    assert len(scores) == 2 and "llm_eval_score_sum" in scores[0] and "llm_eval_score_count" in scores[0]
    assert scores[0].count("by (evaluator, model)") == 2
    assert scores[1].startswith("histogram_quantile(0.1, sum by (evaluator, model, le) (rate(llm_eval_score_bucket")
    # by provider and model, the label sets LLMHighLatency / LLMCriticalLatency fire on
    for title, q in (("Latency p95 by model", "0.95"), ("Latency p99 by model", "0.99")):
        lat = by_title[("llm-latency-quality.json", title)].expr
        assert lat.startswith(f"histogram_quantile({q}, sum by (provider, model, le) (rate(llm_request_duration_seconds_bucket{{")
    week = [t.expr for t in TARGETS if t.panel == "Response length vs one week ago"]
    assert len(week) == 2 and "offset 1w" not in week[0] and week[1].count("offset 1w") == 2


# Series of the families with contract detail_labels (the histograms' feature: only with
# configure(feature_histograms=True)) -> those labels.
DETAIL = {s: set(m.detail_labels) for m in contract.METRICS if m.detail_labels for s in m.samples}


def test_histogram_panels_never_use_a_detail_label():
    """No panel matches, groups or joins a histogram by feature: with the default exporter that
    panel would be empty (a feature picked) or one unlabelled line."""
    assert {s for s in DETAIL if s.endswith("_bucket")} >= {
        "llm_request_duration_seconds_bucket", "llm_time_to_first_token_seconds_bucket",
        "llm_time_per_output_token_seconds_bucket", "llm_tokens_per_request_bucket"}
    read = {vs.name for t in TARGETS for vs in selectors(parse(substitute(t.expr))) if vs.name in DETAIL}
    assert len(read) >= 5  # the check covers the latency, TTFT, decode and token panels
    problems = [f"{t.file} / {t.panel} {t.ref_id}: {p}" for t in TARGETS
                for p in detail_label_uses(parse(substitute(t.expr)), DETAIL)]
    assert problems == []
    # ... and it finds them: the removed "Latency p95 by feature" panel, a feature filter.
    by_feature = ('histogram_quantile(0.95, sum by (feature, le) '
                  '(rate(llm_request_duration_seconds_bucket{job="llm-app"}[$__rate_interval])))')
    filtered = 'sum(rate(llm_tokens_per_request_sum{job="llm-app", feature=~"$feature"}[$__rate_interval]))'
    assert detail_label_uses(parse(substitute(by_feature)), DETAIL) == [
        "llm_request_duration_seconds_bucket grouped or joined by feature"]
    assert detail_label_uses(parse(substitute(filtered)), DETAIL) == ["llm_tokens_per_request_sum matches feature"]


def test_panels_on_histograms_say_they_cover_all_features():
    """The feature variable does not filter them: their descriptions say so."""
    by_panel = {(name, p["title"]): p for name, d in DASHBOARDS.items() for p in panels(d)}
    on_histograms = {(t.file, t.panel) for t in TARGETS
                     if any(vs.name in DETAIL for vs in selectors(parse(substitute(t.expr))))}
    assert len(on_histograms) >= 10
    for key in on_histograms:
        assert "All features: the feature filter does not apply" in by_panel[key]["description"], key
    # and only they: a panel the feature variable filters does not claim otherwise
    for key, p in by_panel.items():
        if key not in on_histograms and p["type"] != "row":
            assert "All features" not in p["description"], key


@pytest.mark.parametrize("name", sorted(UIDS))
def test_firing_alerts_annotation(name):
    ann = [a for a in DASHBOARDS[name]["annotations"]["list"] if a["datasource"].get("type") == "prometheus"]
    assert len(ann) == 1 and ann[0]["enable"] is True
    assert ann[0]["datasource"]["uid"] == "${datasource}"
    vs = parse(ann[0]["expr"])
    assert vs.name == "ALERTS" and matchers(vs)["alertstate"] == ("=", "firing")


# --- provisioning -----------------------------------------------------------------

def test_datasource_provisioning():
    files = sorted((ROOT / "grafana" / "provisioning" / "datasources").glob("*.yaml"))
    assert files
    sources = [s for f in files for s in yaml.safe_load(f.read_text())["datasources"]]
    by_uid = {s["uid"]: s for s in sources}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["url"] == "http://prometheus:9090"
    assert by_uid["prometheus"]["isDefault"] is True
    assert by_uid["alertmanager"]["type"] == "alertmanager" and by_uid["alertmanager"]["url"] == "http://alertmanager:9093"
    assert by_uid["alertmanager"]["jsonData"]["implementation"] == "prometheus"
    # $__rate_interval is computed from timeInterval: it must be the scrape interval.
    prom_config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    assert by_uid["prometheus"]["jsonData"]["timeInterval"] == prom_config["global"]["scrape_interval"]
    # the dashboards' datasource variable defaults to the provisioned Prometheus
    for d in DASHBOARDS.values():
        assert d["templating"]["list"][0]["current"]["value"] == "prometheus"


def test_dashboard_provider_points_at_the_mounted_json():
    files = sorted((ROOT / "grafana" / "provisioning" / "dashboards").glob("*.yaml"))
    providers = [p for f in files for p in yaml.safe_load(f.read_text())["providers"]]
    assert len(providers) == 1
    p = providers[0]
    assert (p["type"], p["folder"], p["options"]["path"]) == ("file", "LLM", "/var/lib/grafana/dashboards")
    assert p["allowUiUpdates"] is False
    # Grafana reads only *.json from that path: every generated file is one.
    assert sorted(x.name for x in DASHBOARD_DIR.iterdir()) == sorted(UIDS)


def test_compose_mounts_match_provisioning():
    compose_file = ROOT / "docker-compose.yml"
    if not compose_file.exists():
        pytest.skip("docker-compose.yml not written yet (stack issue)")
    compose = yaml.safe_load(compose_file.read_text())
    grafana = next(s for name, s in compose["services"].items() if "grafana" in name)
    volumes = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in grafana.get("volumes", [])]
    norm = [v.replace("./", "", 1) for v in volumes]
    assert any(v.startswith("grafana/dashboards:/var/lib/grafana/dashboards") for v in norm), volumes
    assert any(v.startswith("grafana/provisioning:/etc/grafana/provisioning") for v in norm), volumes
    assert all(v.endswith(":ro") for v in norm if v.startswith("grafana/")), volumes
    # The schema the dashboards are validated against is the one of the Grafana we run.
    pin = json.loads(SCHEMA.read_text())["x-grafana-schema"]["version"]
    tag = grafana["image"].rsplit(":", 1)[-1]
    assert tag.split(".")[:2] == pin.split(".")[:2], (grafana["image"], pin)
