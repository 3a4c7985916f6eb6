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
