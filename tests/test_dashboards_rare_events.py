"""Rare-event panels (errors, retries, truncation, content filtering, refusals, feedback,
unpriced calls) answer 0 for every label set with traffic and no event, the event's value
where it happened, and nothing at all without traffic.

A series such as ``llm_errors_total{model="b"}`` exists only from its first event on, so
``errors / requests`` would be empty (Grafana: "No data") for a model that never failed.
Each panel target is evaluated by ``promtool test rules`` (Prometheus's own engine) on
three synthetic histories, with the exact samples it must return (values rounded to 1e-6:
promtool compares floats exactly, and rate() extrapolation leaves 0.1 as 0.09999999999999999).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import substitute, targets  # noqa: E402

# Grafana's intervals for these histories: one sample a minute, evaluated at 10m.
INTERVALS = {"$__rate_interval": "5m", "$__range": "10m", "$__interval": "1m"}
EVAL_TIME = "10m"
JOB = 'job="llm-app"'


def _calls(provider: str, model: str, **per_minute: int) -> list[dict]:
    """llm_requests_total by finish_reason, one feature and operation, +n per minute."""
    return [{"series": f'llm_requests_total{{{JOB}, provider="{provider}", model="{model}", feature="f", '
                       f'operation="chat", finish_reason="{fr}"}}', "values": f"0+{n}x10"}
            for fr, n in per_minute.items()]


def _counter(name: str, labels: str, per_minute: int) -> dict:
    return {"series": f"{name}{{{JOB}, {labels}}}", "values": f"0+{per_minute}x10"}


def _tokens(provider: str, model: str, **per_minute: int) -> list[dict]:
    return [_counter("llm_tokens_total", f'provider="{provider}", model="{model}", feature="f", operation="chat", '
                                         f'token_type="{t}"', n) for t, n in per_minute.items()]


def _common(provider: str, model: str) -> str:
    return f'provider="{provider}", model="{model}", feature="f", operation="chat"'


# Two models with traffic and not one rare event (every series the exporter creates
# with the first call exists; the rare ones do not).
QUIET = (
    _calls("openai", "a", stop=6) + _calls("anthropic", "b", stop=4)
    + _tokens("openai", "a", input=600, cache_read=0, cache_write=0)
    + _tokens("anthropic", "b", input=400, cache_read=0, cache_write=0)
)

# Model a has every rare event, b none, c is unpriced.
EVENTS = (
    _calls("openai", "a", stop=4, length=2, content_filter=1, error=3)
    + _calls("anthropic", "b", stop=5)
    + _calls("openai", "c", stop=5)
    + [
        _counter("llm_errors_total", _common("openai", "a") + ', error_type="timeout"', 3),
        _counter("llm_retries_total", _common("openai", "a"), 2),
        _counter("llm_refusals_total", _common("openai", "a"), 1),
        _counter("llm_unpriced_requests_total", 'provider="openai", model="c"', 5),
        _counter("llm_feedback_total", 'feature="f", model="a", rating="positive"', 3),
        _counter("llm_feedback_total", 'feature="f", model="a", rating="negative"', 1),
    ]
    + _tokens("openai", "a", input=400, cache_read=300, cache_write=300)
    + _tokens("anthropic", "b", input=400, cache_read=0, cache_write=0)
    + _tokens("openai", "c", input=400, cache_read=0, cache_write=0)
)

# No LLM traffic at all: the app is scraped, nothing was called.
NO_TRAFFIC = [{"series": f"up{{{JOB}}}", "values": "1x10"}]

A, B, C = {"model": "a"}, {"model": "b"}, {"model": "c"}
MINUTE = 60.0

# (dashboard, panel, refId) -> {history: [(labels, value)]}; increase() over the whole
# 10 minutes extrapolates to the range: +n per minute gives 10 n.
EXPECTED: dict[tuple[str, str, str], dict[str, list[tuple[dict, float]]]] = {
    ("llm-overview.json", "Error ratio", "A"): {
        "quiet": [({}, 0)], "events": [({}, 3 / 20)]},
    ("llm-overview.json", "Error ratio by model", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 0.3), (B, 0), (C, 0)]},
    ("llm-overview.json", "Error rate by error type", "A"): {
        "quiet": [({"error_type": "none"}, 0)], "events": [({"error_type": "timeout"}, 3 / MINUTE)]},
    ("llm-overview.json", "Priced-call coverage", "A"): {
        "quiet": [({}, 1)], "events": [({}, 1 - 5 / 20)]},
    ("llm-overview.json", "Retries", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 2 / MINUTE), (B, 0), (C, 0)]},
    ("llm-overview.json", "Truncation rate by model", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 0.2), (B, 0), (C, 0)]},
    ("llm-overview.json", "Content-filter rate by model", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 0.1), (B, 0), (C, 0)]},
    ("llm-cost.json", "Unpriced calls / s", "A"): {
        "quiet": [({}, 0)], "events": [({}, 5 / MINUTE)]},
    ("llm-cost.json", "Unpriced models", "A"): {
        "quiet": [({"provider": "openai", "model": "a"}, 0), ({"provider": "anthropic", "model": "b"}, 0)],
        "events": [({"provider": "openai", "model": "c"}, 50), ({"provider": "openai", "model": "a"}, 0),
                   ({"provider": "anthropic", "model": "b"}, 0)]},
    ("llm-cost.json", "Cache hit ratio", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 0.3), (B, 0), (C, 0)]},
    ("llm-latency-quality.json", "Refusal rate by model", "A"): {
        "quiet": [(A, 0), (B, 0)], "events": [(A, 0.1), (B, 0), (C, 0)]},
    ("llm-latency-quality.json", "Refusals in range", "A"): {
        "quiet": [({}, 0)], "events": [({}, 10)]},
    ("llm-latency-quality.json", "User feedback ratings", "A"): {
        "quiet": [({"rating": "none"}, 0)],
        "events": [({"rating": "positive"}, 3 / MINUTE), ({"rating": "negative"}, 1 / MINUTE)]},
    # a share of ratings: no ratings, no share (not 0)
    ("llm-latency-quality.json", "Positive feedback share", "A"): {
        "quiet": [], "events": [({}, 0.75)]},
}

HISTORIES = {"quiet": QUIET, "events": EVENTS, "no traffic": NO_TRAFFIC}


def _targets() -> dict[tuple[str, str, str], str]:
    return {(t.file, t.panel, t.ref_id): substitute(t.expr, intervals=INTERVALS) for t in targets()}


ROUND_TO = 1e-6


def _rounded(expr: str) -> str:
    """round() keeps every series and its labels, and answers nothing when expr does."""
    return f"round({expr}, {ROUND_TO:g})"


def _go_round(value: float) -> float:
    """Prometheus's round(v, to): math.Floor(v*(1/to) + 0.5) / (1/to)."""
    inverse = 1.0 / ROUND_TO
    return math.floor(value * inverse + 0.5) / inverse


def _labels(labels: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


def _unit_tests() -> list[dict]:
    exprs = _targets()
    tests = []
    for history, series in HISTORIES.items():
        cases = []
        for key, expected in EXPECTED.items():
            samples = [] if history == "no traffic" else expected[history]
            cases.append({"expr": _rounded(exprs[key]), "eval_time": EVAL_TIME,
                          "exp_samples": [{"labels": _labels(lab), "value": _go_round(val)} for lab, val in samples]})
        tests.append({"name": history, "interval": "1m", "input_series": series, "promql_expr_test": cases})
    return tests


def _promtool(tmp_path: Path, tests: list[dict]) -> subprocess.CompletedProcess:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not installed (scripts/install-deps installs Debian's prometheus)")
    (tmp_path / "empty-rules.yaml").write_text("groups: []\n")
    path = tmp_path / "rare-events-test.yaml"
    path.write_text(yaml.safe_dump({"rule_files": ["empty-rules.yaml"], "tests": tests}, sort_keys=False))
    return subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True, cwd=tmp_path)


# Series that appear only with their first event (or label set) in the exporter.
RARE_METRICS = ("llm_errors_total", "llm_refusals_total", "llm_feedback_total", "llm_unpriced_requests_total")


def test_every_expected_target_exists():
    missing = set(EXPECTED) - set(_targets())
    assert missing == set()


def test_every_target_on_a_rare_series_is_checked_here():
    """A new panel on errors, refusals, ratings, unpriced calls or one finish reason must
    answer 0 too: it has to be listed in EXPECTED (and so pass the promtool check)."""
    rare = {key for key, expr in _targets().items()
            if any(m + "{" in expr for m in RARE_METRICS) or re.search(r'finish_reason="\w+"', expr)}
    assert len(rare) >= 12 and rare - set(EXPECTED) == set()


def test_rare_event_panels_answer_zero_with_traffic_and_nothing_without(tmp_path: Path):
    result = _promtool(tmp_path, _unit_tests())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_old_query_shapes_would_fail_this_check(tmp_path: Path):
    """The check has teeth: a plain ratio answers nothing for the model that never failed."""
    exprs = _targets()
    plain = exprs[("llm-overview.json", "Error ratio by model", "A")]
    plain = plain[1:plain.index(" or ")] + " / " + plain[plain.rindex("sum by (model)"):]
    assert plain.startswith("sum by (model) (rate(llm_errors_total") and " or " not in plain
    tests = [{"name": "quiet", "interval": "1m", "input_series": QUIET, "promql_expr_test": [{
        "expr": plain, "eval_time": EVAL_TIME,
        "exp_samples": [{"labels": _labels(A), "value": 0}, {"labels": _labels(B), "value": 0}]}]}]
    result = _promtool(tmp_path, tests)
    assert result.returncode != 0
    assert 'exp: {model="a"} 0E+00, {model="b"} 0E+00\n        got: nil' in result.stdout + result.stderr
