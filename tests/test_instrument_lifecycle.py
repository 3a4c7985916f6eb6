"""When a call is recorded: at its end, under load, in every scrape and in every process."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from urllib.parse import urlencode
from wsgiref.util import setup_testing_defaults

from openai import OpenAI
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

import llm_exporter
from llm_exporter import exposition, track
from llm_exporter.fakeprovider import Reply, openai_ratelimit_headers
from llm_exporter.testing import fresh_registry
from sdk_harness import MSGS

LAB = dict(provider="openai", model="gpt-4o-mini", feature="unknown", operation="chat")


def test_calls_recorded_flat_out_by_threads_are_in_every_scrape_that_follows_them():
    """8 threads record as fast as they can while another scrapes: every call finished before a
    scrape started is in it, and nothing queues up: the memory held meanwhile stays flat (records
    queued for a batch held about 3 MB at this size, and grew without bound at full speed).
    Bounded: 8 x 3,000 calls."""
    import tracemalloc

    reg = fresh_registry()
    with track(provider="openai", model="gpt-4o-mini"):
        pass  # the label set exists before the memory is measured
    per_thread, threads = 3000, 8
    finished = [0] * threads
    stop = threading.Event()
    scrapes = [0]
    missing: list[tuple[int, float]] = []  # (calls finished before a scrape, what it saw), when fewer

    def record(i: int) -> None:
        for _ in range(per_thread):
            with track(provider="openai", model="gpt-4o-mini"):
                pass
            finished[i] += 1

    def scrape() -> None:
        while not stop.is_set():
            before = sum(finished)
            seen = reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="stop")) - 1  # minus the first
            scrapes[0] += 1
            if seen < before:
                missing.append((before, seen))

    workers = [threading.Thread(target=record, args=(i,)) for i in range(threads)]
    scraper = threading.Thread(target=scrape)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        scraper.start()
        for w in workers:
            w.start()
        for w in workers:
            w.join(60)
        stop.set()
        scraper.join(60)
        held = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert not any(w.is_alive() for w in workers) and not scraper.is_alive()
    assert held < 1_000_000, f"{held:,} bytes held while recording"
    assert scrapes[0] >= 3
    assert not missing, missing[:3]
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="stop")) == per_thread * threads + 1


def _scrape(app, **query: str) -> str:
    environ = {"QUERY_STRING": urlencode(query, doseq=True)}
    setup_testing_defaults(environ)
    out: list[str] = []
    body = app(environ, lambda status, headers: out.append(status))
    assert out == ["200 OK"]
    return b"".join(body).decode()


def test_a_filtered_scrape_sees_rate_limits_and_label_overflow_right_after_the_call(server):
    """``?name[]=`` scrapes a restricted registry: the gauges and counts are there without any
    other scrape first."""
    fresh_registry(label_limits={"model": 1})
    app = exposition.make_wsgi_app()
    client = llm_exporter.instrument(OpenAI(base_url=server.openai_base_url, api_key="test"))
    server.reset()
    server.enqueue(Reply(headers=openai_ratelimit_headers(500, 321, 90000, 89000)), Reply())
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    client.chat.completions.create(model="gpt-4o", messages=MSGS)  # folded: model budget is 1
    body = _scrape(app, **{"name[]": ["llm_ratelimit_remaining", "llm_label_overflow_total"]})
    assert 'llm_ratelimit_remaining{model="gpt-4o-mini",provider="openai",resource="requests"} 321.0' in body
    assert 'llm_label_overflow_total{label="model"} 1.0' in body
    client.close()


WORKER = textwrap.dedent("""
    import gc, sys
    from openai import OpenAI
    import llm_exporter
    client = llm_exporter.instrument(OpenAI(base_url=sys.argv[1], api_key="test"))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
                                            stream=True)
    next(iter(stream))
    del stream  # dropped, never closed; the worker exits right after
    gc.collect()
""")


def test_a_worker_that_drops_a_stream_and_exits_has_recorded_it_as_cancelled(server, tmp_path):
    """Multi-process mode: the cancellation is in the worker's file before it exits."""
    server.reset()
    server.enqueue(Reply(text=" ".join(f"w{i}" for i in range(50)), chunk_delay_s=0.002))
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    subprocess.run([sys.executable, "-c", WORKER, server.openai_base_url], env=env, check=True, timeout=60)
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(tmp_path))
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="cancelled")) == 1
    assert reg.get_sample_value("llm_errors_total", dict(LAB, error_type="cancelled")) == 1



def test_a_stream_without_an_event_generator_is_never_recorded_as_stop(caplog):
    """The hook point missing (an SDK whose stream keeps no ``_iterator``): the call is recorded
    when the method returns, as ``other``, and the missing seam is logged once."""
    from llm_exporter.instrumentation import _calls

    reg = fresh_registry()
    spec = _calls.MethodSpec(("chat", "completions"), "create", "chat")
    with caplog.at_level("WARNING", logger="llm_exporter"):
        for _ in range(3):
            kwargs = {"model": "gpt-4o-mini", "stream": True}
            state = _calls._open("openai", spec, kwargs, None)
            _calls._returned(state, object(), kwargs)  # a "stream" the reader cannot attach to
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="other")) == 3
    assert reg.get_sample_value("llm_requests_total", dict(LAB, finish_reason="stop")) == 0
    assert reg.get_sample_value("llm_in_flight_requests", dict(provider="openai", model="gpt-4o-mini",
                                                                feature="unknown")) == 0
    assert len([r for r in caplog.records if "has no event generator to read" in r.getMessage()]) == 1
