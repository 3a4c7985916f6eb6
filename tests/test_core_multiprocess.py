"""PROMETHEUS_MULTIPROC_DIR: real worker processes record, the parent serves exact totals."""

import os
import subprocess
import sys
import textwrap
import wsgiref.util

import pytest

from llm_exporter import contract
from prometheus_client.parser import text_string_to_metric_families

from llm_exporter import make_wsgi_app, mark_process_dead
from llm_exporter.testing import fresh_registry

WORKER = textwrap.dedent("""
    import os, sys
    from llm_exporter import record_call, start_call, metrics
    assert metrics.multiprocess_mode()
    n, leave_open = int(sys.argv[1]), sys.argv[2] == "open"
    for i in range(n):
        record_call(provider="openai", model="gpt-4o", feature="mp", duration_s=0.4,
                    input_tokens=100, output_tokens=10, time_to_first_token_s=0.1)
    if leave_open:
        start_call("openai", "gpt-4o", "mp")  # still in flight when the worker dies
    print(os.getpid())
""")


def scrape(monkeypatch, path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(path))
    environ = {"PATH_INFO": "/metrics"}
    wsgiref.util.setup_testing_defaults(environ)
    body = b"".join(make_wsgi_app()(environ, lambda s, h: None)).decode()
    samples = {}
    for fam in text_string_to_metric_families(body):
        for s in fam.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def val(samples, name, **labels):
    if name.startswith(HISTOGRAMS):  # histograms carry no feature label (the series budget)
        labels.pop("feature", None)
    return samples.get((name, tuple(sorted(labels.items()))))


HISTOGRAMS = tuple(m.name for m in contract.METRICS if m.type == "histogram" and "feature" not in m.labels)


LAB = dict(provider="openai", model="gpt-4o", feature="mp", operation="chat")


def test_worker_processes_aggregate_exactly(tmp_path, monkeypatch):
    fresh_registry()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    counts = {"100": "closed", "200": "closed", "300": "open"}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, n, mode], env=env, stdout=subprocess.PIPE, text=True)
             for n, mode in counts.items()]
    pids = []
    for p in procs:
        out, _ = p.communicate(timeout=60)
        assert p.returncode == 0
        pids.append(int(out.strip()))

    s = scrape(monkeypatch, tmp_path)
    assert val(s, "llm_requests_total", **LAB, finish_reason="stop") == 600
    assert val(s, "llm_tokens_total", **LAB, token_type="input") == 60_000
    assert val(s, "llm_tokens_total", **LAB, token_type="output") == 6_000
    assert val(s, "llm_request_duration_seconds_count", **LAB) == 600
    assert val(s, "llm_request_duration_seconds_bucket", **LAB, le="0.5") == 600
    assert val(s, "llm_request_duration_seconds_bucket", **LAB, le="0.25") == 0
    assert val(s, "llm_time_to_first_token_seconds_sum", **LAB) == pytest.approx(60.0)
    assert val(s, "llm_cost_usd_total", **LAB) == pytest.approx(600 * (100 * 2.5 + 10 * 10.0) / 1e6)
    assert val(s, "llm_exporter_info", version="0.1.0", pricing_version="2025.12.1") == 1
    inflight = dict(provider="openai", model="gpt-4o", feature="mp")
    assert val(s, "llm_in_flight_requests", **inflight) == 1  # livesum: the open call of the third worker

    mark_process_dead(pids[2])  # what the gunicorn child_exit hook does
    s = scrape(monkeypatch, tmp_path)
    assert val(s, "llm_in_flight_requests", **inflight) in (None, 0)
    assert val(s, "llm_requests_total", **LAB, finish_reason="stop") == 600  # counters survive


def test_mark_process_dead_is_a_noop_without_multiproc_dir(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    mark_process_dead(12345)


SDK_WORKER = textwrap.dedent("""
    import sys
    import openai
    from llm_exporter import instrument, metrics
    assert metrics.multiprocess_mode()
    client = instrument(openai.OpenAI(base_url=sys.argv[1], api_key="test", max_retries=1))
    msgs = [{"role": "user", "content": "hi"}]
    client.chat.completions.create(model="gpt-4o", messages=msgs)  # a 429, then the answer
    list(client.chat.completions.create(model="gpt-4o", messages=msgs, stream=True,
                                        stream_options={"include_usage": True}))
    try:
        client.with_options(max_retries=0).chat.completions.create(model="gpt-4o", messages=msgs)
    except openai.InternalServerError:
        pass
""")


def test_instrumented_sdk_calls_in_a_worker(tmp_path, monkeypatch):
    """Multi-process mode records an instrumented call when it ends (no batch: the parent reads
    the worker's files)."""
    from llm_exporter.fakeprovider import FakeProvider, Reply, openai_ratelimit_headers

    fresh_registry()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    usage = dict(prompt_tokens=100, completion_tokens=10)
    with FakeProvider() as server:
        server.enqueue(Reply(status=429, retry_after=0.01, headers=openai_ratelimit_headers(500, 0, 90000, 12)),
                       Reply(headers=openai_ratelimit_headers(500, 499, 90000, 89000), **usage),
                       Reply(text="a b c", **usage), Reply(status=500))
        subprocess.run([sys.executable, "-c", SDK_WORKER, server.openai_base_url], env=env, check=True, timeout=60)

    s = scrape(monkeypatch, tmp_path)
    lab = dict(LAB, feature="unknown")
    assert val(s, "llm_requests_total", **lab, finish_reason="stop") == 2
    assert val(s, "llm_requests_total", **lab, finish_reason="error") == 1
    assert val(s, "llm_errors_total", **lab, error_type="server_error") == 1
    assert val(s, "llm_retries_total", **lab) == 1
    assert val(s, "llm_tokens_total", **lab, token_type="input") == 200
    assert val(s, "llm_tokens_total", **lab, token_type="output") == 20
    assert val(s, "llm_time_to_first_token_seconds_count", **lab) == 1
    assert val(s, "llm_in_flight_requests", provider="openai", model="gpt-4o", feature="unknown") == 0
    rl = dict(provider="openai", model="gpt-4o")
    assert val(s, "llm_ratelimit_remaining", **rl, resource="requests") == 499
    assert val(s, "llm_ratelimit_remaining", **rl, resource="tokens") == 89000
