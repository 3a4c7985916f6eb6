"""A real Alertmanager with the repository's config, and the capture receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from llm_exporter import localstack
from llm_exporter.capture import PAGERDUTY_PATH, CaptureServer, start_capture, summarize


def post_json(url: str, data: object) -> int:
    req = urllib.request.Request(url, json.dumps(data).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


# --- capture receiver ----------------------------------------------------------------------

PD_BODY = {"routing_key": "k", "event_action": "trigger",
           "payload": {"summary": "[FIRING] LLMHighErrorRate openai/m (f): S.", "severity": "critical", "source": "am"}}
SLACK_BODY = {"channel": "#llm-alerts", "attachments": [{"title": "[FIRING:1] LLMTruncationRateHigh", "text": "t"}]}
WEBHOOK_BODY = {"status": "firing", "alerts": [{"labels": {"alertname": "B"}}, {"labels": {"alertname": "A"}}]}


def test_summaries():
    assert summarize(PAGERDUTY_PATH, PD_BODY) == "[pagerduty] trigger critical: [FIRING] LLMHighErrorRate openai/m (f): S."
    assert summarize("/slack", SLACK_BODY) == "[slack] #llm-alerts [FIRING:1] LLMTruncationRateHigh"
    assert summarize("/hook", WEBHOOK_BODY) == "[webhook /hook] firing: A, B"
    assert summarize("/x", "plain") == "[/x] plain"


def test_capture_stores_bodies_per_path_and_lists_them(capsys):
    with CaptureServer(echo=True) as cap:
        assert post_json(cap.url + PAGERDUTY_PATH, PD_BODY) == 202
        assert post_json(cap.url + "/slack", SLACK_BODY) == 200
        assert [r.body for r in cap.received("/pagerduty")] == [PD_BODY]
        assert cap.bodies("/slack") == [SLACK_BODY]
        assert len(cap.received()) == 2
        with urllib.request.urlopen(cap.url + "/slack", timeout=5) as resp:
            assert [item["body"] for item in json.load(resp)] == [SLACK_BODY]
        with pytest.raises(TimeoutError, match="1 of 2 POSTs"):
            cap.wait_for("/slack", count=2, timeout=0.2)
        cap.clear()
        assert cap.received() == []
    out = capsys.readouterr().out.splitlines()
    assert out == [summarize(PAGERDUTY_PATH, PD_BODY), summarize("/slack", SLACK_BODY)]


def test_capture_runs_standalone():
    port = localstack.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "llm_exporter.capture", "--port", str(port)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert f"listening on http://127.0.0.1:{port}" in proc.stdout.readline()
        localstack.wait_until(lambda: post_json(f"http://127.0.0.1:{port}{PAGERDUTY_PATH}", PD_BODY) == 202,
                              timeout=10, what="capture")
        assert proc.stdout.readline().strip() == summarize(PAGERDUTY_PATH, PD_BODY)
    finally:
        proc.terminate()
        proc.wait(10)


# --- Alertmanager -------------------------------------------------------------------------------

def _alert(**labels: str) -> dict:
    name = labels["alertname"]
    return {
        "labels": labels,
        "annotations": {"summary": f"{name} summary.", "description": f"{name} description",
                        "runbook_url": f"https://runbook/#{name.lower()}", "dashboard_url": "http://grafana/d/llm-overview"},
    }


def test_exporter_down_inhibits_the_other_llm_alerts(tmp_path):
    url = urllib.parse.urlsplit(yaml.safe_load(localstack.ALERTMANAGER_CONFIG.read_text())["global"]["pagerduty_url"])
    cap = start_capture(url.hostname, url.port, wait=120)  # fixed in alertmanager.yml (docs/alerts.md)
    try:
        localstack.write_alertmanager_secrets(tmp_path, pagerduty_routing_key="key-live", slack_api_url=cap.url + "/slack")
        with localstack.Alertmanager(localstack.ALERTMANAGER_CONFIG, workdir=tmp_path) as am:
            path = dict(provider="openai", model="gpt-4o", feature="search")
            alerts = [
                _alert(alertname="LLMExporterDown", severity="critical", job="llm-app"),  # once per job
                _alert(alertname="LLMHighErrorRate", severity="critical", long="1h", short="5m", **path),
                _alert(alertname="LLMHighLatency", severity="warning", **path),
            ]
            assert post_json(am.url + "/api/v2/alerts", alerts) == 200
            def alert_states() -> dict:
                # the inhibitor learns of the source alert asynchronously: a first read may still show
                # the others active, so wait for the three alerts with the inhibition applied
                states = {a["labels"]["alertname"]: a["status"] for a in localstack.alertmanager_alerts(am.url)}
                inhibited = all(states.get(n, {}).get("inhibitedBy") for n in ("LLMHighErrorRate", "LLMHighLatency"))
                return states if len(states) == 3 and inhibited else {}

            state = localstack.wait_until(alert_states, timeout=15, what="alerts in Alertmanager, inhibited")
            assert state["LLMExporterDown"]["state"] == "active"
            down_fp = next(a["fingerprint"] for a in localstack.alertmanager_alerts(am.url)
                           if a["labels"]["alertname"] == "LLMExporterDown")
            for name in ("LLMHighErrorRate", "LLMHighLatency"):
                assert state[name]["state"] == "suppressed" and state[name]["inhibitedBy"] == [down_fp]
            # Only the exporter page goes out (critical group_wait 10s).
            page = cap.wait_for(PAGERDUTY_PATH, timeout=30)[0].body
            assert page["routing_key"] == "key-live"
            assert page["payload"]["class"] == "LLMExporterDown"
            assert page["payload"]["summary"] == "[FIRING] LLMExporterDown job llm-app: LLMExporterDown summary."
            time.sleep(2)
            assert [r.body["payload"]["class"] for r in cap.received(PAGERDUTY_PATH)] == ["LLMExporterDown"]
    finally:
        cap.stop()
