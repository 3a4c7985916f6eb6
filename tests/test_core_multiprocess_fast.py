"""FastMultiProcessCollector == prometheus-client's MultiProcessCollector on files real workers wrote."""

import os
import subprocess
import sys
import textwrap

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from llm_exporter import exposition, mark_process_dead
from llm_exporter.multiprocess import FastMultiProcessCollector, collecting_registry, fast_collector

# A worker: our metrics (record_call, an open call) plus user metrics of every kind and gauge
# mode. After each batch it prints its pid and waits for a line on stdin ("" = exit), so a
# test can scrape between batches (files grow under the collector's cached layouts).
WORKER = textwrap.dedent(r"""
    import os, random, sys, time
    from prometheus_client import Counter, Gauge, Histogram, Summary
    from llm_exporter import record_call, start_call
    seed, batches = int(sys.argv[1]), int(sys.argv[2])
    rnd = random.Random(seed)
    c = Counter("app_jobs", "Jobs done.", ["queue"])
    h = Histogram("app_latency_seconds", "Latency \\ with\nescapes.", ["route"], buckets=(0.1, 0.5, 2.5, 1e20))
    s = Summary("app_payload_bytes", "Payload size.")
    g = {m: Gauge(f"app_g_{m}", f"Gauge {m}.", ["k"], multiprocess_mode=m)
         for m in ("all", "liveall", "livesum", "sum", "max", "livemax", "min", "mostrecent", "livemostrecent")}
    for b in range(batches):
        for i in range(40):
            q = f"q{rnd.randrange(3 + 3 * b)}"
            c.labels(queue=q).inc(rnd.choice([1, 0.25, 3e-7, 12345678901234567]))
            h.labels(route=f'/r"{rnd.randrange(4)}\\').observe(rnd.random() * 3)
            s.observe(rnd.randrange(1000))
            for m, gauge in g.items():
                gauge.labels(k=f"k{rnd.randrange(2 + b)}").set(rnd.uniform(-5, 5))
        for j in range(5 + b * 5):
            record_call(provider="openai", model=f"m{j % 3}", feature=f"f{seed}",
                        finish_reason=rnd.choice(["stop", "length"]), duration_s=rnd.random() * 20,
                        input_tokens=rnd.randrange(1, 5000), output_tokens=rnd.randrange(0, 800),
                        time_to_first_token_s=rnd.random())
        start_call("anthropic", "claude", f"f{seed}")  # stays in flight: livesum
        print(os.getpid(), flush=True)
        if b + 1 < batches:
            sys.stdin.readline()
""")


def start(tmp_path, seed, batches=1):
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path))
    env.pop("prometheus_multiproc_dir", None)
    p = subprocess.Popen([sys.executable, "-c", WORKER, str(seed), str(batches)], env=env,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(p.stdout.readline())
    return p, pid


def run(tmp_path, seed):
    p, pid = start(tmp_path, seed)
    assert p.wait(timeout=60) == 0
    return pid


def families(metrics):
    """Family -> (type, help, sorted samples): order-insensitive, values exact."""
    out = {}
    for m in metrics:
        samples = sorted((s.name, tuple(sorted(s.labels.items())), s.value, s.timestamp) for s in m.samples)
        out[m.name] = (m.type, m.documentation, samples)
    return out


def reference(path):
    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=str(path))
    return reg


def parsed(body):
    return families(text_string_to_metric_families(body.decode("utf-8")))


def check_same(path, fast):
    ref = reference(path)
    want = families(ref.collect())
    assert families(fast.collect()) == want
    assert len(want) >= 15 and sum(len(v[2]) for v in want.values()) > 300
    # text: our renderer's body has the same samples as prometheus-client's rendering
    reg = CollectorRegistry()
    fast.register_in(reg)
    ours = exposition.generate_latest(reg)
    assert fast_collector(reg) is fast
    assert parsed(ours) == parsed(prometheus_client.generate_latest(ref))
    assert len(ours.splitlines()) == len(prometheus_client.generate_latest(ref).splitlines())
    return want


def test_same_samples_as_multiprocess_collector_across_scrapes(tmp_path):
    fast = FastMultiProcessCollector(str(tmp_path))
    run(tmp_path, 1)
    growing, _ = start(tmp_path, 2, batches=3)
    try:
        first = check_same(tmp_path, fast)
        assert first["app_jobs"][0] == "counter"
        growing.stdin.write("\n")
        growing.stdin.flush()
        growing.stdout.readline()  # batch 2 written: new series appended to known files
        second = check_same(tmp_path, fast)
        assert second != first
        dead = run(tmp_path, 3)
        check_same(tmp_path, fast)
        mark_process_dead(dead, str(tmp_path))  # its live* gauge files go; counters stay
        after = check_same(tmp_path, fast)
        assert not any(("pid", str(dead)) in s[1] for s in after["app_g_liveall"][2])
        assert any(("pid", str(dead)) in s[1] for s in after["app_g_all"][2])
        growing.stdin.write("\n")
        growing.stdin.flush()
        assert growing.wait(timeout=60) == 0
        check_same(tmp_path, fast)
    finally:
        if growing.poll() is None:
            growing.kill()
            growing.wait()


def test_served_body_in_multiprocess_mode_uses_fast_collector(tmp_path, monkeypatch):
    run(tmp_path, 4)
    run(tmp_path, 5)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    reg = collecting_registry()
    assert collecting_registry(str(tmp_path)) is reg  # cached per directory: caches survive scrapes
    assert isinstance(fast_collector(reg), FastMultiProcessCollector)
    body = exposition.generate_latest()
    want = parsed(prometheus_client.generate_latest(reference(tmp_path)))
    assert parsed(body) == want
    lab = (("model", "m0"), ("operation", "chat"), ("provider", "openai"))
    assert any(s[0] == "llm_request_duration_seconds_count" and s[1] == lab for s in want["llm_request_duration_seconds"][2])
