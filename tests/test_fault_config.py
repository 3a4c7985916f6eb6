"""Configuration errors are loud once and cheap forever (issue 19, point 2).

A bad price file, whatever is wrong with it, is a ``PricingError`` naming the file and the
reason; when the lazy default configuration meets one (``LLM_EXPORTER_PRICING`` set, the app
never calls ``configure``) the exporter logs once, uses the bundled table and records every
call, without reading the files again.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from llm_exporter import pricing
from llm_exporter.pricing import PricingError, load


def _expect(path: Path, reason: str) -> str:
    return re.escape(f"pricing file {path}: ") + reason


BAD_FILES = {
    # name: (content as bytes, reason regex after "pricing file <path>: ")
    "latin1": ("models:\n  café: {input: 1, output: 2}\n".encode("latin-1"),
               r"<file>: not UTF-8 text \(invalid byte at offset 13\)"),
    "utf16": ("models: {}\n".encode("utf-16"), r"<file>: not UTF-8 text \(invalid byte at offset 0\)"),
    "binary": (b"\x00\x01\x02models", r"<yaml>: invalid YAML \(unacceptable character #x0000"),
    "bad-yaml": (b"models: {acme: [unclosed\n", r"<yaml>: invalid YAML \("),
    "top-level-list": (b"- a\n- b\n", r"<top level>: must be a mapping, got list"),
    "negative": (b"models: {acme: {input: -1, output: 2}}\n", r"models\.acme\.input: must be a finite number >= 0, got -1"),
    "string-price": (b"models: {acme: {input: cheap, output: 2}}\n",
                     r"models\.acme\.input: must be a number \(USD per 1M tokens\), got 'cheap'"),
    "huge-int": (b"models: {acme: {input: 1" + b"0" * 400 + b", output: 2}}\n",
                 r"models\.acme\.input: must be a finite number >= 0, got 1000"),
    "inf": (b"models: {acme: {input: .inf, output: 2}}\n", r"models\.acme\.input: must be a finite number >= 0, got inf"),
    "missing-output": (b"models: {acme: {input: 1}}\n", r"models\.acme\.output: missing \(required: input and output\)"),
    "models-list": (b"models: [1, 2]\n", r"models: must be a mapping of model id -> prices, got list"),
    "deep": (b"[" * 5000 + b"]" * 5000, r"(<yaml>: nested too deeply|<top level>: must be a mapping, got list)"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_price_file_is_a_pricing_error_naming_file_and_reason(tmp_path, name):
    content, reason = BAD_FILES[name]
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content)
    with pytest.raises(PricingError, match=_expect(path, reason)):
        load(path)


def test_missing_directory_and_device_files(tmp_path):
    with pytest.raises(PricingError, match=_expect(tmp_path / "nope.yaml", r"<file>: not found$")):
        load(tmp_path / "nope.yaml")
    with pytest.raises(PricingError, match=_expect(tmp_path, r"<file>: not a regular file$")):
        load(tmp_path)
    with pytest.raises(PricingError, match=re.escape("pricing file /dev/zero: <file>: not a regular file")):
        load("/dev/zero")  # must not read forever


def test_unreadable_file(tmp_path, monkeypatch):
    path = tmp_path / "secret.yaml"
    path.write_text("models: {}\n")
    path.chmod(0)
    if os.geteuid() == 0:  # root reads mode 000 files: make open() fail as it would for a user
        def denied(file, *args, **kwargs):
            if str(file) == str(path):
                raise PermissionError(13, "Permission denied", str(path))
            return open(file, *args, **kwargs)
        monkeypatch.setattr(pricing, "open", denied, raising=False)
    with pytest.raises(PricingError, match=_expect(path, r"<file>: cannot read \(\[Errno 13\] Permission denied")):
        load(path)


def test_oversized_file(tmp_path, monkeypatch):
    limit = pricing.BUNDLED_PATH.stat().st_size + 100  # the bundled file still loads
    monkeypatch.setattr(pricing, "MAX_FILE_BYTES", limit)
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * limit + "\nmodels: {}\n")
    with pytest.raises(PricingError, match=_expect(path, rf"<file>: larger than {limit} bytes$")):
        load(path)


# --- the lazy default configuration with a bad LLM_EXPORTER_PRICING -----------------------

LAZY = textwrap.dedent("""
    import json, logging, sys, time
    records = []
    class Keep(logging.Handler):
        def emit(self, record):
            records.append((record.levelname, record.getMessage()))
    logging.getLogger("llm_exporter").addHandler(Keep())
    logging.getLogger("llm_exporter").propagate = False

    from llm_exporter import pricing, record_call
    reads = []
    real_read = pricing._read
    def counting_read(path):
        reads.append(str(path))
        return real_read(path)
    pricing._read = counting_read

    import prometheus_client
    t0 = time.perf_counter()
    record_call(provider="openai", model="gpt-4o", duration_s=0.5, input_tokens=1000, output_tokens=100)
    first = len(reads)
    for _ in range(199):
        record_call(provider="openai", model="gpt-4o", duration_s=0.5, input_tokens=1000, output_tokens=100)
    labels = dict(provider="openai", model="gpt-4o", feature="unknown", operation="chat")
    get = prometheus_client.REGISTRY.get_sample_value
    print(json.dumps({
        "reads_first_call": first, "reads_total": len(reads), "logs": records,
        "requests": get("llm_requests_total", dict(labels, finish_reason="stop")),
        "cost": get("llm_cost_usd_total", labels),
        "info": [s.labels for m in prometheus_client.REGISTRY.collect() if m.name == "llm_exporter_info"
                 for s in m.samples],
    }))
""")


@pytest.mark.parametrize("content", [b"models: {acme: [unclosed\n", b"\xff\xfe\x00garbage", None])
def test_lazy_default_with_bad_env_file_records_every_call_and_parses_once(tmp_path, content):
    path = tmp_path / "prices.yaml"
    if content is not None:  # None: the file is missing
        path.write_bytes(content)
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    env["LLM_EXPORTER_PRICING"] = str(path)
    proc = subprocess.run([sys.executable, "-c", LAZY], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    bundled = str(pricing.BUNDLED_PATH)
    # bundled + the user file (fails), then bundled again for the fallback; never again per call
    assert out["reads_first_call"] == 3 and out["reads_total"] == 3, out
    assert out["requests"] == 200.0
    assert out["cost"] == pytest.approx(200 * (1000 * 2.5 + 100 * 10.0) / 1e6)
    assert out["info"] == [{"version": "0.1.0", "pricing_version": load().version}]
    assert len(out["logs"]) == 1, out["logs"]
    level, message = out["logs"][0]
    assert level == "ERROR"
    assert message.startswith(f"llm_exporter: pricing file {path}: ")
    assert "(from $LLM_EXPORTER_PRICING); using the bundled price table only" in message
    assert bundled not in message


def test_explicit_configure_with_a_bad_file_still_raises(tmp_path, reg):
    from llm_exporter import configure

    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff")
    with pytest.raises(PricingError, match=_expect(bad, r"<file>: not UTF-8 text")):
        configure(pricing=bad)


def test_lazy_default_when_the_default_registry_refuses_our_names(tmp_path):
    script = textwrap.dedent("""
        import json, logging, prometheus_client
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append(record.getMessage())
        logging.getLogger("llm_exporter").addHandler(Keep())
        prometheus_client.Counter("llm_requests", "someone else's")  # takes llm_requests_total
        from llm_exporter import metrics, record_call
        from llm_exporter.exposition import generate_latest
        for _ in range(3):
            record_call(provider="openai", model="gpt-4o", duration_s=0.5)
        m = metrics.current()
        print(json.dumps({"private": m.registry is not prometheus_client.REGISTRY, "logs": records,
                          "requests": m.registry.get_sample_value("llm_requests_total", dict(
                              provider="openai", model="gpt-4o", feature="unknown", operation="chat",
                              finish_reason="stop")),
                          "served": "llm_requests_total{" in generate_latest().decode()}))
    """)
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("prometheus_multiproc_dir", "llm_exporter_pricing")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["private"] is True and out["requests"] == 3.0 and out["served"] is True
    assert len(out["logs"]) == 1 and "the default registry refused the llm_* metrics" in out["logs"][0]
