"""Prometheus rules from the mixin: promtool check/test, mixtool's lint rules, the
metric contract, recording-rule names, runbook coverage and threshold overrides."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from llm_exporter import contract, localstack

sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import detail_label_uses, parse, selectors as ast_selectors  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "prometheus" / "rules"
ALERTS_FILE = RULES / "llm-alerts.yaml"
RECORDING_FILE = RULES / "llm-recording-rules.yaml"
PROMTOOL_TESTS = sorted((ROOT / "prometheus" / "tests").glob("*.yaml"))
ALERT_NAMES = {
    "LLMHighLatency", "LLMCriticalLatency", "LLMHighErrorRate", "LLMCostSpike", "LLMTokenSpike",
    "LLMRefusalRateDrift", "LLMResponseLengthDrift", "LLMTruncationRateHigh", "LLMRateLimited",
    "LLMContentFilterSpike", "LLMSpendBudgetBurn", "LLMRateLimitHeadroomLow", "LLMUnpricedModel",
    "LLMExporterDown", "LLMHedgingRateDrift", "LLMEvalScoreDrop",
}


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def alert_rules() -> list[dict]:
    return [r for g in load(ALERTS_FILE)["groups"] for r in g["rules"]]


def recording_rules() -> list[dict]:
    return [r for g in load(RECORDING_FILE)["groups"] for r in g["rules"]]


def all_groups() -> list[dict]:
    return load(RECORDING_FILE)["groups"] + load(ALERTS_FILE)["groups"]


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def assert_rules_load(tmp_path: Path, files: dict) -> None:
    """``promtool check rules`` accepts the generated recording and alert rule files."""
    out = tmp_path / "rules"
    out.mkdir()
    (out / "a.yaml").write_text(files[ALERTS_FILE])
    (out / "r.yaml").write_text(files[RECORDING_FILE])
    result = promtool("check", "rules", str(out / "r.yaml"), str(out / "a.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def load_generate():
    spec = importlib.util.spec_from_file_location("llm_generate", ROOT / "scripts" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- promtool ---------------------------------------------------------------------------


def test_promtool_check_rules():
    result = promtool("check", "rules", str(RECORDING_FILE), str(ALERTS_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", *map(str, PROMTOOL_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS)


def test_promtool_tests_use_the_shipped_rules_and_order_groups():
    """The tests load the committed files and evaluate recording groups before alerts
    (promtool orders unlisted groups at random, which made `for` boundaries flaky)."""
    want = [g["name"] for g in all_groups()]
    for path in PROMTOOL_TESTS:
        doc = load(path)
        assert doc["rule_files"] == ["../rules/llm-recording-rules.yaml", "../rules/llm-alerts.yaml"], path
        assert doc["group_eval_order"] == want, path


def test_every_alert_is_tested_firing_with_annotations_and_silent_before():
    fired: dict[str, set[str]] = {}
    silent: set[str] = set()
    for path in PROMTOOL_TESTS:
        for test in load(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                name = case["alertname"]
                if not case.get("exp_alerts"):
                    silent.add(name)
                for exp in case.get("exp_alerts") or []:
                    ann = exp.get("exp_annotations") or {}
                    assert {"summary", "description", "runbook_url", "dashboard_url"} <= set(ann), (path, name)
                    fired.setdefault(name, set()).add(exp["exp_labels"]["severity"])
    assert set(fired) == ALERT_NAMES
    assert silent == ALERT_NAMES
    # Both severities of the two-level alerts are exercised.
    assert fired["LLMHighErrorRate"] == {"critical", "warning"}


def test_shipped_for_durations_are_the_ones_tested():
    """The promtool tests assert silence one evaluation before `for` elapses; keep them in step."""
    got = {}
    for r in alert_rules():
        got.setdefault(r["alert"], set()).add(r["for"])
    assert got == {
        "LLMHighLatency": {"5m"}, "LLMCriticalLatency": {"5m"}, "LLMHighErrorRate": {"2m", "15m", "1h", "3h"},
        "LLMTruncationRateHigh": {"5m"}, "LLMRateLimited": {"2m"}, "LLMContentFilterSpike": {"1m"},
        "LLMRateLimitHeadroomLow": {"5m"}, "LLMCostSpike": {"5m"}, "LLMSpendBudgetBurn": {"15m"},
        "LLMTokenSpike": {"10m"}, "LLMUnpricedModel": {"15m"}, "LLMRefusalRateDrift": {"30m"},
        "LLMResponseLengthDrift": {"30m"}, "LLMExporterDown": {"5m"}, "LLMHedgingRateDrift": {"30m"},
        "LLMEvalScoreDrop": {"30m"},
    }


# --- mixtool lint (pkg/mixer/lint.go), ported ------------------------------------------------

TEMPLATED = re.compile(r"\{\{.*\}\}|\$labels|\$value")


def test_lint_alert_names_severities_and_annotations():
    names = set()
    for r in alert_rules():
        name = r["alert"]
        names.add(name)
        assert re.fullmatch(r"([A-Z]+[a-z0-9]+)+", name), name
        assert len(name) <= 40, name
        assert r["labels"]["severity"] in ("warning", "critical", "info"), name
        ann = r["annotations"]
        summary = ann["summary"]
        assert summary[0].isupper() and summary.endswith("."), (name, summary)
        assert not TEMPLATED.search(summary), (name, summary)
        assert ann["description"].strip() and TEMPLATED.search(ann["description"]), name
        assert ann["runbook_url"] == f"https://github.com/llm-exporter/llm-exporter/blob/main/docs/runbook.md#{name.lower()}"
        assert ann["dashboard_url"].startswith("http://localhost:3000/d/llm-")
    assert names == ALERT_NAMES


def test_lint_groups():
    names = [g["name"] for g in all_groups()]
    assert len(names) == len(set(names))
    for g in all_groups():
        assert len(g["name"]) <= 40 and len(g["rules"]) <= 20, g["name"]


def test_ratio_alerts_have_a_minimum_traffic_guard():
    unguarded = {"LLMRateLimited", "LLMContentFilterSpike", "LLMSpendBudgetBurn", "LLMUnpricedModel",
                 "LLMExporterDown", "LLMCostSpike"}  # counts, sums and up: not ratios
    for r in alert_rules():
        if r["alert"] in unguarded:
            continue
        if r["alert"] == "LLMEvalScoreDrop":  # guarded by the number of scores, now and in the baseline
            assert re.search(r"\nand llm:eval_scores:rate6h \* 21600 >= 20\n", r["expr"]), r["expr"]
            assert re.search(r"\nand \(llm:eval_scores:rate6h offset 1w\) \* 21600 >= 20\n", r["expr"]), r["expr"]
            continue
        assert re.search(r"llm:requests:rate\w+\)?( offset 1w\))? > 0", r["expr"]), r["alert"]


# --- the metric contract -----------------------------------------------------------------------

KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
            "offset", "bool", "inf", "nan"}
EXTRA_LABELS = {"job", "instance", "le"}


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matcher text) for every vector selector in a PromQL expression."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    expr = re.sub(r"\[[^\]]*\]|\boffset\s+\d+[smhdwy]", " ", expr)  # ranges, offsets
    expr = re.sub(r"(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?", " ", expr)  # numbers
    found = []
    for m in re.finditer(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?", expr):
        name, matchers = m.group(1), m.group(2) or ""
        rest = expr[m.end():].lstrip()
        before = expr[: m.start()].rstrip()
        if name in KEYWORDS or rest.startswith("(") or re.match(r"(by|without)\b", rest):
            continue  # function or aggregation
        if before.endswith("(") and re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\($", before):
            continue  # a label list
        if re.search(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*$", before):
            continue  # later labels in a label list
        found.append((name, matchers))
    return found


def test_selector_parser_finds_metrics():
    got = selectors('sum by (provider, le) (rate(llm_x_bucket{job="a", error_type!="b"}[5m])) '
                    '/ ignoring (finish_reason) group_left llm:y:rate5m offset 1w > 0.5 and up{job="x"} == 0')
    assert got == [("llm_x_bucket", '{job="", error_type!=""}'), ("llm:y:rate5m", ""), ("up", '{job=""}')]


def test_every_metric_in_every_rule_is_in_the_contract_or_recorded():
    recorded = {r["record"] for r in recording_rules()}
    samples = contract.sample_names()
    specs = {s: m for m in contract.METRICS for s in m.samples}
    seen = set()
    for r in recording_rules() + alert_rules():
        for name, matchers in selectors(r["expr"]):
            seen.add(name)
            if ":" in name:
                assert name in recorded, (r.get("record") or r.get("alert"), name)
                continue
            if name == "up":
                continue
            assert name in samples, (r.get("record") or r.get("alert"), name)
            spec = specs[name]
            if spec.type == "counter":
                assert name.endswith("_total")
            labels = set(re.findall(r"([a-zA-Z_]\w*)\s*[!=]~?", matchers))
            # a detail label exists only with an exporter option: allowed here, ruled out for
            # the histograms by test_histogram_rules_never_use_a_detail_label
            assert labels <= set(spec.labels) | set(spec.detail_labels) | EXTRA_LABELS, (name, labels)
    # Rules read every family the alerts are about.
    for family in ("llm_requests_total", "llm_errors_total", "llm_cost_usd_total", "llm_refusals_total",
                   "llm_ratelimit_remaining", "llm_ratelimit_limit", "llm_unpriced_requests_total",
                   "llm_hedged_responses_total", "llm_eval_score_sum", "llm_eval_score_count"):
        assert family in seen
    assert "llm_request_duration_seconds_bucket" in seen and "llm_tokens_per_request_sum" in seen


def test_aggregation_labels_are_contract_labels():
    known = {label for m in contract.METRICS for label in (*m.labels, *m.detail_labels)} | {"le"}
    for r in recording_rules() + alert_rules():
        for labels in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", r["expr"]):
            for label in filter(None, (x.strip() for x in labels.split(","))):
                if label == "job":  # LLMExporterDown groups `up` by scrape job
                    assert r.get("alert") == "LLMExporterDown", r
                    continue
                assert label in known, label


HISTOGRAM_ALERTS = {"LLMHighLatency", "LLMCriticalLatency", "LLMTokenSpike", "LLMResponseLengthDrift"}


def histogram_series() -> dict[str, set[str]]:
    """Every series read from a family with contract detail_labels (the histograms: feature only
    with configure(feature_histograms=True)), raw or recorded from one, -> those labels."""
    detail = {s: set(m.detail_labels) for m in contract.METRICS if m.detail_labels for s in m.samples}
    changed = True
    while changed:  # recorded from a recorded one (the quantiles read the bucket rules)
        changed = False
        for r in recording_rules():
            read = [vs.name for vs in ast_selectors(parse(r["expr"])) if vs.name in detail]
            labels = set().union(*(detail[n] for n in read)) if read else set()
            if read and detail.get(r["record"]) != labels:
                detail[r["record"]] = labels
                changed = True
    return detail


def test_histogram_rules_never_use_a_detail_label():
    """Histogram rules and the alerts on them aggregate by llmHistogramAggregationLabels
    (provider, model): no matcher, `by`, `on` or `group_*` names feature, which the default
    exporter's histograms do not carry (a rule grouped by it would record one unlabelled series
    per model; an alert joining on it would never fire)."""
    detail = histogram_series()
    recorded = {n for n in detail if ":" in n}
    assert recorded == {
        "llm:request_duration_seconds_bucket:rate5m", "llm:request_duration_seconds:p50_rate5m",
        "llm:request_duration_seconds:p95_rate5m", "llm:request_duration_seconds:p99_rate5m",
        "llm:time_to_first_token_seconds_bucket:rate5m", "llm:time_to_first_token_seconds:p50_rate5m",
        "llm:time_to_first_token_seconds:p95_rate5m", "llm:time_per_output_token_seconds_bucket:rate5m",
        "llm:time_per_output_token_seconds:p50_rate5m", "llm:tokens_per_request:avg_rate5m",
        "llm:tokens_per_request:avg_rate1h"}
    assert all(labels == {"feature"} for labels in detail.values())
    on_histograms = set()
    for r in recording_rules() + alert_rules():
        ast = parse(r["expr"])
        if any(vs.name in detail for vs in ast_selectors(ast)):
            on_histograms.add(r.get("record") or r["alert"])
            assert detail_label_uses(ast, detail) == [], r.get("record") or r["alert"]
            # their traffic guard: the per-feature request rate summed by the same labels
            for m in re.finditer(r"llm:requests:rate\w+", r["expr"]):
                assert r["expr"][: m.start()].endswith("sum by (provider, model) ("), (r.get("alert"), r["expr"])
    assert on_histograms == recorded | HISTOGRAM_ALERTS
    # ... and the check finds a rule that kept the feature
    kept = "sum by (provider, model, feature, le) (rate(llm_request_duration_seconds_bucket[5m]))"
    assert detail_label_uses(parse(kept), detail) == ["llm_request_duration_seconds_bucket grouped or joined by feature"]


def test_histogram_alerts_describe_a_model_not_a_feature():
    for r in alert_rules():
        description = r["annotations"]["description"]
        if r["alert"] in HISTOGRAM_ALERTS:
            assert description.startswith("{{ $labels.provider }}/{{ $labels.model }} (all features): "), r["alert"]
            assert "$labels.feature" not in description
        elif r["alert"] in ("LLMHighErrorRate", "LLMTruncationRateHigh", "LLMCostSpike", "LLMRefusalRateDrift"):
            assert "(feature {{ $labels.feature }})" in description, r["alert"]


def test_histogram_aggregation_labels_are_checked_against_the_contract(tmp_path):
    """llmHistogramAggregationLabels may name a detail label (an app with
    configure(feature_histograms=True) gets per-feature latency alerts), not a label the
    histograms never have, nor one the traffic guard's llm:requests:* rules drop."""
    def render(labels: str) -> dict:
        path = tmp_path / "h.libsonnet"
        path.write_text("{ _config+:: { llmHistogramAggregationLabels: '%s' } }" % labels)
        return load_generate().render(path)

    with pytest.raises(RuntimeError, match=r"team is not a label of llm_\w+ in llm_exporter\.contract"):
        render("provider, model, team")
    with pytest.raises(RuntimeError, match=r"operation is not one of llmAggregationLabels \(provider, model, feature\)"):
        render("provider, model, operation")
    files = render("provider, model, feature")
    rules = {r["record"]: r["expr"] for g in yaml.safe_load(files[RECORDING_FILE])["groups"] for r in g["rules"]}
    assert rules["llm:request_duration_seconds_bucket:rate5m"].startswith("sum by (provider, model, feature, le) (")
    alerts = {r["alert"]: r for g in yaml.safe_load(files[ALERTS_FILE])["groups"] for r in g["rules"]}
    assert "and sum by (provider, model, feature) (llm:requests:rate5m) > 0.05" in alerts["LLMHighLatency"]["expr"]
    assert alerts["LLMHighLatency"]["annotations"]["description"].startswith(
        "{{ $labels.provider }}/{{ $labels.model }} (feature {{ $labels.feature }}): ")


def test_rules_and_alerts_aggregate_away_replicas():
    """Every rate, increase and gauge over llm_* series is summed (or min'd) by labels
    that never include instance/pod, so N replicas give one series and one alert; and no
    rule reads a counter without rate()/increase() (which handle counter resets)."""
    per_replica = {"instance", "pod", "namespace", "container", "endpoint", "service"}
    for r in recording_rules() + alert_rules():
        expr = r["expr"]
        for labels in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            assert not per_replica & {x.strip() for x in labels.split(",")}, (r.get("record") or r.get("alert"))
        for m in re.finditer(r"\b(llm_\w+)\{", expr):
            before = expr[: m.start()]
            if m.group(1).endswith(("_total", "_bucket", "_sum", "_count")):
                assert re.search(r"\b(rate|increase)\($", before), (r.get("record") or r.get("alert"), m.group(1))
            # Every raw llm_* selector sits inside an aggregation (sum/min by ...).
            opened = re.findall(r"\b(sum|min|max|avg|count)( by \([^)]*\))?\s*\(", before)
            assert opened, (r.get("record") or r.get("alert"), m.group(1))


def test_unknown_metric_fails_the_render(tmp_path):
    bad = tmp_path / "bad.libsonnet"
    bad.write_text("local u = import 'lib/utils.libsonnet'; { prometheusRules+:: { groups+: "
                   "[{ name: 'x', rules: [{ record: 'x:y:z', expr: u.metric('llm_nope_total') }] }] } }")
    with pytest.raises(RuntimeError, match="llm_nope_total is not in llm_exporter.contract"):
        load_generate().render(bad)


# --- recording rule names (dashboards depend on them) -----------------------------------------

def test_recording_rule_names_are_stable_and_documented():
    names = [r["record"] for r in recording_rules()]
    assert len(names) == len(set(names))
    for n in names:
        assert re.fullmatch(r"llm:[a-z0-9_]+:[a-z0-9_]+", n), n
    docs = (ROOT / "docs" / "alerts.md").read_text()
    documented = set(re.findall(r"`(llm:[a-z0-9_]+:[a-z0-9_]+)`", docs))
    assert documented == set(names)
    for stable in ("llm:requests:rate5m", "llm:error_ratio:rate5m", "llm:cost_usd:rate1h",
                   "llm:request_duration_seconds_bucket:rate5m", "llm:finish_reason_ratio:rate5m",
                   "llm:tokens_by_type:rate5m"):
        assert stable in names


# --- docs ---------------------------------------------------------------------------------------

def test_runbook_has_a_section_per_alert():
    runbook = (ROOT / "docs" / "runbook.md").read_text()
    headings = re.findall(r"^## (\w+)\s*$", runbook, flags=re.M)
    assert set(headings) == ALERT_NAMES
    # GitHub anchors are the lower-cased heading, which is what runbook_url uses.
    for r in alert_rules():
        assert r["annotations"]["runbook_url"].split("#")[1] in {h.lower() for h in headings}


# --- overrides ------------------------------------------------------------------------------

def test_overrides_change_thresholds_in_one_place(tmp_path):
    overrides = tmp_path / "my.libsonnet"
    overrides.write_text("""{ _config+:: {
        jobName: 'my-app',
        dailyBudgetUSD: 250,
        latency+: { warningSeconds: 8 },
        errorSLO+: { target: 0.995 },
        grafanaURL: 'https://grafana.example.com',
        runbookURLFormat: 'https://wiki.example.com/llm#%s',
    } }""")
    files = load_generate().render(overrides)
    alerts = yaml.safe_load(files[ALERTS_FILE])
    by_name = {}
    for g in alerts["groups"]:
        for r in g["rules"]:
            by_name.setdefault(r["alert"], []).append(r)
    assert "> 250" in by_name["LLMSpendBudgetBurn"][0]["expr"]
    assert 'job="my-app"' in by_name["LLMSpendBudgetBurn"][0]["expr"]
    assert "llm:request_duration_seconds_bucket:rate5m) > 8" in by_name["LLMHighLatency"][0]["expr"]
    fast_page = by_name["LLMHighErrorRate"][0]
    assert "llm:error_ratio:rate1h > 0.05" in fast_page["expr"]  # 10 x 0.5 % budget
    assert fast_page["annotations"]["runbook_url"] == "https://wiki.example.com/llm#llmhigherrorrate"
    assert fast_page["annotations"]["dashboard_url"] == "https://grafana.example.com/d/llm-overview"
    recording = yaml.safe_load(files[RECORDING_FILE])
    assert all('job="my-app"' in r["expr"] for g in recording["groups"] for r in g["rules"]
               if "rate(llm_" in r["expr"])
    assert_rules_load(tmp_path, files)


# --- prometheus.yml -------------------------------------------------------------------------------

def test_prometheus_config_is_valid_and_reads_addresses_from_files():
    result = promtool("check", "config", str(localstack.PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    config = load(localstack.PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["rules/*.yaml"]
    for job in config["scrape_configs"]:
        assert "static_configs" not in job and job["file_sd_configs"], job["job_name"]
    assert {j["job_name"] for j in config["scrape_configs"]} >= {"llm-app"}
    assert 'job="llm-app"' in recording_rules()[0]["expr"]  # the mixin's llmSelector matches the job
    am = config["alerting"]["alertmanagers"][0]
    assert am["file_sd_configs"][0]["files"] == ["targets/alertmanager*.yml"]
    # The committed target files are docker-compose's service addresses.
    targets = ROOT / "prometheus" / "targets"
    assert load(targets / "llm-app.yml") == [{"targets": ["demo:8000"]}]
    assert load(targets / "alertmanager.yml") == [{"targets": ["alertmanager:9093"]}]


def test_prepare_prometheus_dir_copies_config_and_writes_targets(tmp_path):
    config = localstack.prepare_prometheus_dir(
        tmp_path, llm_app=["127.0.0.1:1"], alertmanagers=["127.0.0.1:2"], prometheus=["127.0.0.1:3"],
        scrape_interval="2s")
    assert config.read_bytes() == localstack.PROMETHEUS_CONFIG.read_bytes()
    assert sorted(p.name for p in (tmp_path / "rules").iterdir()) == ["llm-alerts.yaml", "llm-recording-rules.yaml"]
    assert load(tmp_path / "targets" / "llm-app.yml") == [
        {"targets": ["127.0.0.1:1"], "labels": {"__scrape_interval__": "2s", "__scrape_timeout__": "2s"}}]
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


# --- localstack errors ------------------------------------------------------------------------------

def test_localstack_names_a_missing_binary():
    class Missing(localstack.Prometheus):
        binary = "prometheus-not-installed-here"

    with pytest.raises(localstack.BinaryNotFound, match="run scripts/install-deps"):
        Missing(localstack.PROMETHEUS_CONFIG).start()


def test_localstack_reports_the_log_of_a_process_that_exits(tmp_path):
    bad = tmp_path / "prometheus.yml"
    bad.write_text("global: {scrape_interval: nonsense}\n")
    service = localstack.Prometheus(bad)
    with pytest.raises(localstack.ServiceError, match=r"(?s)exited with code 2.*not a valid duration string"):
        service.start()
    assert not service.running() and not service.data_dir.exists()


def test_quality_drift_windows_baselines_and_thresholds_are_configurable(tmp_path):
    overrides = tmp_path / "quality.libsonnet"
    overrides.write_text("""{ _config+:: {
        hedgingDrift+: { window: '30m', baselineOffset: '1d', absoluteChange: 0.2 },
        evalScoreDrop+: { window: '1d', absoluteDrop: 0.05, minScores: 50 },
    } }""")
    files = load_generate().render(overrides)
    alerts = {r["alert"]: r for g in yaml.safe_load(files[ALERTS_FILE])["groups"] for r in g["rules"]}
    hedging = alerts["LLMHedgingRateDrift"]
    assert "abs(llm:hedged_ratio:rate30m - llm:hedged_ratio:rate30m offset 1d) > 0.2" in hedging["expr"]
    assert "(llm:requests:rate30m offset 1d) > 0.05" in hedging["expr"]
    assert "over the last 30m moved" in hedging["annotations"]["description"]
    assert "the same window one day earlier (threshold 20%)" in hedging["annotations"]["description"]
    drop = alerts["LLMEvalScoreDrop"]
    assert "(llm:eval_score:mean_rate1d offset 1w) - llm:eval_score:mean_rate1d > 0.05" in drop["expr"]
    assert "llm:eval_scores:rate1d * 86400 >= 50" in drop["expr"]
    # the recording rules follow the windows (a group per window, created if needed)
    groups = {g["name"]: [r["record"] for r in g["rules"]] for g in yaml.safe_load(files[RECORDING_FILE])["groups"]}
    assert "llm:hedged_ratio:rate30m" in groups["llm-rates-30m"] and "llm:requests:rate30m" in groups["llm-rates-30m"]
    assert {"llm:eval_scores:rate1d", "llm:eval_score:mean_rate1d"} <= set(groups["llm-rates-1d"])
    assert not any("rate6h" in r and ("eval" in r or "hedged" in r) for rs in groups.values() for r in rs)
    assert_rules_load(tmp_path, files)
