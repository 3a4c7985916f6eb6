"""Single-process storage (llm_exporter.store): fast text rendering and thread safety."""

import random
import threading
import urllib.request

import prometheus_client
import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from llm_exporter import contract, exposition, metrics, record_call, start_call, start_http_server, store
from llm_exporter.normalise import TokenParts
from llm_exporter.testing import fresh_registry

OA = dict(provider="openai", model="gpt-4o", feature="search", operation="chat")


def _alone(collector):
    """prometheus-client's own rendering of exactly the collector's samples."""
    reg = CollectorRegistry()
    reg.register(collector)
    return prometheus_client.generate_latest(reg).decode()


def _fill_varied(seed):
    rnd = random.Random(seed)
    tracer = TracerProvider().get_tracer("t")
    for i in range(300):
        span = tracer.start_as_current_span("llm") if i % 3 == 0 else None
        kw = dict(provider=rnd.choice(["openai", "anthropic", "bedrock"]),
                  model=rnd.choice(["gpt-4o", "claude-haiku-4-5", 'we"ird\\model', "unpriced-xyz"]),
                  feature=rnd.choice(["search", 'quote"d', "back\\slash", "üñí", None]),
                  operation=rnd.choice(["chat", "responses", "embeddings"]),
                  duration_s=rnd.choice([0.0, 0.003, 1.5, 7.25, 1e6]),  # 1e6: only the +Inf bucket
                  input_tokens=rnd.choice([0, 7, 123_456_789]),  # Go switches to exponents early
                  output_tokens=rnd.choice([0, 1, 40]),
                  finish_reason=rnd.choice(["stop", "length", "tool_calls", "content_filter"]),
                  time_to_first_token_s=rnd.choice([None, 0.0, 0.2]),
                  attempt=rnd.choice([0, 0, 2]),
                  error_type=rnd.choice([None, None, "rate_limit", "timeout"]),
                  cost_usd=rnd.choice([None, None, 1e-9, 0.125]))
        if kw["time_to_first_token_s"] is not None:
            kw["time_to_first_token_s"] = min(kw["time_to_first_token_s"], kw["duration_s"])
        if kw["error_type"] is not None:
            kw["finish_reason"] = "stop"  # becomes "error"
        if span is None:
            record_call(**kw)
        else:
            with span:
                record_call(**kw)
    start_call("openai", "gpt-4o", "left-open")  # an in-flight call at 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_text_is_byte_identical_to_prometheus_client(seed):
    reg = fresh_registry()
    _fill_varied(seed)
    c = metrics.current().collector
    assert c is not None
    text = c.render_text()
    assert text == _alone(c)
    # exemplars were stored (OpenMetrics shows them) but the text format never does
    om = prometheus_client.openmetrics.exposition.generate_latest(reg).decode()
    assert "trace_id=" in om and "trace_id" not in text
    values = [line.rpartition(" ")[2] for line in text.splitlines() if not line.startswith("#")]
    assert 'le="+Inf"' in text and any("e+" in x for x in values) and any("e-" in x for x in values)
    # the whole fast body: our families first, then the rest of the registry, same lines
    fast = exposition.generate_latest(reg).decode()
    assert fast.startswith(text)
    assert sorted(fast.splitlines()) == sorted(prometheus_client.generate_latest(reg).decode().splitlines())


def test_label_text_escaping_beyond_what_the_guard_lets_through():
    # newlines never reach the store through the guard; the renderer must still match
    s = store.Store({"llm_request_duration_seconds": (0.5, 100.0)})
    c = store.StoreCollector(s)
    for feature in ('new\nline', 'q"uo"te', "b\\s", "plain"):
        b = s.bundle(("openai", "m\n1", feature, "chat"))
        b.mark_unpriced()
        b.in_flight.inc()
        b.apply("stop", "timeout", 250.0, 0.1, 0.01, TokenParts(1, 2, 3, 4, 5), 0.5, 0.25, True, 2, True,
                {"trace_id": "ab" * 16})
    assert c.render_text() == _alone(c)
    assert 'feature="new\\nline"' in c.render_text()


def test_fast_path_keeps_the_apps_own_metrics_and_served_over_http():
    reg = fresh_registry()
    mine = Counter("app_things", "The app's own counter", ["kind"], registry=reg)
    mine.labels('a"b').inc(3)
    record_call(**OA, duration_s=0.5, input_tokens=10, output_tokens=3)
    body = exposition.generate_latest(reg).decode()
    assert 'app_things_total{kind="a\\"b"} 3.0' in body
    assert sorted(body.splitlines()) == sorted(prometheus_client.generate_latest(reg).decode().splitlines())
    srv, thread = start_http_server(0, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{srv.server_port}/metrics", timeout=10) as r:
            assert r.read().decode() == exposition.generate_latest().decode()
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def test_created_series_use_the_standard_rendering():
    reg = fresh_registry(created_series=True)
    try:
        record_call(**OA, duration_s=0.5)
        body = exposition.generate_latest(reg).decode()
        assert body == prometheus_client.generate_latest(reg).decode()
        assert "llm_requests_created{" in body and "llm_request_duration_seconds_created{" in body
    finally:
        fresh_registry()


def test_series_created_at_zero_as_prometheus_client_children():
    reg = fresh_registry()
    record_call(**OA, duration_s=0.5)  # no usage, not a stream
    names = {s.name for f in text_string_to_metric_families(exposition.generate_latest(reg).decode())
             for s in f.samples if s.labels.get("feature") == "search"}
    assert names == {"llm_requests_total", "llm_cost_usd_total", "llm_retries_total", "llm_in_flight_requests",
                     "llm_errors_total"}


def test_the_finish_reasons_and_error_types_alerts_use_start_at_zero():
    """So that rate() sees the first truncation, content filter or rate limit of a label set
    (a series born at 1 loses its first increment)."""
    reg = fresh_registry()
    record_call(**OA, duration_s=0.5)
    lab = dict(provider="openai", model=OA["model"], feature="search", operation="chat")
    requests = {r: reg.get_sample_value("llm_requests_total", dict(lab, finish_reason=r))
                for r in contract.FINISH_REASONS}
    assert requests == {"stop": 1.0, "length": 0.0, "tool_calls": None, "content_filter": 0.0, "error": 0.0,
                        "cancelled": None, "other": None}
    errors = {e: reg.get_sample_value("llm_errors_total", dict(lab, error_type=e)) for e in contract.ERROR_TYPES}
    assert {e: v for e, v in errors.items() if v is not None} == {"rate_limit": 0.0, "content_filter": 0.0}
    assert reg.get_sample_value("llm_refusals_total", lab) is None  # the detector is off
    reg = fresh_registry(refusal_detector=True)
    record_call(**OA, duration_s=0.5)
    assert reg.get_sample_value("llm_refusals_total", lab) == 0.0


def test_two_threads_recording_concurrently_give_exact_totals():
    reg = fresh_registry()
    n = 4000
    barrier = threading.Barrier(2)
    errors = []

    def work(feature):
        try:
            barrier.wait()
            for i in range(n):
                # both threads hit the same label set, and each its own one
                f = "shared" if i % 2 else feature
                call = start_call("openai", "gpt-4o", f, stream=True)
                call.first_token()
                call.set_usage(input_tokens=3, output_tokens=2)
                call.finish()
                record_call(provider="openai", model="gpt-4o", feature=f, duration_s=0.5,
                            input_tokens=5, output_tokens=1)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(f"t{k}",)) for k in range(2)]
    scrapes = 0
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):  # scrapes apply batches while the threads queue more
        list(reg.collect())
        scrapes += 1
    for t in threads:
        t.join(120)
    assert not errors and scrapes > 1
    lab = dict(provider="openai", model="gpt-4o", operation="chat")

    def v(name, **kw):
        return reg.get_sample_value(name, dict(lab, **kw))

    for f, calls in (("shared", 2 * n), ("t0", n), ("t1", n)):  # 2 recorded calls per iteration
        assert v("llm_requests_total", feature=f, finish_reason="stop") == calls
        assert v("llm_tokens_total", feature=f, token_type="input") == (3 + 5) * calls / 2
        assert v("llm_tokens_total", feature=f, token_type="output") == (2 + 1) * calls / 2
        assert reg.get_sample_value("llm_in_flight_requests",
                                    dict(provider="openai", model="gpt-4o", feature=f)) == 0
    # one histogram per (provider, model, operation), fed by the three label sets: 4 n calls
    assert reg.get_sample_value("llm_request_duration_seconds_count", lab) == 4 * n
    assert reg.get_sample_value("llm_request_duration_seconds_bucket", dict(lab, le="+Inf")) == 4 * n
    assert reg.get_sample_value("llm_tokens_per_request_count", dict(lab, direction="input")) == 4 * n
    assert reg.get_sample_value("llm_time_to_first_token_seconds_count", lab) == 2 * n


def test_failed_reconfigure_keeps_serving_the_previous_metrics(reg):
    """configure() into a registry that already has one of our names raises, and the
    metrics served so far (store collector included) stay registered and keep counting."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    from llm_exporter import record_call
    from llm_exporter.config import configure

    labels = dict(provider="openai", model="gpt-4o", feature="unknown", operation="chat", finish_reason="stop")
    record_call(provider="openai", model="gpt-4o", duration_s=1.0)
    clash = CollectorRegistry()
    Counter("llm_requests", "the app's own metric of the same name", registry=clash)
    with pytest.raises(ValueError):
        configure(registry=clash)
    assert reg.get_sample_value("llm_requests_total", labels) == 1
    record_call(provider="openai", model="gpt-4o", duration_s=1.0)
    assert reg.get_sample_value("llm_requests_total", labels) == 2
    assert b"llm_request_duration_seconds_count" in generate_latest(reg)


def test_fast_rendering_failure_falls_back_to_prometheus_client(monkeypatch):
    """A fault in our renderer must not break /metrics: the standard rendering is served."""
    from llm_exporter import metrics

    reg = fresh_registry()
    record_call(**OA, duration_s=0.5, input_tokens=10, output_tokens=3)

    def broken() -> str:
        raise RuntimeError("renderer bug")

    monkeypatch.setattr(metrics.current().collector, "render_text", broken)
    assert exposition.generate_latest(reg) == prometheus_client.generate_latest(reg)
