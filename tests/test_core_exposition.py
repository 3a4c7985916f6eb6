"""/metrics over HTTP (text and OpenMetrics), WSGI, ASGI, and trace_id exemplars."""

import asyncio
import re
import urllib.request
import wsgiref.util

import pytest
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter

from llm_exporter import make_asgi_app, make_wsgi_app, record_call, start_http_server, track
from llm_exporter.testing import fresh_registry

OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
LAB = 'feature="unknown",model="gpt-4o",operation="chat",provider="openai"'


@pytest.fixture
def server():
    started = []

    def start(**kw):
        srv, thread = start_http_server(0, addr="127.0.0.1", **kw)
        started.append((srv, thread))
        return f"http://127.0.0.1:{srv.server_port}/metrics"

    yield start
    for srv, thread in started:
        srv.shutdown()
        srv.server_close()
        thread.join(5)


def get(url, accept=None):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def test_http_text_and_openmetrics(server):
    reg = fresh_registry()
    url = server()
    record_call(provider="openai", model="gpt-4o", duration_s=0.3, input_tokens=10, output_tokens=5)
    ctype, body = get(url)
    assert ctype.startswith("text/plain")
    assert ('llm_requests_total{feature="unknown",finish_reason="stop",model="gpt-4o",operation="chat",'
            'provider="openai"} 1.0') in body
    assert f'llm_tokens_total{{{LAB},token_type="output"}} 5.0' in body
    assert 'llm_exporter_info{pricing_version="2025.12.1",version="0.1.0"} 1.0' in body
    assert "_created" not in body
    ctype, body = get(url, OPENMETRICS)
    assert ctype.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "# TYPE llm_requests counter" in body
    # a later configure(registry=...) is served by the same server
    reg2 = fresh_registry()
    record_call(provider="anthropic", model="claude-haiku-4-5", duration_s=0.3)
    _, body = get(url)
    assert 'provider="anthropic"' in body and 'provider="openai"' not in body
    assert reg is not reg2


def test_users_own_metrics_share_the_default_registry(server):
    reg = fresh_registry()
    Counter("app_orders", "orders", registry=reg).inc(3)
    record_call(provider="openai", model="gpt-4o", duration_s=0.3)
    _, body = get(server())
    assert "app_orders_total 3.0" in body and "llm_requests_total{" in body


def test_explicit_registry_and_name_filter(server):
    fresh_registry()
    other = CollectorRegistry()
    Counter("only_here", "x", registry=other).inc()
    _, body = get(server(registry=other))
    assert "only_here_total 1.0" in body and "llm_" not in body
    record_call(provider="openai", model="gpt-4o", duration_s=0.3)
    _, body = get(server() + "?name[]=llm_retries_total")
    assert "llm_retries_total{" in body and "llm_requests_total" not in body


def test_exemplars_carry_the_active_trace_id(server):
    fresh_registry()
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("llm-call") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        record_call(provider="openai", model="gpt-4o", duration_s=0.3, input_tokens=10, output_tokens=5,
                    time_to_first_token_s=0.1)
        with track(provider="openai", model="gpt-4o", feature="tracked"):
            pass
    record_call(provider="openai", model="gpt-4o", feature="no-span", duration_s=0.3)
    _, body = get(server(), OPENMETRICS)
    # histograms are per provider/model/operation: each bucket keeps the last exemplar in it
    line = next(x for x in body.splitlines() if x.startswith("llm_request_duration_seconds_bucket{") and 'le="0.5"' in x)
    assert "feature=" not in line and re.search(r'# \{trace_id="%s"\} 0\.3 \d+' % trace_id, line), line
    assert re.search(r'llm_time_to_first_token_seconds_bucket\{[^}]*le="0\.1"[^}]*\} 1\.0 # \{trace_id="%s"\}'
                     % trace_id, body)
    assert re.search(r'llm_tokens_per_request_bucket\{direction="output"[^}]*le="10\.0"[^}]*\} 1\.0 # \{trace_id="%s"\}'
                     % trace_id, body)
    # the tracked call (0 s, inside the span) has its exemplar in the lowest bucket; the call
    # without a span, recorded last, left the 0.5 bucket's exemplar the span's (0.3 s)
    tracked = next(x for x in body.splitlines() if x.startswith("llm_request_duration_seconds_bucket{")
                   and 'le="0.01"' in x)
    assert trace_id in tracked and "# {" in tracked
    # the classic text format never shows exemplars
    _, text = get(server())
    assert "trace_id" not in text


def test_exemplars_can_be_switched_off(server):
    fresh_registry(exemplars=False)
    with TracerProvider().get_tracer("t").start_as_current_span("s"):
        record_call(provider="openai", model="gpt-4o", duration_s=0.3)
    _, body = get(server(), OPENMETRICS)
    assert "trace_id" not in body


def test_wsgi_app():
    fresh_registry()
    record_call(provider="openai", model="gpt-4o", duration_s=0.3)
    app = make_wsgi_app()
    environ = {"PATH_INFO": "/metrics", "HTTP_ACCEPT": OPENMETRICS}
    wsgiref.util.setup_testing_defaults(environ)
    status = {}
    body = b"".join(app(environ, lambda s, h: status.update(s=s, h=dict(h))))
    assert status["s"].startswith("200")
    assert status["h"]["Content-Type"].startswith("application/openmetrics-text")
    assert b'llm_requests_total{feature="unknown",finish_reason="stop"' in body


def test_asgi_app():
    fresh_registry()
    record_call(provider="openai", model="gpt-4o", duration_s=0.3)
    app = make_asgi_app()
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(msg):
        sent.append(msg)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": [(b"accept", b"text/plain")]}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200
    assert b"llm_request_duration_seconds_count{" in sent[1]["body"]
