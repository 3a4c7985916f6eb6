"""Three replicas, one killed and restarted mid-run, scraped by the real Prometheus:

three processes (tests/replica_app.py: llm_exporter.record_call + /metrics, each on its own
free port) -> Debian prometheus with the repository's prometheus.yml and the mixin's rules
-> Debian prometheus-alertmanager with alertmanager.yml -> capture receiver.

Proves: the recording rules' totals equal what the three processes recorded (within one
scrape interval of their calls), the restarted replica's counters did reset in the same
series, the error-burst alert exists once per label set (no instance/pod label), survives
the restart without being reset, and pages PagerDuty once for its label set.

Intervals are shortened through configuration as in tests/test_e2e_alerting.py (1s scrapes
from the target file, rules rendered with tests/fast-rules.libsonnet). Alertmanager runs
alertmanager.yml with one line changed: global.pagerduty_url points at this test's capture
receiver on a free port instead of the fixed 9099 (asserted below), so the test never waits
for another live test's receiver.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from llm_exporter import localstack
from llm_exporter.capture import PAGERDUTY_PATH, SLACK_PATH, start_capture
from fast_rules import render_fast_rules

ROOT = Path(__file__).resolve().parent.parent
APP = Path(__file__).resolve().parent / "replica_app.py"
PER_SECOND = 10  # calls per second per feature per replica
SCRAPE_S = 1.0
RUN_S = 36.0  # how long the replicas record calls
KILL_AT_S = 14.0
DOWN_S = 2.0
BURST = 'feature="k8s-burst"'


class Replica:
    """A replica process; ``totals`` is the last line it printed (what it had recorded)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.totals: dict = {}
        self.done = threading.Event()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, seconds: float) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "exporter"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.done.clear()
        self.proc = subprocess.Popen(
            [sys.executable, str(APP), "--port", str(self.port), "--seconds", str(seconds),
             "--per-second", str(PER_SECOND)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        ready = threading.Event()

        def read(proc=self.proc) -> None:
            for line in proc.stdout:
                doc = json.loads(line)
                self.totals = {k: v for k, v in doc.items() if k.startswith("k8s-")}
                if doc.get("ready"):
                    ready.set()
                if doc.get("done"):
                    self.done.set()

        threading.Thread(target=read, daemon=True).start()
        assert ready.wait(30), self.proc.stderr.read() if self.proc.poll() is not None else "replica not ready"

    def kill(self) -> dict:
        """SIGKILL (no goodbye, like an OOM kill); returns what it had recorded."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        time.sleep(0.2)  # the reader has consumed every line the process printed
        return dict(self.totals)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _alerts(prom_url: str, name: str) -> list[dict]:
    return [a for a in localstack.alerts(prom_url) if a["labels"]["alertname"] == name]


def _am_config_with_capture(am_dir: Path, capture_url: str) -> Path:
    """alertmanager.yml and its templates, with only pagerduty_url moved to ``capture_url``."""
    shipped = localstack.ALERTMANAGER_CONFIG.read_text()
    old = yaml.safe_load(shipped)["global"]["pagerduty_url"]
    text = shipped.replace(old, capture_url + PAGERDUTY_PATH)
    assert text.count(capture_url) == 1
    am_dir.mkdir(parents=True, exist_ok=True)
    config = am_dir / "alertmanager.yml"
    config.write_text(text)
    shutil.copytree(localstack.ALERTMANAGER_DIR / "templates", am_dir / "templates")
    want, got = yaml.safe_load(shipped), yaml.safe_load(text)
    want["global"].pop("pagerduty_url"), got["global"].pop("pagerduty_url")
    assert want == got
    return config


def test_three_replicas_one_restarting_total_and_page_once(tmp_path):
    rules = render_fast_rules(tmp_path)
    replicas = [Replica(localstack.free_port()) for _ in range(3)]
    capture = start_capture("127.0.0.1", 0)
    routing_key = "k8s" + secrets.token_hex(14)
    try:
        am_dir = tmp_path / "alertmanager"
        am_config = _am_config_with_capture(am_dir, capture.url)
        localstack.write_alertmanager_secrets(am_dir, pagerduty_routing_key=routing_key,
                                              slack_api_url=capture.url + SLACK_PATH)
        prom_port = localstack.free_port()
        with localstack.Alertmanager(am_config, workdir=am_dir) as am:
            config = localstack.prepare_prometheus_dir(
                tmp_path / "prometheus", llm_app=[r.address for r in replicas], alertmanagers=[am.address],
                prometheus=[f"127.0.0.1:{prom_port}"], rules_dir=rules, scrape_interval=f"{SCRAPE_S:g}s")
            assert config.read_bytes() == localstack.PROMETHEUS_CONFIG.read_bytes()
            with localstack.Prometheus(config, port=prom_port) as prom:
                # Prometheus applies discovered targets in batches (every 5 s): start the
                # replicas once it scrapes their addresses, so the first scrape of each
                # comes within one interval of its first call, as for a pod that turns ready.
                localstack.wait_until(lambda: localstack.query_value(prom.url, 'count(up{job="llm-app"})') == 3,
                                      timeout=30, what="the three targets discovered")
                started = time.monotonic()
                for r in replicas:
                    r.start(RUN_S)

                # The page-tier alert fires once for the label set, before the restart.
                def firing_page():
                    found = [a for a in _alerts(prom.url, "LLMHighErrorRate")
                             if a["state"] == "firing" and a["labels"].get("long") == "1h"]
                    return found or None

                (page_alert,) = localstack.wait_until(firing_page, timeout=30, what="LLMHighErrorRate 1h/5m firing")
                assert page_alert["labels"] == {
                    "alertname": "LLMHighErrorRate", "severity": "critical", "long": "1h", "short": "5m",
                    "provider": "openai", "model": "gpt-4o-mini", "feature": "k8s-burst"}
                active_at = page_alert["activeAt"]

                # Kill replica 1 mid-run and restart it on the same port (same instance: its
                # counters reset within the same series), recording until the others stop.
                victim = replicas[1]
                time.sleep(max(0.0, KILL_AT_S - (time.monotonic() - started)))
                before_kill = victim.kill()
                time.sleep(DOWN_S)
                localstack.wait_until(lambda: localstack.query_value(
                    prom.url, f'up{{instance="{victim.address}"}}') == 0, timeout=10, what="victim scraped down")
                victim.start(RUN_S - (time.monotonic() - started))
                for r in replicas:
                    assert r.done.wait(RUN_S + 30), r.address
                time.sleep(4 * SCRAPE_S)  # a few scrapes of the final, flat counters

                # The counter reset really happened, in the same series.
                resets = localstack.query_value(
                    prom.url, f'resets(llm_requests_total{{instance="{victim.address}",feature="k8s-steady",finish_reason="stop"}}[5m])')
                assert resets == 1

                # Totals: the run is shorter than 5m, so rate5m x 300 is the increase the rules
                # saw. Recorded: the survivors' final totals, the victim's before and after.
                recorded = {k: sum(r.totals[k] for r in replicas) + before_kill[k] for k in before_kill}
                per_scrape = 3 * PER_SECOND * SCRAPE_S  # calls per feature in one scrape interval
                for feature, rule, key, share in (
                        ("k8s-steady", "llm:requests:rate5m", "k8s-steady", 1.0),
                        ("k8s-burst", "llm:requests:rate5m", "k8s-burst", 1.0),
                        ("k8s-burst", "llm:errors:rate5m", "k8s-burst-errors", 0.3)):
                    result = localstack.query(prom.url, f'{rule}{{feature="{feature}"}}')
                    assert len(result) == 1, result  # one series for three replicas
                    assert set(result[0]["metric"]) == {"__name__", "provider", "model", "feature"}
                    seen = float(result[0]["value"][1]) * 300
                    assert abs(seen - recorded[key]) <= per_scrape * share, (rule, feature, seen, recorded[key])
                ratio = localstack.query_value(prom.url, f"llm:error_ratio:rate5m{{{BURST}}}")
                assert 0.27 < ratio < 0.33

                # The alert was never interrupted (same activeAt), exists once per tier, and
                # nothing fired for the steady feature or for the replica that was down.
                by_tier: dict[tuple, list] = {}
                for a in _alerts(prom.url, "LLMHighErrorRate"):
                    assert a["labels"]["feature"] == "k8s-burst", a
                    assert not {"instance", "pod", "job"} & set(a["labels"]), a
                    by_tier.setdefault((a["labels"]["severity"], a["labels"]["long"]), []).append(a)
                assert all(len(v) == 1 for v in by_tier.values()), by_tier
                assert by_tier[("critical", "1h")][0]["activeAt"] == active_at
                assert by_tier[("critical", "1h")][0]["state"] == "firing"
                assert _alerts(prom.url, "LLMExporterDown") == []

                # Alertmanager: one page for the label set, carrying both page tiers.
                capture.wait_for(PAGERDUTY_PATH, timeout=30, predicate=lambda r: (
                    r.body.get("payload", {}).get("class") == "LLMHighErrorRate"))
                capture.wait_for(SLACK_PATH, timeout=30, predicate=lambda r: (
                    "LLMHighErrorRate" in r.body["attachments"][0]["title"]))
                time.sleep(2)  # a second page, were there one, would arrive with the first
                pages = [r.body for r in capture.received(PAGERDUTY_PATH)]
                assert len(pages) == 1, pages
                page = pages[0]
                assert page["routing_key"] == routing_key and page["event_action"] == "trigger"
                assert page["payload"]["summary"] == (
                    "[FIRING] LLMHighErrorRate openai/gpt-4o-mini (k8s-burst): "
                    "LLM calls are failing fast enough to exhaust the error budget.")
                assert (page["payload"]["component"], page["payload"]["group"]) == ("openai/gpt-4o-mini", "k8s-burst")
                assert page["payload"]["custom_details"]["num_firing"] == "2"
                firing = page["payload"]["custom_details"]["firing"]
                assert "over the last 1h" in firing and "over the last 6h" in firing
                assert "instance" not in firing
                slack = [r.body["attachments"][0]["title"] for r in capture.received(SLACK_PATH)
                         if "LLMHighErrorRate" in r.body["attachments"][0]["title"]]
                assert slack == ["[FIRING:2] LLMHighErrorRate openai/gpt-4o-mini (k8s-burst) (critical)"]
                # Grouped by label set in Alertmanager too: the critical tiers active, the
                # warning tiers inhibited by them.
                in_am = [a for a in localstack.alertmanager_alerts(am.url)
                         if a["labels"]["alertname"] == "LLMHighErrorRate"]
                assert {(a["labels"]["severity"], a["labels"]["long"]) for a in in_am} == set(by_tier)
                assert len(in_am) == len(by_tier)
                for a in in_am:
                    want = "active" if a["labels"]["severity"] == "critical" else "suppressed"
                    assert a["status"]["state"] == want, a
                assert time.monotonic() - started < 90
    finally:
        for r in replicas:
            r.stop()
        capture.stop()
