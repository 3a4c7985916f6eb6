"""`llm-exporter stack` for real: demo + Debian prometheus + alertmanager + capture receiver.

The stack runs as a subprocess of the CLI, exactly as a user starts it, with the repository's
prometheus.yml and alertmanager.yml. Only intervals are shortened, through configuration (as in
tests/test_e2e_alerting.py, see docs/alerts.md): a 1 s scrape interval (target labels) and the
rules rendered from the mixin with an override that sets each group's interval to 1s and every
`for` to 3s (scripts/generate.py --overrides).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from llm_exporter import localstack, stack
from llm_exporter.cli import main
from llm_exporter.capture import DEFAULT_PORT as CAPTURE_PORT
from llm_exporter.capture import PAGERDUTY_PATH, SLACK_PATH
from fast_rules import render_fast_rules

ROOT = Path(__file__).resolve().parents[1]


def test_init_secrets_creates_missing_files_only(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GRAFANA_ADMIN_PASSWORD", "from-env-123")
    d = tmp_path / "secrets"
    d.mkdir()
    (d / "slack_api_url").write_text("https://hooks.slack.example/real\n")
    created = stack.init_secrets(d)
    assert sorted(p.name for p in created) == ["grafana_admin_password", "pagerduty_routing_key"]
    assert (d / "slack_api_url").read_text() == "https://hooks.slack.example/real\n"  # kept
    assert (d / "grafana_admin_password").read_text() == "from-env-123\n"
    assert len((d / "pagerduty_routing_key").read_text().strip()) == 32
    assert all((d / n).stat().st_mode & 0o777 == 0o600 for n in ("grafana_admin_password", "pagerduty_routing_key"))
    assert stack.init_secrets(d) == []
    monkeypatch.delenv("GRAFANA_ADMIN_PASSWORD")
    other = stack.init_secrets(tmp_path / "c" / "secrets", capture_url="http://capture:1",
                               owners={"grafana_admin_password": (os.getuid(), os.getgid())})
    by_name = {p.name: p for p in other}
    assert by_name["slack_api_url"].read_text() == "http://capture:1/slack\n"
    assert by_name["slack_api_url"].stat().st_mode & 0o777 == 0o600
    assert by_name["grafana_admin_password"].stat().st_mode & 0o777 == 0o440  # never world-readable
    assert len(by_name["grafana_admin_password"].read_text().strip()) >= 20  # random


def test_init_secrets_owner_specs(tmp_path: Path, capsys) -> None:
    assert stack.parse_owner("slack_api_url=65534") == ("slack_api_url", 65534)
    assert stack.parse_owner("grafana_admin_password=472:0") == ("grafana_admin_password", (472, 0))
    for bad in ("slack_api_url", "slack_api_url=nobody", "slack_api_url=1:x", "=1:"):
        with pytest.raises(ValueError, match="expected NAME=UID or NAME=UID:GID"):
            stack.parse_owner(bad)
    with pytest.raises(ValueError, match="owners: 'typo' is not a secret file"):
        stack.init_secrets(tmp_path / "secrets", owners={"typo": 0})
    assert not (tmp_path / "secrets").exists()  # checked before anything is written
    assert main(["init-secrets", str(tmp_path / "secrets"), "--owner", "slack_api_url=me"]) == 2
    assert "init-secrets: --owner 'slack_api_url=me': expected NAME=UID" in capsys.readouterr().err


def test_pick_port_moves_past_a_busy_port() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        chosen = stack.pick_port(port, "test")
        assert chosen != port and chosen > port
    assert stack.pick_port(0, "test") > 0


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _alive(pid: int) -> bool:
    """True while the pid exists (an unreaped zombie counts: the stack must wait for its children)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                pass
    return found


def test_stack_runs_alerts_reach_the_capture_receiver_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    localstack.find_binary("prometheus")
    localstack.find_binary("prometheus-alertmanager")
    # alertmanager.yml sends pages to the capture receiver's fixed port: wait for another
    # live test or stack to release it, as the other live tests do.
    deadline = time.monotonic() + 120
    while not stack._port_free(CAPTURE_PORT):
        if time.monotonic() > deadline:
            pytest.fail(f"port {CAPTURE_PORT} is busy (a running `llm-exporter stack`?): "
                        "alertmanager.yml sends pages to the capture receiver there")
        time.sleep(0.5)
    rules = render_fast_rules(tmp_path)
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "pagerduty_routing_key").write_text("test-routing-key-from-secret-file\n")
    workdir = tmp_path / "work"
    cmd = [sys.executable, "-m", "llm_exporter.cli", "stack", "--workdir", str(workdir),
           "--secrets-dir", str(secrets_dir), "--prometheus-port", "0", "--alertmanager-port", "0",
           "--port", "0", "--rps", "8", "--seed", "3", "--time-scale", "0.02",
           "--scrape-interval", "1s", "--rules-dir", str(rules)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()
    state_file = workdir / "stack.json"
    children: dict[str, int] = {}
    try:
        localstack.wait_until(lambda: state_file.exists() or proc.poll() is not None, timeout=60,
                              what="stack.json")
        assert proc.poll() is None, "".join(lines)
        state = json.loads(state_file.read_text())
        children = state["children"]
        assert set(children) == {"prometheus", "alertmanager"} and state["pid"] == proc.pid
        urls = state["urls"]
        prom, demo, capture = urls["prometheus"], urls["demo"], urls["capture"]
        assert capture == f"http://127.0.0.1:{CAPTURE_PORT}"
        assert any("llm-exporter stack is up" in line for line in lines)
        assert any(f"{prom}/alerts" in line for line in lines) and any(f"{demo}/scenario/" in line for line in lines)

        def page() -> list:
            return [x["body"] for x in _get_json(capture + PAGERDUTY_PATH) if "LLMHighErrorRate" in json.dumps(x["body"])]

        # the demo is scraped under job llm-app, and the recording rules produce data
        localstack.wait_until(lambda: localstack.query_value(prom, 'up{job="llm-app"}') == 1, timeout=30,
                              what="llm-app target up")
        localstack.wait_until(lambda: localstack.query_value(prom, 'up{job="alertmanager"}') == 1, timeout=30,
                              what="alertmanager target up")
        def features() -> set[str]:
            return {r["metric"]["feature"] for r in localstack.query(prom, "llm:requests:rate5m > 0")}

        localstack.wait_until(lambda: features() >= {"order_summary", "support_triage", "search"}, timeout=45,
                              what="recording rule llm:requests:rate5m for each feature")
        assert localstack.query(prom, "llm:cost_usd:rate5m > 0")
        assert page() == []  # normal traffic does not page

        # switch the running demo to error-burst: LLMHighErrorRate pages through Alertmanager
        req = urllib.request.Request(demo + "/scenario/error-burst", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r) == {"scenario": "error-burst"}

        pages = localstack.wait_until(page, timeout=120, interval=1, what="LLMHighErrorRate page")
        body = pages[0]
        assert body["event_action"] == "trigger"
        assert body["routing_key"] == "test-routing-key-from-secret-file"  # from the secret file
        assert body["payload"]["severity"] == "critical"
        assert body["payload"]["class"] == "LLMHighErrorRate"
        assert "failing" in body["payload"]["summary"]
        slack = localstack.wait_until(
            lambda: [x["body"] for x in _get_json(capture + SLACK_PATH) if "LLMHighErrorRate" in json.dumps(x["body"])],
            timeout=60, interval=1, what="Slack message")
        assert slack
        firing = [a for a in localstack.alerts(prom) if a["labels"]["alertname"] == "LLMHighErrorRate"]
        assert any(a["state"] == "firing" for a in firing)
        assert any("[pagerduty] trigger critical" in line for line in lines)  # printed as it arrived
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            for pid in children.values():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise
        reader.join(5)
    assert code == 0, "".join(lines[-30:])
    assert children and not [pid for pid in children.values() if _alive(pid)]
    assert _processes_mentioning(str(tmp_path)) == []
    assert not state_file.exists()


def test_cli_help_for_every_command() -> None:
    for args, expect in ((["--help"], "stack"), (["stack", "--help"], "Ctrl-C"),
                         (["capture", "--help"], "PagerDuty"), (["init-secrets", "--help"], "secret")):
        out = subprocess.run([sys.executable, "-m", "llm_exporter.cli", *args], capture_output=True, text=True,
                             timeout=60, check=False)
        assert out.returncode == 0 and expect in out.stdout, (args, out.stdout, out.stderr)
