"""alertmanager/alertmanager.yml: amtool check-config, routing per severity, inhibition
rules, templates, and the secret files every runner must provide."""

from __future__ import annotations

import subprocess
import urllib.parse
from pathlib import Path

import pytest
import yaml

from llm_exporter import capture, localstack

ROOT = Path(__file__).resolve().parent.parent
CONFIG = localstack.ALERTMANAGER_CONFIG


def amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["amtool", *args], capture_output=True, text=True, timeout=60)


def config() -> dict:
    return yaml.safe_load(CONFIG.read_text())


def test_amtool_check_config():
    result = amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "1 templates" in result.stdout


@pytest.mark.parametrize("labels, receivers", [
    (["severity=critical", "alertname=LLMHighErrorRate", "provider=openai", "model=gpt-4o", "feature=search"],
     "pagerduty,slack"),
    (["severity=critical", "alertname=LLMExporterDown", "job=llm-app"], "pagerduty,slack"),
    (["severity=warning", "alertname=LLMTruncationRateHigh", "provider=openai"], "slack"),
    (["severity=info", "alertname=LLMUnpricedModel", "provider=openai", "model=x"], "slack"),
    (["alertname=SomethingWithoutSeverity"], "slack"),
])
def test_routes_send_each_severity_to_its_receivers(labels, receivers):
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receivers}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_route_test_fails_on_a_wrong_receiver():
    """--verify.receivers really verifies: a warning never pages."""
    result = amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=pagerduty,slack",
                    "severity=warning", "alertname=LLMHighLatency")
    assert result.returncode != 0


def test_grouping_timing_and_inhibition():
    cfg = config()
    route = cfg["route"]
    assert route["group_by"] == ["alertname", "provider", "model", "feature"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    critical = route["routes"][0]
    assert critical["matchers"] == ['severity="critical"'] and critical["continue"] is True
    assert critical["receiver"] == "pagerduty"
    inhibit = cfg["inhibit_rules"]
    assert inhibit[0] == {"source_matchers": ['severity="critical"'], "target_matchers": ['severity="warning"'],
                          "equal": ["alertname", "provider", "model", "feature"]}
    assert inhibit[1]["source_matchers"] == ['alertname="LLMExporterDown"']
    assert 'alertname!="LLMExporterDown"' in inhibit[1]["target_matchers"]
    # `matchers`, not the deprecated match/match_re (removed in future versions).
    def keys(node):
        if isinstance(node, dict):
            for k, v in node.items():
                yield k
                yield from keys(v)
        elif isinstance(node, list):
            for v in node:
                yield from keys(v)
    assert not {k for k in keys(cfg) if "match" in k and not k.endswith("matchers")}


def test_no_secret_in_the_config_only_files():
    cfg = config()
    (pd,) = next(r for r in cfg["receivers"] if r["name"] == "pagerduty")["pagerduty_configs"]
    (slack,) = next(r for r in cfg["receivers"] if r["name"] == "slack")["slack_configs"]
    assert "routing_key" not in pd and "service_key" not in pd
    assert pd["routing_key_file"] == localstack.SECRET_PAGERDUTY_ROUTING_KEY
    assert "api_url" not in slack and slack["api_url_file"] == localstack.SECRET_SLACK_API_URL
    assert localstack.alertmanager_secret_files() == sorted(
        [localstack.SECRET_PAGERDUTY_ROUTING_KEY, localstack.SECRET_SLACK_API_URL])
    assert slack["send_resolved"] is True
    for link in pd["links"]:
        assert "runbook_url" in link["href"] or "dashboard_url" in link["href"]


def test_pagerduty_url_is_the_capture_receiver():
    url = urllib.parse.urlsplit(config()["global"]["pagerduty_url"])
    assert (url.hostname, url.port, url.path) == ("127.0.0.1", capture.DEFAULT_PORT, capture.PAGERDUTY_PATH)


def _compose_alertmanager() -> dict:
    compose = ROOT / "docker-compose.yml"
    if not compose.exists():
        pytest.fail("docker-compose.yml is missing: it must run alertmanager with the secret files")
    return yaml.safe_load(compose.read_text())["services"]["alertmanager"]


def test_every_secret_file_is_provided_by_docker_compose():
    """Relative *_file paths resolve against Alertmanager's working dir: the compose service must
    mount a directory there that the `secrets` init service fills with exactly these names."""
    from llm_exporter import stack

    service = _compose_alertmanager()
    workdir = Path(service["working_dir"])
    mounts = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[Path(target)] = source
    assert mounts[Path("/etc/alertmanager/alertmanager.yml")] == "./alertmanager/alertmanager.yml"
    assert mounts[Path("/etc/alertmanager/templates")] == "./alertmanager/templates"
    for rel in localstack.alertmanager_secret_files():
        path = workdir / rel
        mounted = [t for t in mounts if path.parent == t]
        assert mounted, f"{path} is not inside a mounted directory of the alertmanager service"
        assert mounts[mounted[0]] == "./secrets"
        assert Path(rel).name in stack.SECRET_FILES, f"init-secrets does not create {rel}"


def test_every_secret_file_is_provided_by_the_local_stack(tmp_path):
    from llm_exporter import stack

    created = stack.init_secrets(tmp_path / "secrets")
    for rel in localstack.alertmanager_secret_files():
        assert (tmp_path / rel).is_file() and (tmp_path / rel) in created, rel
    # The demo Slack URL is the capture receiver, like the PagerDuty URL.
    assert (tmp_path / localstack.SECRET_SLACK_API_URL).read_text().strip() == (
        f"http://127.0.0.1:{capture.DEFAULT_PORT}{capture.SLACK_PATH}")
    localstack.write_alertmanager_secrets(tmp_path / "t", pagerduty_routing_key="k", slack_api_url="u")
    for rel in localstack.alertmanager_secret_files():
        assert (tmp_path / "t" / rel).stat().st_mode & 0o777 == 0o600
