"""The demo app: real openai/anthropic SDK clients, instrumented, against the fake provider.

Traffic runs sequentially with a seed (deterministic) and a small time scale (fast); the
scenario tests assert the ratios the shipped alert rules compute, against those rules'
thresholds, with a wide margin.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from llm_exporter import demo as demo_mod
from llm_exporter.demo import (
    CANARY_MODEL,
    DEFAULT_RPS,
    SCENARIOS,
    Demo,
    DemoConfig,
    DemoPolicy,
    ScenarioState,
    Traffic,
)
from llm_exporter.fakeprovider import RequestInfo
from llm_exporter.localstack import free_port
from llm_exporter.testing import fresh_registry

ROOT = Path(__file__).resolve().parents[1]
ALERTS = yaml.safe_load((ROOT / "prometheus" / "rules" / "llm-alerts.yaml").read_text())
TIME_SCALE = 0.002  # fake delays x0.002: a 6 s "slow" call takes 12 ms


def _alert_rules(name: str) -> list[dict]:
    return [r for g in ALERTS["groups"] for r in g["rules"] if r.get("alert") == name]


def _threshold(name: str, pattern: str) -> float:
    """The number after ``pattern`` in the alert's first rule expression (the shipped threshold)."""
    expr = _alert_rules(name)[0]["expr"]
    m = re.search(pattern + r"\s*>\s*([0-9.]+)", expr)
    assert m, f"{pattern!r} > N not found in {name}: {expr}"
    return float(m.group(1))


@pytest.fixture
def registry():
    return fresh_registry()


def run_traffic(registry, scenario: str, n: int, seed: int = 11) -> tuple[Demo, Traffic]:
    d = Demo(DemoConfig(port=0, scenario=scenario, seed=seed, time_scale=TIME_SCALE, status_every=0),
             registry=registry)
    d.build()
    traffic = Traffic(d.app, rps=1, seed=seed)
    try:
        for _ in range(n):
            traffic.run_one()
    finally:
        d.provider.stop()
    return d, traffic


def samples(registry, name: str) -> list[tuple[dict, float]]:
    return [(s.labels, s.value) for m in registry.collect() for s in m.samples if s.name == name]


def by(registry, name: str, *keys: str) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for labels, value in samples(registry, name):
        k = tuple(labels[x] for x in keys)
        out[k] = out.get(k, 0.0) + value
    return out


def test_scenarios_name_shipped_alerts() -> None:
    assert list(SCENARIOS) == ["normal", "latency-spike", "error-burst", "cost-spike", "truncation"]
    for s in SCENARIOS.values():
        if s.name != "normal":
            assert _alert_rules(s.alert), f"{s.name}: alert {s.alert} not in llm-alerts.yaml"


def test_normal_traffic_covers_features_models_streams_cache_reasoning(registry) -> None:
    _, traffic = run_traffic(registry, "normal", 120)
    assert traffic.outcomes["ok"] >= 115  # rare 429/5xx are mostly absorbed by the SDK's retry
    calls = by(registry, "llm_requests_total", "provider", "model", "feature", "operation")
    assert set(calls) == {
        ("openai", "gpt-4o-mini", "order_summary", "chat"),
        ("anthropic", "claude-haiku-4-5", "support_triage", "messages"),
        ("openai", "text-embedding-3-small", "search", "embeddings"),
        ("openai", "gpt-4.1-mini", "search", "chat"),
        ("openai", "o4-mini", "code_review", "responses"),
        ("anthropic", "claude-sonnet-4-6", "draft_reply", "messages"),
        ("openai", CANARY_MODEL, "order_summary", "chat"),  # the canary's first order summaries
    }
    assert sum(calls.values()) == 120 + calls[("openai", "text-embedding-3-small", "search", "embeddings")]
    # streams record time to first token; the non-streamed features do not
    ttft = by(registry, "llm_time_to_first_token_seconds_count", "model")  # histograms: per model
    assert ttft[("claude-haiku-4-5",)] > 0
    assert ttft[("claude-sonnet-4-6",)] > 0
    assert ttft[("gpt-4.1-mini",)] > 0
    assert ("gpt-4o-mini",) not in ttft or ttft[("gpt-4o-mini",)] == 0
    tokens = by(registry, "llm_tokens_total", "model", "token_type")
    assert tokens[("gpt-4o-mini", "cache_read")] > 0
    assert tokens[("claude-haiku-4-5", "cache_read")] > 0
    assert tokens[("o4-mini", "reasoning")] > 0
    assert tokens[("text-embedding-3-small", "input")] > 0
    assert tokens[("text-embedding-3-small", "output")] == 0
    # every model but the canary is priced: cost recorded for each, unpriced calls only for it
    cost = by(registry, "llm_cost_usd_total", "model")
    assert set(cost) == {(k[1],) for k in calls}
    assert {k for k, v in cost.items() if v > 0} == {(k[1],) for k in calls} - {(CANARY_MODEL,)}
    unpriced = by(registry, "llm_unpriced_requests_total", "provider", "model")
    assert unpriced == {("openai", CANARY_MODEL): calls[("openai", CANARY_MODEL, "order_summary", "chat")]}
    # rate-limit headroom from the provider headers, well above the 10 % alert line
    remaining = by(registry, "llm_ratelimit_remaining", "provider", "model", "resource")
    limit = by(registry, "llm_ratelimit_limit", "provider", "model", "resource")
    assert ("anthropic", "claude-haiku-4-5", "requests") in remaining
    assert ("openai", "gpt-4o-mini", "tokens") in remaining
    assert all(0.5 < remaining[k] / limit[k] < 1 for k in remaining)
    assert by(registry, "llm_in_flight_requests", "feature") and all(
        v == 0 for v in by(registry, "llm_in_flight_requests", "feature").values())


def test_seeded_traffic_is_reproducible() -> None:
    runs = []
    for _ in range(2):
        reg = fresh_registry()
        run_traffic(reg, "normal", 40, seed=5)
        runs.append({name: sorted((tuple(sorted(lab.items())), v) for lab, v in samples(reg, name))
                     for name in ("llm_requests_total", "llm_tokens_total", "llm_errors_total",
                                  "llm_retries_total", "llm_cost_usd_total")})
    assert runs[0] == runs[1]
    assert runs[0]["llm_tokens_total"]


def _ratio(num: dict, den: dict) -> dict:
    return {k: num.get(k, 0) / v for k, v in den.items() if v}


def test_normal_stays_below_every_ratio_alert(registry) -> None:
    run_traffic(registry, "normal", 200)
    calls = by(registry, "llm_requests_total", "provider", "model", "feature")
    errors = by(registry, "llm_errors_total", "provider", "model", "feature")
    err_threshold = _threshold("LLMHighErrorRate", r"llm:error_ratio:rate1h")
    assert max(_ratio(errors, calls).values(), default=0) < err_threshold / 2
    total_trunc = sum(v for (*_, fr), v in by(registry, "llm_requests_total", "provider", "model", "feature",
                                                 "finish_reason").items() if fr == "length")
    assert total_trunc / sum(calls.values()) < _threshold("LLMTruncationRateHigh", r"\}")


def test_error_burst_fails_most_calls(registry) -> None:
    _, traffic = run_traffic(registry, "error-burst", 60)
    calls = by(registry, "llm_requests_total", "provider", "model", "feature")
    errors = by(registry, "llm_errors_total", "provider", "model", "feature")
    threshold = _threshold("LLMHighErrorRate", r"llm:error_ratio:rate1h")
    assert sum(errors.values()) / sum(calls.values()) > 5 * threshold
    for key, ratio in _ratio(errors, calls).items():
        if calls[key] >= 8:
            assert ratio > 2 * threshold, key
    types = by(registry, "llm_errors_total", "error_type")
    assert types.get(("server_error",), 0) > 0 and types.get(("rate_limit",), 0) > 0
    assert sum(by(registry, "llm_retries_total", "feature").values()) > 30  # the SDKs retried first
    assert sum(v for k, v in traffic.outcomes.items() if k != "ok") == sum(
        v for (f,), v in by(registry, "llm_errors_total", "feature").items())


def test_truncation_cuts_answers_at_max_tokens(registry) -> None:
    run_traffic(registry, "truncation", 80)
    fr = by(registry, "llm_requests_total", "provider", "model", "feature", "finish_reason")
    calls = by(registry, "llm_requests_total", "provider", "model", "feature")
    threshold = _threshold("LLMTruncationRateHigh", r"\}")
    checked = 0
    for key, n in calls.items():
        if key[1] == "text-embedding-3-small" or n < 8:
            continue
        assert fr.get((*key, "length"), 0) / n > 2 * threshold, key
        checked += 1
    assert checked >= 4


def test_cost_spike_exceeds_the_absolute_hourly_limit(registry) -> None:
    run_traffic(registry, "cost-spike", 60)
    calls = by(registry, "llm_requests_total", "model", "feature")
    cost = by(registry, "llm_cost_usd_total", "model", "feature")
    assert ("claude-opus-4-1", "support_triage") in calls and ("gpt-4.1", "order_summary") in calls
    # LLMCostSpike without last week's data: spend per hour per series above the absolute limit
    limit = float(re.search(r"or llm:cost_usd:rate1h \* 3600 > ([0-9.]+)",
                            _alert_rules("LLMCostSpike")[0]["expr"]).group(1))
    weights = dict(zip(demo_mod.FEATURES, demo_mod._FEATURE_WEIGHTS))
    key = ("claude-opus-4-1", "support_triage")
    per_hour = cost[key] / calls[key] * DEFAULT_RPS * weights["support_triage"] * 3600
    assert per_hour > 2 * limit
    # and tokens per call far above LLMTokenSpike's line
    tpr = by(registry, "llm_tokens_per_request_sum", "model")
    cnt = by(registry, "llm_tokens_per_request_count", "model")
    assert tpr[("claude-opus-4-1",)] / cnt[("claude-opus-4-1",)] * 2 > _threshold("LLMTokenSpike", r"\)")


def _duration(policy: DemoPolicy, req: RequestInfo) -> float | None:
    """Seconds the fake provider takes for a reply (None for errors)."""
    reply = policy(req)
    if reply.status >= 400:
        return None
    if req.stream:
        deltas = max(1, len(reply.text.split()))
        return reply.first_delta_delay_s + reply.chunk_delay_s * (deltas - 1)
    return reply.delay_s


def _requests(n: int) -> list[RequestInfo]:
    kinds = [("openai", "chat", "gpt-4o-mini", False, {"max_tokens": 300}),
             ("openai", "chat", "gpt-4.1-mini", True, {"max_tokens": 250}),
             ("anthropic", "messages", "claude-haiku-4-5", True, {"max_tokens": 400}),
             ("anthropic", "messages", "claude-sonnet-4-6", True, {"max_tokens": 2048, "thinking": {}}),
             ("openai", "responses", "o4-mini", False, {"max_output_tokens": 2000})]
    out = []
    for i in range(n):
        provider, op, model, stream, body = kinds[i % len(kinds)]
        out.append(RequestInfo(method="POST", path="/", headers={}, body={"model": model, **body},
                               provider=provider, operation=op, model=model, stream=stream,
                               include_usage=True, index=i, retry_count=0))
    return out


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def test_latency_spike_puts_p95_over_the_alert_line_and_normal_under() -> None:
    warn = _threshold("LLMHighLatency", r"\)")
    crit = _threshold("LLMCriticalLatency", r"\)")
    durations = {}
    for name in ("normal", "latency-spike"):
        policy = DemoPolicy(ScenarioState(name), seed=3)
        durations[name] = [d for r in _requests(500) if (d := _duration(policy, r)) is not None]
    assert _quantile(durations["normal"], 0.99) < warn
    assert _quantile(durations["latency-spike"], 0.95) > warn
    assert _quantile(durations["latency-spike"], 0.99) > crit
    assert max(durations["latency-spike"]) < DemoConfig().client_timeout  # slow, not timed out


def test_latency_spike_is_real_wall_time_through_the_sdks(registry) -> None:
    run_traffic(registry, "latency-spike", 30)
    # every chat/messages call took at least 6 s x time scale; the 10 ms bucket stays empty
    low = SCENARIOS["latency-spike"].latency[0] * TIME_SCALE
    for labels, value in samples(registry, "llm_request_duration_seconds_bucket"):
        if labels["operation"] != "embeddings" and float(labels["le"]) < low:
            assert value == 0, labels
    counts = by(registry, "llm_request_duration_seconds_count", "operation")
    assert counts[("chat",)] + counts[("messages",)] > 15


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str) -> tuple[int, dict]:
    req = urllib.request.Request(url, method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_http_scenario_switch_and_metrics(registry) -> None:
    cfg = DemoConfig(port=0, seed=1, rps=20, time_scale=TIME_SCALE, status_every=0)
    with Demo(cfg, registry=registry) as d:
        status, body = _get(d.url + "/scenario")
        info = json.loads(body)
        assert status == 200 and info["scenario"] == "normal"
        assert set(info["scenarios"]) == set(SCENARIOS)
        assert _post(d.url + "/scenario/error-burst") == (200, {"scenario": "error-burst"})
        assert d.state.current.name == "error-burst"
        assert _post(d.url + "/scenario/nope")[0] == 404
        assert _get(d.url + "/scenario/truncation")[0] == 405
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            text = _get(d.url + "/metrics")[1].decode()
            if "llm_errors_total{" in text:
                break
            time.sleep(0.2)
        assert 'demo_scenario{scenario="error-burst"} 1.0' in text
        assert 'demo_scenario{scenario="normal"} 0.0' in text
        assert re.search(r'llm_requests_total\{[^}]*feature="', text)
        assert "llm_errors_total{" in text
        assert _get(d.url + "/healthz")[0] == 200


def test_real_mode_needs_a_key_and_limits_scenarios(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        Demo(DemoConfig(port=0, real=True)).build()
    with pytest.raises(ValueError, match="--real"):
        Demo(DemoConfig(port=0, real=True, scenario="error-burst")).build()
    # with a key the real clients point at the providers' APIs (no call is made here)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    app = Demo(DemoConfig(port=0, real=True), registry=fresh_registry()).build()
    assert app.anthropic is None and set(app.features) == {"order_summary", "search", "code_review"}
    assert str(app.openai.base_url).startswith("https://api.openai.com")
    assert app._max(300) <= 120


def test_cli_demo_serves_metrics_and_stops_on_ctrl_c() -> None:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    help_out = subprocess.run([sys.executable, "-m", "llm_exporter.cli", "demo", "--help"],
                              capture_output=True, text=True, env=env, timeout=60, check=False)
    assert help_out.returncode == 0 and "error-burst" in help_out.stdout and "--real" in help_out.stdout
    proc = subprocess.Popen(
        [sys.executable, "-m", "llm_exporter.cli", "demo", "--port", str(port), "--seed", "2", "--rps", "10",
         "--scenario", "truncation", "--time-scale", "0.01"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert "llm-exporter demo" in first, first
        deadline = time.monotonic() + 30
        text = ""
        while time.monotonic() < deadline and 'finish_reason="length"' not in text:
            time.sleep(0.3)
            text = _get(f"http://127.0.0.1:{port}/metrics")[1].decode()
        assert 'finish_reason="length"' in text
        assert json.loads(_get(f"http://127.0.0.1:{port}/scenario")[1])["scenario"] == "truncation"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- quality signals: hedged answers and the evaluation job (issue 21) ---------------------------


def test_normal_traffic_has_hedged_answers_counted_by_the_demos_hedging_detector(registry) -> None:
    from llm_exporter import metrics

    run_traffic(registry, "normal", 200)
    assert metrics.current().settings.hedging_detector is not None  # the demo turns it on
    hedged = by(registry, "llm_hedged_responses_total", "model")
    answered = {k: v for k, v in by(registry, "llm_requests_total", "model", "finish_reason").items()
                if k[1] not in ("error", "cancelled")}
    answered_by_model: dict[tuple, float] = {}
    for (model, _), v in answered.items():
        answered_by_model[(model,)] = answered_by_model.get((model,), 0) + v
    # every text model's series exists (the detector saw its calls); embeddings have no text
    assert set(hedged) == set(answered_by_model)
    assert hedged[("text-embedding-3-small",)] == 0
    share = {k[0]: hedged[k] / answered_by_model[k] for k in hedged if answered_by_model[k]}
    # order_summary's answers (not streamed): configured 20 %. The streamed features' answers
    # are scanned once the stream readers collect text for the hedging detector alone
    # (quality.text_scan_enabled; tests/test_evaluation.py has the strict xfail for it).
    assert 0.08 < share["gpt-4o-mini"] < 0.4
    assert all(s < 0.5 for s in share.values())


def test_demo_hedges_look_like_seed_000s_markers() -> None:
    import random

    from llm_exporter.quality import HedgingDetector

    d = HedgingDetector()
    plain = [demo_mod._answer_text(random.Random(i), 24) for i in range(400)]
    assert not any(d.is_hedged(t) for t in plain)
    texts = [demo_mod._hedged(t, "gpt-4.1-mini") for t in plain]
    hedged = [t for t in texts if d.is_hedged(t)]
    assert 60 <= len(hedged) <= 140  # 25 % of 400
    assert {t.split(" ")[0] for t in hedged} == {"I", "I'm", "Probably", "As"}
    assert all(t == p for t, p in zip(texts, plain) if t not in hedged)  # the rest unchanged


def test_evaluation_job_scores_answers_through_the_judge(registry) -> None:
    d = Demo(DemoConfig(port=0, seed=3, time_scale=TIME_SCALE, status_every=0), registry=registry)
    d.build()
    try:
        job = demo_mod.Evaluations(d.app, seed=3)
        results = [job.run_one() for _ in range(8)]
    finally:
        d.provider.stop()
    
    scores = by(registry, "llm_eval_score_count", "provider", "model", "feature", "evaluator")
    unscored = sum(v for _, v in samples(registry, "llm_eval_failures_total"))
    assert set(scores) <= {("openai", "gpt-4.1-mini", "search", "factual_accuracy"),
                           ("anthropic", "claude-haiku-4-5", "support_triage", "factual_accuracy")}
    assert sum(scores.values()) == sum(r.ok for r in results) and unscored == sum(not r.ok for r in results)
    assert sum(scores.values()) + unscored == 8
    assert all(0 <= r.score <= 1 for r in results if r.ok)
    # the judge's own calls: gpt-4o-mini under feature eval-judge, with their cost
    judge = by(registry, "llm_requests_total", "model", "feature")
    assert judge[("gpt-4o-mini", "eval-judge")] == 8
    assert by(registry, "llm_cost_usd_total", "model", "feature")[("gpt-4o-mini", "eval-judge")] > 0
    # the answers scored were the evaluated models' (search and support_triage calls)
    assert judge[("gpt-4.1-mini", "search")] == 4 and judge[("claude-haiku-4-5", "support_triage")] == 4
