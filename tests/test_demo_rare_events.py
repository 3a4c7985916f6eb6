"""The demo's rare outcomes: refusals the detector flags, user feedback, content-filter
finishes and a canary on a model the price table does not know all happen within five
minutes of the default scenario (at the default rate), and none of them fires an alert
in that scenario.

The traffic runs sequentially with a seed and a small time scale, as in test_demo.py.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from llm_exporter import pricing
from llm_exporter.cli import _demo_config, build_parser
from llm_exporter.config import settings
from llm_exporter.demo import (
    CANARY_EVERY,
    CANARY_MODEL,
    CANARY_REQUESTS,
    CONTENT_FILTER_EVERY,
    DEFAULT_RPS,
    FEATURES,
    REFUSALS,
    SCENARIOS,
    _FEATURE_WEIGHTS,
    _WORDS,
    Demo,
    DemoConfig,
    Traffic,
    content_filter_due,
)
from llm_exporter.quality import RefusalDetector
from llm_exporter.testing import fresh_registry

ROOT = Path(__file__).resolve().parents[1]
ALERTS = yaml.safe_load((ROOT / "prometheus" / "rules" / "llm-alerts.yaml").read_text())
RULES = yaml.safe_load((ROOT / "prometheus" / "rules" / "llm-recording-rules.yaml").read_text())
FIVE_MINUTES = int(DEFAULT_RPS * 300)  # user requests in the demo's first five minutes
SEED = 5
TIME_SCALE = 0.002


def _alert(name: str) -> dict:
    return next(r for g in ALERTS["groups"] for r in g["rules"] if r.get("alert") == name)


def _seconds(duration: str) -> int:
    return int(duration[:-1]) * {"s": 1, "m": 60, "h": 3600}[duration[-1]]


def _snapshot(registry) -> list[tuple[str, dict, float]]:
    """Every sample, taken before a later configure() replaces the registry's families."""
    return [(s.name, s.labels, s.value) for m in registry.collect() for s in m.samples]


def _by(snapshot, name: str, *keys: str) -> dict[tuple, float]:
    out: dict[tuple, float] = {}
    for sample_name, labels, value in snapshot:
        if sample_name == name:
            k = tuple(labels[x] for x in keys)
            out[k] = out.get(k, 0.0) + value
    return out


@pytest.fixture(scope="module")
def five_minutes():
    """FIVE_MINUTES user requests of the default scenario; the provider's refusals counted."""
    registry = fresh_registry()
    demo = Demo(DemoConfig(port=0, seed=SEED, time_scale=TIME_SCALE, status_every=0), registry=registry)
    app = demo.build()
    assert demo.state.current.name == "normal"
    detector_on = settings().refusal_detector is not None
    policy = demo.provider.policy
    refusals_sent: Counter[str] = Counter()

    def counting(req):
        reply = policy(req)
        if reply.text in REFUSALS:
            refusals_sent[req.model] += 1
        return reply

    demo.provider.policy = counting
    traffic = Traffic(app, rps=1, seed=SEED)
    try:
        for _ in range(FIVE_MINUTES):
            traffic.run_one()
    finally:
        demo.provider.stop()
    yield {"registry": _snapshot(registry), "policy": policy, "traffic": traffic, "refusals_sent": refusals_sent,
           "detector_on": detector_on}
    fresh_registry()


def test_the_demo_turns_the_refusal_detector_on(five_minutes, monkeypatch):
    assert five_minutes["detector_on"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")  # real mode too (no call is made)
    fresh_registry()
    Demo(DemoConfig(port=0, real=True), registry=fresh_registry()).build()
    assert settings().refusal_detector is not None


def test_refusals_are_answered_and_every_one_is_detected(five_minutes):
    sent = five_minutes["refusals_sent"]
    detected = _by(five_minutes["registry"], "llm_refusals_total", "model")
    assert sum(sent.values()) >= 5
    # with the detector on, every label set has the series (at 0 until its first refusal)
    assert {m: n for m, n in detected.items() if n} == {(m,): float(n) for m, n in sent.items()}


def test_content_filter_finishes_follow_the_schedule(five_minutes):
    policy = five_minutes["policy"]
    filtered = {k: v for k, v in _by(five_minutes["registry"], "llm_requests_total", "provider", "model",
                                     "finish_reason").items() if k[2] == "content_filter" and v}  # 0s: eager series
    expected = {(p, m, "content_filter"): float(sum(content_filter_due(n) for n in range(1, answers + 1)))
                for (p, m), answers in policy._answers.items()}
    assert filtered == {k: v for k, v in expected.items() if v}
    # every model with 50 answers had its two early content-filter finishes
    assert sum(1 for (_, _, _), v in filtered.items() if v == 2) >= 4


def test_users_rate_a_quarter_of_the_answers(five_minutes):
    ratings = _by(five_minutes["registry"], "llm_feedback_total", "rating")
    answered = five_minutes["traffic"].outcomes["ok"]
    assert set(ratings) == {("positive",), ("neutral",), ("negative",)}
    assert 0.18 < sum(ratings.values()) / answered < 0.32
    assert ratings[("positive",)] > ratings[("neutral",)] > ratings[("negative",)]
    models = {m for (m,) in _by(five_minutes["registry"], "llm_feedback_total", "model")}
    called = {m for (m,) in _by(five_minutes["registry"], "llm_requests_total", "model")}
    assert models <= called and "text-embedding-3-small" not in models


def test_the_canary_makes_unpriced_calls_in_the_first_requests_only(five_minutes):
    app_weights = dict(zip(FEATURES, _FEATURE_WEIGHTS))
    order_summaries = 0
    canary_calls = 0
    for i in range(FIVE_MINUTES):  # the picks of the seeded traffic, as Traffic.run_one draws them
        rng = random.Random(f"{SEED}:{i}")
        if rng.choices(list(app_weights), list(app_weights.values()))[0] == "order_summary":
            canary_calls += i < CANARY_REQUESTS and order_summaries % CANARY_EVERY == 1
            order_summaries += 1
    unpriced = _by(five_minutes["registry"], "llm_unpriced_requests_total", "provider", "model")
    assert canary_calls >= 10
    assert unpriced == {("openai", CANARY_MODEL): float(canary_calls)}
    calls = _by(five_minutes["registry"], "llm_requests_total", "model", "feature")
    assert calls[(CANARY_MODEL, "order_summary")] == canary_calls
    assert _by(five_minutes["registry"], "llm_cost_usd_total", "model")[(CANARY_MODEL,)] == 0


def test_the_canary_model_has_no_price_and_refusals_match_the_detector():
    assert pricing.load().lookup(CANARY_MODEL) is None
    detector = RefusalDetector()
    assert all(detector.is_refusal(text) for text in REFUSALS)
    assert not detector.is_refusal(" ".join(_WORDS))  # a normal answer is never a refusal


def test_the_rare_outcomes_fire_no_alert_in_the_normal_scenario():
    # LLMContentFilterSpike: more than N content-filtered calls per call path in an hour.
    spike = _alert("LLMContentFilterSpike")
    limit = int(re.search(r"\)\s*>\s*(\d+)\s*$", spike["expr"].strip()).group(1))
    assert "[1h]" in spike["expr"] and SCENARIOS["normal"].p_content_filter == 0
    busiest_per_hour = int(DEFAULT_RPS * 3600 * max(_FEATURE_WEIGHTS))
    due = [n for n in range(1, 4 * CONTENT_FILTER_EVERY + 1) if content_filter_due(n)]
    worst = max(sum(1 for d in due if start <= d < start + busiest_per_hour) for start in due)
    assert worst <= limit, (worst, limit)
    # LLMUnpricedModel: the unpriced 5m rate above 0 for its whole `for`: the canary ends
    # (and its 5-minute rate falls to 0) before that.
    unpriced = _alert("LLMUnpricedModel")
    assert unpriced["expr"].strip() == "llm:unpriced_requests:rate5m > 0"
    rule = next(r for g in RULES["groups"] for r in g["rules"] if r.get("record") == "llm:unpriced_requests:rate5m")
    assert "[5m]" in rule["expr"]
    assert CANARY_REQUESTS / DEFAULT_RPS + 300 < _seconds(unpriced["for"])


def test_the_compose_demo_service_and_scripts_demo_build_the_same_demo():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    command = [c.replace("${LLM_DEMO_SCENARIO:-normal}", "normal") for c in compose["services"]["demo"]["command"]]
    for argv in (command, ["stack"]):  # scripts/demo runs `llm-exporter stack`
        cfg = _demo_config(build_parser().parse_args(argv))
        assert (cfg.scenario, cfg.rps, cfg.time_scale, cfg.real) == ("normal", DEFAULT_RPS, 1.0, False)
        cfg.port = 0
        demo = Demo(cfg, registry=fresh_registry())
        try:
            demo.build()
            assert settings().refusal_detector is not None
        finally:
            demo.provider.stop()
    fresh_registry()
