"""The metric contract is the one definition the rules and dashboards are checked against."""

import json
import subprocess
import sys
from pathlib import Path

from llm_exporter import contract

ROOT = Path(__file__).resolve().parent.parent


def test_issue_metric_names_and_labels_are_fixed():
    want = {
        "llm_requests_total": ("counter", {"finish_reason"}),
        "llm_request_duration_seconds": ("histogram", set()),
        "llm_time_to_first_token_seconds": ("histogram", set()),
        "llm_time_per_output_token_seconds": ("histogram", set()),
        "llm_tokens_total": ("counter", {"token_type"}),
        "llm_tokens_per_request": ("histogram", {"direction"}),
        "llm_cost_usd_total": ("counter", set()),
        "llm_errors_total": ("counter", {"error_type"}),
        "llm_retries_total": ("counter", set()),
    }
    common = {"provider", "model", "feature", "operation"}
    for name, (mtype, extra) in want.items():
        spec = contract.METRICS_BY_NAME[name]
        assert spec.type == mtype, name
        assert set(spec.labels) | set(spec.detail_labels) == common | extra, name  # feature: see below
    # the series budget: histograms carry feature only with configure(feature_histograms=True)
    for spec in contract.METRICS:
        if spec.type == "histogram" and spec.name != "llm_eval_score":
            assert "feature" not in spec.labels and spec.detail_labels == ("feature",), spec.name
            assert spec.labels_with(True)[:4] == contract.COMMON_LABELS, spec.name
    assert set(contract.METRICS_BY_NAME["llm_in_flight_requests"].labels) == {"provider", "model", "feature"}
    assert set(contract.METRICS_BY_NAME["llm_unpriced_requests_total"].labels) == {"provider", "model"}
    assert contract.METRICS_BY_NAME["llm_label_overflow_total"].labels == ("label",)
    assert set(contract.METRICS_BY_NAME["llm_exporter_info"].labels) == {"version", "pricing_version"}


def test_histograms_never_carry_finish_reason_and_buckets_fit_budget():
    for spec in contract.METRICS:
        if spec.type != "histogram":
            continue
        assert "finish_reason" not in spec.labels
        assert spec.buckets == tuple(sorted(spec.buckets))
        assert len(spec.buckets) <= 16, spec.name
    for name in ("llm_request_duration_seconds", "llm_time_to_first_token_seconds"):
        buckets = contract.METRICS_BY_NAME[name].buckets
        assert buckets[0] == 0.01 and buckets[-1] >= 600
        assert 5.0 in buckets and 10.0 in buckets  # the latency alert thresholds
    tokens = contract.METRICS_BY_NAME["llm_tokens_per_request"].buckets
    assert tokens[0] == 1 and tokens[-1] >= 1_000_000


def test_sample_names_expand_histograms():
    names = contract.sample_names()
    assert "llm_request_duration_seconds_bucket" in names
    assert "llm_request_duration_seconds_count" in names
    assert "llm_request_duration_seconds" not in names
    assert "llm_requests_total" in names


def test_closed_sets_match_issue():
    assert contract.FINISH_REASONS == ("stop", "length", "tool_calls", "content_filter", "error", "cancelled", "other")
    assert set(contract.ERROR_TYPES) == {
        "rate_limit", "timeout", "connection", "authentication", "permission", "bad_request", "not_found",
        "context_length", "content_filter", "overloaded", "server_error", "cancelled", "other",
    }
    assert contract.TOKEN_TYPES == ("input", "cache_read", "cache_write", "output", "reasoning")


def test_contract_json_for_jsonnet_is_in_sync_and_cli_prints_it():
    committed = json.loads((ROOT / "mixin" / "lib" / "contract.json").read_text())
    assert committed == contract.as_dict()
    out = subprocess.run([sys.executable, "-m", "llm_exporter.contract"], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == committed


def test_generated_files_have_not_drifted():
    """Rules YAML, dashboards JSON, kubernetes/ and contract.json must match their sources
    (tests/test_kubernetes.py checks that kubernetes/ holds only generated files)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
