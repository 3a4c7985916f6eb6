"""End to end with real processes on 127.0.0.1:

record_call (30 % errors, 20 % truncations) -> /metrics (llm_exporter.start_http_server)
-> Debian prometheus with the repository's prometheus.yml and the mixin's rules
-> Debian prometheus-alertmanager with the repository's alertmanager.yml
-> capture receiver: the PagerDuty Events v2 body and the Slack payload arrive; the
   inhibited warning does not.

Short intervals come from configuration, not edited files: prometheus.yml is
copied byte for byte; the scrape interval comes from ``__scrape_interval__`` in
the target file; the rules are rendered from the same mixin with an override
that only sets the group interval to 1s and every ``for`` to 3s (asserted
below). Alertmanager runs its shipped config as is (critical group_wait 10s,
warning 30s).
"""

from __future__ import annotations

import re
import secrets
import threading
import urllib.parse
from pathlib import Path

import yaml

from llm_exporter import localstack
from llm_exporter.capture import start_capture
from fast_rules import render_fast_rules

ROOT = Path(__file__).resolve().parent.parent


PROVIDER, MODEL = "openai", "gpt-4o-mini"


def _strip_timing(doc: dict) -> list:
    return [
        [{k: v for k, v in r.items() if k not in ("for",)} for r in g["rules"]]
        for g in doc["groups"]
    ]


class Traffic(threading.Thread):
    """Records calls until stopped: feature e2e-errors fails 3 in 10, e2e-trunc truncates 2 in 10."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.halt = threading.Event()

    def run(self) -> None:
        from llm_exporter import record_call

        i = 0
        while not self.halt.is_set():
            n = i % 10
            record_call(provider=PROVIDER, model=MODEL, feature="e2e-errors", duration_s=0.2,
                        input_tokens=50, output_tokens=20,
                        error_type="server_error" if n < 3 else None)
            record_call(provider=PROVIDER, model=MODEL, feature="e2e-trunc", duration_s=0.3,
                        input_tokens=50, output_tokens=20,
                        finish_reason="length" if n < 2 else "stop")
            i += 1
            self.halt.wait(0.02)


def _pagerduty_address() -> tuple[str, int, str]:
    """host, port and path of alertmanager.yml's global.pagerduty_url (where capture must listen)."""
    config = yaml.safe_load(localstack.ALERTMANAGER_CONFIG.read_text())
    url = urllib.parse.urlsplit(config["global"]["pagerduty_url"])
    return url.hostname, url.port, url.path


def _is(alertname: str, severity: str | None = None, feature: str | None = None):
    def match(labels: dict) -> bool:
        return (labels.get("alertname") == alertname
                and (severity is None or labels.get("severity") == severity)
                and (feature is None or labels.get("feature") == feature))
    return match


def test_alert_reaches_pagerduty_and_slack_and_inhibited_warning_does_not(tmp_path):
    from llm_exporter import start_http_server
    from llm_exporter.testing import fresh_registry

    # Rules: rendered with the fast override; everything but `for` and `interval` equals the committed rules.
    rules = render_fast_rules(tmp_path)
    for name in ("llm-alerts.yaml", "llm-recording-rules.yaml"):
        fast = yaml.safe_load((rules / name).read_text())
        shipped = yaml.safe_load((ROOT / "prometheus" / "rules" / name).read_text())
        assert _strip_timing(fast) == _strip_timing(shipped)
        assert {g.get("interval") for g in fast["groups"]} == {"1s"}

    registry = fresh_registry()
    server, _thread = start_http_server(0, "127.0.0.1", registry=registry)
    traffic = Traffic()
    routing_key = "e2e" + secrets.token_hex(14)
    pd_host, pd_port, pd_path = _pagerduty_address()
    capture = start_capture(pd_host, pd_port, wait=120)  # the fixed PagerDuty address
    try:
        traffic.start()
        am_dir = tmp_path / "alertmanager"
        localstack.write_alertmanager_secrets(
            am_dir, pagerduty_routing_key=routing_key, slack_api_url=capture.url + "/slack")
        prom_port = localstack.free_port()
        with localstack.Alertmanager(localstack.ALERTMANAGER_CONFIG, workdir=am_dir) as am:
            config = localstack.prepare_prometheus_dir(
                tmp_path / "prometheus",
                llm_app=[f"127.0.0.1:{server.server_port}"],
                alertmanagers=[am.address],
                prometheus=[f"127.0.0.1:{prom_port}"],
                rules_dir=rules,
                scrape_interval="1s",
            )
            assert config.read_bytes() == localstack.PROMETHEUS_CONFIG.read_bytes()
            with localstack.Prometheus(config, port=prom_port) as prom:
                # The exporter is scraped under job llm-app and the recording rules see the error ratio.
                ratio = localstack.wait_until(
                    lambda: localstack.query_value(prom.url, 'llm:error_ratio:rate5m{feature="e2e-errors"}'),
                    timeout=30, what="llm:error_ratio:rate5m")
                assert 0.2 < ratio < 0.4
                assert localstack.query_value(prom.url, 'up{job="llm-app"}') == 1.0

                # PagerDuty Events v2: the critical page, with the routing key from the secret file.
                page = capture.wait_for(
                    pd_path, timeout=60,
                    predicate=lambda r: r.body.get("payload", {}).get("class") == "LLMHighErrorRate",
                )[0].body
                assert page["routing_key"] == routing_key
                assert page["event_action"] == "trigger"
                payload = page["payload"]
                assert payload["severity"] == "critical"
                assert payload["summary"] == (
                    "[FIRING] LLMHighErrorRate openai/gpt-4o-mini (e2e-errors): "
                    "LLM calls are failing fast enough to exhaust the error budget.")
                assert payload["component"] == "openai/gpt-4o-mini" and payload["group"] == "e2e-errors"
                assert re.search(r"\d+(\.\d+)?% of calls failed over the last 1h", payload["custom_details"]["firing"])
                assert {link["text"]: link["href"] for link in page["links"]} == {
                    "Runbook": "https://github.com/llm-exporter/llm-exporter/blob/main/docs/runbook.md#llmhigherrorrate",
                    "Dashboard": "http://localhost:3000/d/llm-overview",
                }

                # Slack: the critical group (both page tiers, not the inhibited ticket tiers) and the truncation warning.
                slack = capture.wait_for("/slack", count=2, timeout=60)
                by_title = {r.body["attachments"][0]["title"]: r.body for r in slack}
                errors_msg = next(b for t, b in by_title.items() if "LLMHighErrorRate" in t)
                trunc_msg = next(b for t, b in by_title.items() if "LLMTruncationRateHigh" in t)
                err = errors_msg["attachments"][0]
                assert err["title"] == "[FIRING:2] LLMHighErrorRate openai/gpt-4o-mini (e2e-errors) (critical)"
                assert err["color"] == "danger"
                assert "over the last 1h" in err["text"] and "over the last 6h" in err["text"]
                assert "over the last 1d" not in err["text"] and "over the last 3d" not in err["text"]
                runbook = "https://github.com/llm-exporter/llm-exporter/blob/main/docs/runbook.md#llmhigherrorrate"
                assert f"<{runbook}|Runbook>" in err["text"]
                assert errors_msg["channel"] == "#llm-alerts"
                tr = trunc_msg["attachments"][0]
                assert tr["title"] == "[FIRING:1] LLMTruncationRateHigh openai/gpt-4o-mini (e2e-trunc) (warning)"
                assert tr["color"] == "warning"
                assert tr["title_link"] == "http://localhost:3000/d/llm-latency-quality"
                assert "stopped at the max-tokens limit" in tr["text"]

                # The warning tiers reached Alertmanager, are inhibited by the critical ones, and were never sent.
                # (the 3d/6h tier's guard needs 0.05 calls/s over 6h: about 20 s of this traffic)
                def warning_tiers():
                    found = [a for a in localstack.alertmanager_alerts(am.url)
                             if _is("LLMHighErrorRate", "warning", "e2e-errors")(a["labels"])]
                    return found if len(found) == 2 else None

                warnings = localstack.wait_until(warning_tiers, timeout=30, what="both warning tiers in Alertmanager")
                for a in warnings:
                    assert a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"], a
                for r in capture.received():
                    text = str(r.body)
                    assert "over the last 1d" not in text and "over the last 3d" not in text, r
                pages = capture.received(pd_path)
                assert all(p.body["payload"]["severity"] == "critical" for p in pages)
                assert not any(p.body["payload"]["class"] == "LLMTruncationRateHigh" for p in pages)
    finally:
        traffic.halt.set()
        traffic.join(5)
        capture.stop()
        server.shutdown()
        server.server_close()
