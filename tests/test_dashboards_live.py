"""Every dashboard query against real data: the exporter serves generated
traffic covering every dimension, the Debian `prometheus` scrapes it with the
repository's config and rules, and each panel target (template variables and
Grafana intervals substituted) goes through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import start_http_server

from llm_exporter import contract, localstack
from llm_exporter.quality import record_eval_failure, record_feedback, record_score
from llm_exporter.recorder import record_call, record_ratelimit
from llm_exporter.testing import fresh_registry
from llm_exporter.tracking import start_call
sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from test_dashboards_lib import dashboards, panels, substitute, targets

# Grafana's $__rate_interval is max(4 x scrape interval, step + scrape); with a
# 1 s scrape, 10 s keeps several samples in every window.
INTERVALS = {"$__rate_interval": "10s", "$__range": "1m", "$__interval": "2s"}
SCRAPE_INTERVAL = "1s"

# Targets that cannot return data from a minute-old Prometheus, and why. They
# still have to parse and execute without error.
NO_DATA_EXPECTED = {
    ("llm-latency-quality.json", "Response length vs one week ago", "B"):
        "offset 1w: the comparison series is a week older than this Prometheus",
}

PROVIDERS_MODELS = {
    "openai": ["gpt-4o-mini", "gpt-4o"],
    "anthropic": ["claude-sonnet-4-5", "claude-haiku-4-5"],
}
UNPRICED = ("openai", "acme-unpriced-model")
FEATURES = ["chat-support", "summarise", "search"]
OPERATIONS = {"openai": ["chat", "responses", "embeddings"], "anthropic": ["messages"]}


def one_round(i: int) -> None:
    """One call of every provider x model x feature, plus every finish reason,
    error type, stream, cache, retry, refusal, feedback and rate-limit header."""
    for provider, models in PROVIDERS_MODELS.items():
        ops = OPERATIONS[provider]
        for m_i, model in enumerate(models):
            for f_i, feature in enumerate(FEATURES):
                op = ops[(i + f_i) % len(ops)]
                record_call(provider=provider, model=model, feature=feature, operation=op,
                            duration_s=0.2 + 0.5 * f_i + m_i, input_tokens=1200, output_tokens=300 + 20 * i,
                            cache_read_tokens=400, cache_write_tokens=100, reasoning_tokens=50,
                            time_to_first_token_s=0.1 + 0.05 * f_i)
                record_call(provider=provider, model=model, feature=feature, operation=op,
                            duration_s=1.5, input_tokens=800, output_tokens=4096, finish_reason="length")
            record_call(provider=provider, model=model, feature=FEATURES[0], duration_s=0.3,
                        input_tokens=50, output_tokens=10, finish_reason="content_filter")
            record_call(provider=provider, model=model, feature=FEATURES[1], duration_s=0.4,
                        input_tokens=50, output_tokens=10, finish_reason="tool_calls", attempt=1)
            record_call(provider=provider, model=model, feature=FEATURES[2], duration_s=2.0,
                        error_type=contract.ERROR_TYPES[i % len(contract.ERROR_TYPES)])
            record_ratelimit(provider, model, "requests", remaining=900 - i, limit=1000)
            record_ratelimit(provider, model, "tokens", remaining=15000 - 100 * i, limit=200000)
            call = start_call(provider, model, FEATURES[0], stream=True)
            call.first_token()
            call.set_usage(input_tokens=100, output_tokens=20)
            call.check_refusal("I cannot help with that request.")
            call.finish()
            for rating in ("positive", "neutral", "negative"):
                record_feedback(FEATURES[i % len(FEATURES)], model, rating)
    record_call(provider=UNPRICED[0], model=UNPRICED[1], feature=FEATURES[0], duration_s=0.5,
                input_tokens=100, output_tokens=10)


def quality_round(i: int) -> None:
    """Hedged and plain answers (hedging detector on) and evaluation scores for every model,
    and an unscored judge answer."""
    for provider, models in PROVIDERS_MODELS.items():
        for m_i, model in enumerate(models):
            for text in ("I think it ships on Monday.", "It ships on Monday.", "It ships today."):
                call = start_call(provider, model, FEATURES[1], stream=True)
                call.first_token()
                call.set_usage(input_tokens=100, output_tokens=20)
                call.check_refusal(text)
                call.finish()
            for evaluator in ("factual_accuracy", "helpfulness"):
                record_score(evaluator, (0.35 + 0.1 * m_i + 0.05 * (i % 7)) % 1.0, provider=provider, model=model,
                             feature=FEATURES[2])
    record_eval_failure("factual_accuracy", "not_a_number")


@pytest.fixture(scope="module")
def exporter() -> Iterator[str]:
    registry = fresh_registry(refusal_detector=True, hedging_detector=True)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    # Calls left open so that llm_in_flight_requests is non-zero while scraped.
    open_calls = [start_call(p, ms[0], FEATURES[0]) for p, ms in PROVIDERS_MODELS.items()]

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            one_round(i)
            quality_round(i)
            i += 1
            stop.wait(0.25)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        stop.set()
        worker.join(5)
        for call in open_calls:
            call.finish()
        server.shutdown()
        server.server_close()
        thread.join(5)
        fresh_registry()  # leave later tests a clean, default-configured state


@pytest.fixture(scope="module")
def prometheus(exporter: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The repo's prometheus.yml and rules, unchanged; only the target files differ."""
    workdir = tmp_path_factory.mktemp("prometheus")
    config = localstack.prepare_prometheus_dir(workdir, llm_app=[exporter], scrape_interval=SCRAPE_INTERVAL)
    with localstack.Prometheus(config, data_dir=workdir / "data") as prom:
        rules = localstack.wait_until(lambda: api(prom.url, "/api/v1/rules")["data"]["groups"], what="rules loaded")
        assert any(r.get("type") == "recording" for g in rules for r in g["rules"])
        yield prom.url


def api(base: str, path: str, **params: str) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(params, doseq=True)}"
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:  # 400 with Prometheus's parse error in the body
        return json.load(e)


def wait_for_data(base: str, timeout: float = 30) -> None:
    """Until every counter has enough scrapes for a 10 s rate()."""
    deadline = time.monotonic() + timeout
    query = 'min(count_over_time(llm_requests_total{job="llm-app"}[10s]))'
    while time.monotonic() < deadline:
        result = api(base, "/api/v1/query", query=query)["data"]["result"]
        if result and float(result[0]["value"][1]) >= 4:
            return
        time.sleep(0.5)
    pytest.fail("Prometheus did not collect 4 scrapes of llm_requests_total in time")


def test_every_panel_query_returns_data(prometheus: str):
    wait_for_data(prometheus)
    now = time.time()
    failures, checked = [], 0
    for t in targets():
        expr = substitute(t.expr, intervals=INTERVALS)
        if t.instant:
            body = api(prometheus, "/api/v1/query", query=expr, time=str(now))
        else:  # what Grafana sends for a time series panel
            body = api(prometheus, "/api/v1/query_range", query=expr, start=str(now - 20), end=str(now), step="2")
        key = (t.file, t.panel, t.ref_id)
        checked += 1
        if body.get("status") != "success":
            failures.append(f"{key}: {body.get('error')}\n  {expr}")
            continue
        result = body["data"]["result"]
        if key in NO_DATA_EXPECTED:
            assert result == [], f"{key} was expected empty ({NO_DATA_EXPECTED[key]})"
        elif not result:
            failures.append(f"{key}: empty result\n  {expr}")
        elif not any(math.isfinite(float(v)) for r in result for _, v in r.get("values", [r.get("value")])):
            failures.append(f"{key}: only NaN/Inf values\n  {expr}")
    assert failures == []
    assert checked == len(targets()) >= 50


def test_variable_queries_list_the_traffic_values(prometheus: str):
    wait_for_data(prometheus)
    want = {
        "provider": set(PROVIDERS_MODELS),
        "model": {m for ms in PROVIDERS_MODELS.values() for m in ms} | {UNPRICED[1]},
        "feature": set(FEATURES),
    }
    d = dashboards()["llm-overview.json"]
    for v in d["templating"]["list"][1:]:
        query = v["query"]["query"]  # label_values(<selector>, <label>)
        selector, label = query[len("label_values("):-1].rsplit(", ", 1)
        body = api(prometheus, f"/api/v1/label/{label}/values", **{"match[]": substitute(selector)})
        assert body["status"] == "success"
        assert set(body["data"]) == want[label], label


def test_variables_filter_the_panels(prometheus: str):
    """With $provider=anthropic a by-model panel shows only Anthropic models."""
    wait_for_data(prometheus)
    t = next(t for t in targets() if t.panel == "Request rate by model")
    expr = substitute(t.expr, {"provider": "anthropic"}, INTERVALS)
    result = api(prometheus, "/api/v1/query", query=expr)["data"]["result"]
    assert {r["metric"]["provider"] for r in result} == {"anthropic"}
    assert {r["metric"]["model"] for r in result} == set(PROVIDERS_MODELS["anthropic"])


def test_firing_alerts_annotation_query_executes(prometheus: str):
    """ALERTS exists only once an alert fires (not within this test's minute): the
    annotation query must execute; its data is proven by the alerting tests."""
    for d in dashboards().values():
        for a in d["annotations"]["list"]:
            if "expr" in a:
                body = api(prometheus, "/api/v1/query", query=a["expr"])
                assert body["status"] == "success", body


def test_every_panel_of_every_dashboard_was_queried():
    ts = targets()
    titled = {(t.file, t.panel) for t in ts}
    for name, d in dashboards().items():
        for p in panels(d):
            if p["type"] != "row":
                assert (name, p["title"]) in titled
