"""A dashboard panel never swaps itself silently: a metric a panel needs that is not in the
contract fails generation with a message naming it (a Jsonnet ``error``), instead of
rendering another panel or a query for a series nobody exports.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path

import _jsonnet
import pytest

from llm_exporter import contract

sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import ROOT, parse, selectors, substitute, targets  # noqa: E402


def _load_generate():
    spec = importlib.util.spec_from_file_location("llm_generate_script", ROOT / "scripts" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generate()


def _dashboards_with(contract_data: dict) -> dict:
    """Only the dashboards, rendered against ``contract_data`` (rules and alerts not evaluated)."""
    contract_json = json.dumps(contract_data, indent=2, sort_keys=True) + "\n"
    return json.loads(_jsonnet.evaluate_snippet(
        str(generate.MIXIN / "generate"), "(import 'mixin.libsonnet').grafanaDashboards",
        import_callback=generate._importer(contract_json)))


def _without(metric: str) -> dict:
    data = copy.deepcopy(contract.as_dict())
    del data["metrics"][metric]
    return data


def _metrics_panels_use() -> set[str]:
    used = set()
    for t in targets():
        for vs in selectors(parse(substitute(t.expr))):
            used |= {m.name for m in contract.METRICS if vs.name in m.samples}
    return used


def test_the_full_contract_renders_the_committed_dashboards():
    rendered = _dashboards_with(contract.as_dict())
    committed = {p.name: json.loads(p.read_text()) for p in (ROOT / "grafana" / "dashboards").glob("*.json")}
    assert rendered == committed


def test_renaming_cache_savings_in_the_contract_fails_generation(monkeypatch):
    """The cost dashboard used to swap "Saved by cache reads" for another panel when
    llm_cache_savings_usd_total was missing; now scripts/generate.py fails and says why."""
    assert "llm_cache_savings_usd_total" in _metrics_panels_use()
    renamed = copy.deepcopy(contract.as_dict())
    renamed["metrics"]["llm_cache_saved_usd_total"] = renamed["metrics"].pop("llm_cache_savings_usd_total")
    monkeypatch.setattr(generate.contract, "as_dict", lambda: renamed)
    with pytest.raises(RuntimeError, match=r"dashboard panel needs metric llm_cache_savings_usd_total, "
                                           r"which is not in llm_exporter\.contract"):
        generate.render()


def test_every_metric_a_panel_needs_fails_generation_when_missing():
    used = sorted(_metrics_panels_use())
    assert len(used) >= 14  # every llm_* family the panels query
    for metric in used:
        with pytest.raises(RuntimeError) as info:
            _dashboards_with(_without(metric))
        assert f"dashboard panel needs metric {metric}, which is not in llm_exporter.contract" in str(info.value)


def test_a_missing_histogram_sample_fails_generation():
    data = copy.deepcopy(contract.as_dict())
    spec = data["metrics"]["llm_request_duration_seconds"]
    spec["samples"] = [s for s in spec["samples"] if not s.endswith("_bucket")]
    with pytest.raises(RuntimeError, match=r"dashboard panel needs llm_request_duration_seconds_bucket, but the "
                                           r"contract metric llm_request_duration_seconds \(a histogram\) has no such sample"):
        _dashboards_with(data)


def _panel(rendered: dict, file: str, title: str) -> dict:
    return next(p for p in rendered[file]["panels"] if p.get("title") == title)


def test_the_feature_filter_of_a_histogram_panel_follows_the_contract():
    """The histograms' feature is a detail label (configure(feature_histograms=True)): their
    panels get no feature matcher and say they cover all features. Put feature back among a
    histogram's default labels and the matcher returns and the note goes."""
    spec = contract.METRICS_BY_NAME["llm_request_duration_seconds"]
    assert "feature" not in spec.labels and "feature" in spec.detail_labels
    default = _panel(_dashboards_with(contract.as_dict()), "llm-overview.json", "p95 latency")
    assert 'feature=~"$feature"' not in default["targets"][0]["expr"]
    assert "All features: the feature filter does not apply" in default["description"]

    data = copy.deepcopy(contract.as_dict())
    data["metrics"]["llm_request_duration_seconds"]["labels"].append("feature")
    data["metrics"]["llm_request_duration_seconds"]["detail_labels"] = []
    per_feature = _panel(_dashboards_with(data), "llm-overview.json", "p95 latency")
    assert 'model=~"$model", feature=~"$feature"}' in per_feature["targets"][0]["expr"]
    assert "All features" not in per_feature["description"]


def test_a_histogram_panel_grouped_by_a_detail_label_fails_generation():
    """The old "Latency p95 by feature" panel: sum by (feature, le) over a histogram without
    feature would draw one unlabelled line; generation refuses it."""
    contract_json = json.dumps(contract.as_dict(), indent=2, sort_keys=True) + "\n"
    snippet = ("local m = import 'mixin.libsonnet'; local c = (import 'dashboards/common.libsonnet').new(m._config);"
               " c.quantile('0.95', 'llm_request_duration_seconds', ['feature'])")
    with pytest.raises(RuntimeError, match=r"dashboard panel groups llm_request_duration_seconds by feature, "
                                           r"not among its labels in llm_exporter\.contract"):
        _jsonnet.evaluate_snippet(str(generate.MIXIN / "generate"), snippet,
                                  import_callback=generate._importer(contract_json))
    by_model = _jsonnet.evaluate_snippet(
        str(generate.MIXIN / "generate"), snippet.replace("['feature']", "['model']"),
        import_callback=generate._importer(contract_json))
    assert json.loads(by_model).startswith("histogram_quantile(0.95, sum by (model, le) (rate(llm_request_duration_seconds_bucket{")
