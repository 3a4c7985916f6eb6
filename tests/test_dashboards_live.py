"""Every dashboard query against the demo's own traffic: the demo app (its traffic
generator, fake provider and instrumented SDK clients, default scenario) runs five minutes'
worth of requests sped up, the Debian `prometheus` scrapes it with the repository's config
and rules, and each panel target (template variables and Grafana intervals substituted)
goes through Prometheus's HTTP API over the whole run, as Grafana would show it.
"""

from __future__ import annotations

import json
import math
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llm_exporter import localstack
from llm_exporter.evaluation import DEFAULT_JUDGE_FEATURE
from llm_exporter.demo import CANARY_MODEL, DEFAULT_RPS, FEATURES, MODELS, Demo, DemoConfig, Traffic
from llm_exporter.testing import fresh_registry
sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import dashboards, panels, substitute, targets

# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape); with a
# 1 s scrape, 10 s keeps several samples in every window.
INTERVALS = {"$__rate_interval": "10s", "$__interval": "2s"}
SCRAPE_INTERVAL = "1s"

# The demo's first five minutes at its default rate, 15 x faster: the same requests in
# 20 s (the demo's rare outcomes are counted in requests, not seconds), fake delays x0.02.
FIVE_MINUTES = int(DEFAULT_RPS * 300)
SPEED_UP = 15
TIME_SCALE = 0.02
SEED = 5
DEADLINE_S = 90  # the whole module, Prometheus start to last query

# The one target that cannot return data from a minute-old Prometheus, and why. It
# still has to parse and execute without error.
NO_DATA_EXPECTED = {
    ("llm-latency-quality.json", "Response length vs one week ago", "B"):
        "offset 1w: the comparison series is a week older than this Prometheus",
}

PROVIDERS_MODELS = {
    "openai": {MODELS["fake"][r] for r in ("order", "embed", "answer", "reason")} | {CANARY_MODEL},
    "anthropic": {MODELS["fake"][r] for r in ("triage", "draft")},
}


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    """The demo app serving /metrics, its traffic not started yet."""
    registry = fresh_registry()
    cfg = DemoConfig(port=0, seed=SEED, rps=DEFAULT_RPS * SPEED_UP, time_scale=TIME_SCALE, status_every=0)
    d = Demo(cfg, registry=registry).start(traffic=False)
    assert d.state.current.name == "normal"
    try:
        yield d
    finally:
        d.stop()
        fresh_registry()  # leave later tests a clean, default-configured state


@pytest.fixture(scope="module")
def prometheus(demo: Demo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The repo's prometheus.yml and rules, unchanged; only the target files differ.
    The demo's traffic starts once Prometheus scrapes it, and runs FIVE_MINUTES requests."""
    began = time.monotonic()
    workdir = tmp_path_factory.mktemp("prometheus")
    config = localstack.prepare_prometheus_dir(workdir, llm_app=[f"127.0.0.1:{demo.port}"],
                                               scrape_interval=SCRAPE_INTERVAL)
    with localstack.Prometheus(config, data_dir=workdir / "data") as prom:
        rules = localstack.wait_until(lambda: api(prom.url, "/api/v1/rules")["data"]["groups"], what="rules loaded")
        assert any(r.get("type") == "recording" for g in rules for r in g["rules"])
        localstack.wait_until(lambda: localstack.query_value(prom.url, 'up{job="llm-app"}') == 1,
                              timeout=30, what="first scrape of the demo")
        start = time.time()
        demo.traffic = Traffic(demo.app, demo.config.rps, seed=SEED).start()
        demo.start_evaluations(interval_s=3.0 / SPEED_UP)  # the demo's judge job, as fast as its traffic
        localstack.wait_until(lambda: sum(v for k, v in demo.traffic.snapshot().items() if k != "dropped")
                              >= FIVE_MINUTES, timeout=60, interval=0.2, what=f"{FIVE_MINUTES} demo requests")
        time.sleep(3)  # three more scrapes
        yield {"url": prom.url, "start": start, "end": time.time(), "began": began}


def api(base: str, path: str, **params: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400 with Prometheus's parse error in the body
        return json.load(e)


def run_target(prom: dict, t, values: dict[str, str] | None = None) -> dict:
    """The target as Grafana queries it for a dashboard showing the whole run: a range
    query for time series, an instant query at the end (with $__range = the run) otherwise."""
    run_s = math.ceil(prom["end"] - prom["start"])
    expr = substitute(t.expr, values, {**INTERVALS, "$__range": f"{run_s}s"})
    if t.instant:
        return api(prom["url"], "/api/v1/query", query=expr, time=str(prom["end"]))
    return api(prom["url"], "/api/v1/query_range", query=expr, start=str(prom["start"]), end=str(prom["end"]), step="1")


def values_of(body: dict) -> dict[tuple, list[float]]:
    """Series labels (sorted items) -> every value over the range (or the instant value)."""
    return {tuple(sorted(r["metric"].items())): [float(v) for _, v in r.get("values", [r.get("value")])]
            for r in body["data"]["result"]}


def test_every_panel_query_returns_data(prometheus: dict):
    failures, checked = [], 0
    for t in targets():
        body = run_target(prometheus, t)
        key = (t.file, t.panel, t.ref_id)
        checked += 1
        if body.get("status") != "success":
            failures.append(f"{key}: {body.get('error')}\n  {t.expr}")
            continue
        result = body["data"]["result"]
        if key in NO_DATA_EXPECTED:
            assert result == [], f"{key} was expected empty ({NO_DATA_EXPECTED[key]})"
        elif not result:
            failures.append(f"{key}: empty result\n  {t.expr}")
        elif not any(math.isfinite(float(v)) for r in result for _, v in r.get("values", [r.get("value")])):
            failures.append(f"{key}: only NaN/Inf values\n  {t.expr}")
    assert failures == []
    assert checked == len(targets()) >= 51
    assert len(NO_DATA_EXPECTED) == 1


def _target(file: str, panel: str, ref_id: str = "A"):
    return next(t for t in targets() if (t.file, t.panel, t.ref_id) == (file, panel, ref_id))


def test_the_rare_event_panels_show_the_demo_s_events(prometheus: dict):
    """Not only an answer: the default scenario's refusals, content-filter finishes, user
    ratings and unpriced canary calls are on the panels (non-zero) within its first five minutes."""
    def series(file: str, panel: str) -> dict[tuple, list[float]]:
        body = run_target(prometheus, _target(file, panel))
        assert body["status"] == "success", body
        return values_of(body)

    def peak(file: str, panel: str) -> float:
        return max(v for vs in series(file, panel).values() for v in vs if math.isfinite(v))

    assert peak("llm-latency-quality.json", "Refusal rate by model") > 0
    assert peak("llm-latency-quality.json", "Refusals in range") >= 1
    assert peak("llm-overview.json", "Content-filter rate by model") > 0
    ratings = {dict(k).get("rating") for k, vs in series("llm-latency-quality.json", "User feedback ratings").items()
               if max(vs) > 0}
    assert ratings == {"positive", "neutral", "negative"}
    share = series("llm-latency-quality.json", "Positive feedback share")
    assert list(share) == [()] and 0.5 < share[()][0] < 0.9  # 70 % of ratings are positive
    unpriced = {dict(k)["model"]: vs[0] for k, vs in series("llm-cost.json", "Unpriced models").items()}
    assert unpriced[CANARY_MODEL] >= 2
    assert {m for m, v in unpriced.items() if v > 0} == {CANARY_MODEL}
    assert set(unpriced) == {m for ms in PROVIDERS_MODELS.values() for m in ms}
    assert peak("llm-cost.json", "Unpriced calls / s") > 0
    coverage = series("llm-overview.json", "Priced-call coverage")
    assert 0.9 < min(coverage[()]) < 1


def test_variable_queries_list_the_traffic_values(prometheus: dict):
    want = {
        "provider": set(PROVIDERS_MODELS),
        "model": {m for ms in PROVIDERS_MODELS.values() for m in ms},
        "feature": set(FEATURES) | {DEFAULT_JUDGE_FEATURE},  # the demo's judge calls have their own feature
    }
    d = dashboards()["llm-overview.json"]
    for v in d["templating"]["list"][1:]:
        query = v["query"]["query"]  # label_values(<selector>, <label>)
        selector, label = query[len("label_values("):-1].rsplit(", ", 1)
        body = api(prometheus["url"], f"/api/v1/label/{label}/values", **{"match[]": substitute(selector)})
        assert body["status"] == "success"
        assert set(body["data"]) == want[label], label


def test_variables_filter_the_panels(prometheus: dict):
    """With $provider=anthropic a by-model panel shows only Anthropic models."""
    body = run_target(prometheus, _target("llm-overview.json", "Request rate by model"), {"provider": "anthropic"})
    result = body["data"]["result"]
    assert {r["metric"]["provider"] for r in result} == {"anthropic"}
    assert {r["metric"]["model"] for r in result} == PROVIDERS_MODELS["anthropic"]


def test_the_check_is_bounded_in_time(prometheus: dict):
    assert time.monotonic() - prometheus["began"] < DEADLINE_S


def test_firing_alerts_annotation_query_executes(prometheus: dict):
    """ALERTS exists only once an alert fires (not within this test's minute): the
    annotation query must execute; its data is proven by the alerting tests."""
    for d in dashboards().values():
        for a in d["annotations"]["list"]:
            if "expr" in a:
                body = api(prometheus["url"], "/api/v1/query", query=a["expr"])
                assert body["status"] == "success", body


def test_every_panel_of_every_dashboard_was_queried():
    ts = targets()
    titled = {(t.file, t.panel) for t in ts}
    for name, d in dashboards().items():
        for p in panels(d):
            if p["type"] != "row":
                assert (name, p["title"]) in titled
