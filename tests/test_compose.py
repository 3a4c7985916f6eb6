"""docker-compose.yml: valid for docker-compose, and consistent with the files it mounts.

No Docker engine here: `docker-compose config` (Debian's docker-compose 1.29) validates the file
against the compose schema and resolves paths; the rest cross-checks the resolved config against
prometheus/, alertmanager/, grafana/, secrets/, the Dockerfile and the CLI.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import pytest
import yaml
from llm_exporter import localstack, stack
from llm_exporter.capture import DEFAULT_PORT as CAPTURE_PORT
from llm_exporter.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
LONG_RUNNING = ("demo", "prometheus", "alertmanager", "capture", "grafana")


def _resolve(**env: str) -> dict:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose not installed: run scripts/install-deps"
    proc = subprocess.run([exe, "-f", str(COMPOSE), "config"], cwd=ROOT, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": "/tmp", **env}, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return yaml.safe_load(proc.stdout)


@pytest.fixture(scope="module")
def config() -> dict:
    return _resolve()


def _ports(service: dict) -> list[tuple[str | None, int, int]]:
    """(host address or None for all interfaces, published, target) of a resolved service's ports.

    docker-compose 1.29 prints "127.0.0.1:8000:8000/tcp" for a port with an address and
    {published, target} without one; Compose v2 prints dicts with host_ip.
    """
    out = []
    for p in service.get("ports", []):
        if isinstance(p, dict):
            out.append((p.get("host_ip") or None, int(p["published"]), int(p["target"])))
        else:
            spec = str(p).split("/", 1)[0]
            parts = spec.split(":")
            if len(parts) == 3:
                out.append((parts[0] or None, int(parts[1]), int(parts[2])))
            elif len(parts) == 2:
                out.append((None, int(parts[0]), int(parts[1])))
            else:
                out.append((None, int(parts[0]), int(parts[0])))
    return out


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _mounts(service: dict) -> list[tuple[str, str, bool]]:
    """(source, target, read_only) of every volume entry of a resolved service."""
    out = []
    for v in service.get("volumes", []):
        if isinstance(v, dict):
            out.append((v["source"], v["target"], bool(v.get("read_only"))))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1], len(parts) > 2 and "ro" in parts[2].split(",")))
    return out


def _host_path(service: dict, container_path: str) -> Path | None:
    """Host path a bind mount maps ``container_path`` to (deepest mount wins)."""
    best = None
    for src, dst, _ in _mounts(service):
        if not src.startswith("/"):
            continue  # named volume
        if container_path == dst or container_path.startswith(dst.rstrip("/") + "/"):
            if best is None or len(dst) > len(best[1]):
                best = (src, dst)
    if best is None:
        return None
    rel = PurePosixPath(container_path).relative_to(best[1])
    return Path(best[0]) / rel


def _flag(command: list[str], name: str) -> str:
    for arg in command:
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    raise AssertionError(f"{name} missing from {command}")


def test_services_images_pinned_and_healthchecked(config: dict) -> None:
    services = config["services"]
    assert set(services) == {"secrets", *LONG_RUNNING}
    images = {name: s["image"] for name, s in services.items()}
    assert images["prometheus"].startswith("prom/prometheus:v")
    assert images["alertmanager"].startswith("prom/alertmanager:v")
    assert images["grafana"].startswith("grafana/grafana:")
    for name, image in images.items():
        tag = image.rsplit(":", 1)[1] if ":" in image else ""
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), f"{name}: image {image!r} is not pinned to a version"
    for name in LONG_RUNNING:
        hc = services[name].get("healthcheck")
        assert hc and hc["test"][0] == "CMD" and len(hc["test"]) > 1, f"{name} has no healthcheck"
    # the demo, capture and secrets services run the image built from the repo's Dockerfile
    for name in ("demo", "capture", "secrets"):
        assert services[name]["build"]["context"] == str(ROOT)
        assert services[name]["image"] == services["demo"]["image"]


def test_ports_and_named_volumes(config: dict) -> None:
    services = config["services"]

    def published(name: str) -> set[int]:
        return {published for _, published, _ in _ports(services[name])}

    assert 9090 in published("prometheus")
    assert 9093 in published("alertmanager")
    assert 3000 in published("grafana")
    assert 8000 in published("demo")
    # the capture receiver lives in Alertmanager's network namespace, so its port is published there
    assert CAPTURE_PORT in published("alertmanager")
    declared = set(config["volumes"])
    assert declared == {"prometheus_data", "alertmanager_data", "grafana_data"}
    data = {"prometheus": "/prometheus", "alertmanager": "/alertmanager", "grafana": "/var/lib/grafana"}
    for name, target in data.items():
        assert (f"{name}_data", target) in {(s, t) for s, t, _ in _mounts(services[name])}


def test_every_bind_mount_exists_and_config_is_read_only(config: dict) -> None:
    for name, service in config["services"].items():
        for src, dst, ro in _mounts(service):
            if not src.startswith("/"):
                continue
            assert Path(src).exists(), f"{name}: mounts {src} which does not exist"
            if name != "secrets":  # only the one-shot secrets service writes (into ./secrets)
                assert ro, f"{name}: {src} -> {dst} should be read-only"
    grafana = {(s, t) for s, t, _ in _mounts(config["services"]["grafana"])}
    assert (str(ROOT / "grafana" / "provisioning"), "/etc/grafana/provisioning") in grafana
    assert (str(ROOT / "grafana" / "dashboards"), "/var/lib/grafana/dashboards") in grafana


def test_prometheus_config_and_rules_are_the_repos(config: dict) -> None:
    prom = config["services"]["prometheus"]
    host = _host_path(prom, _flag(prom["command"], "--config.file"))
    assert host == localstack.PROMETHEUS_CONFIG
    am = config["services"]["alertmanager"]
    assert _host_path(am, _flag(am["command"], "--config.file")) == localstack.ALERTMANAGER_CONFIG
    templates = yaml.safe_load(localstack.ALERTMANAGER_CONFIG.read_text())["templates"]
    for pattern in templates:  # relative to the config file's directory
        host_dir = _host_path(am, str(PurePosixPath("/etc/alertmanager") / pattern).rsplit("/", 1)[0])
        assert host_dir is not None and list(host_dir.glob(pattern.rsplit("/", 1)[1])), pattern


def _compose_port(config: dict, service: str) -> set[int]:
    """Ports a service listens on inside the compose network."""
    s = config["services"][service]
    ports = {target for _, _, target in _ports(s)}
    ports |= {int(x) for x in re.findall(r"--(?:port|web\.listen-address=[^ ]*:)[ =]?(\d+)", " ".join(s.get("command") or []))}
    return ports


def test_scrape_targets_alertmanager_and_datasources_name_compose_services(config: dict) -> None:
    services = config["services"]
    prom_yml = yaml.safe_load(localstack.PROMETHEUS_CONFIG.read_text())
    jobs = {j["job_name"] for j in prom_yml["scrape_configs"]}
    assert "llm-app" in jobs  # _config.llmSelector is job="<jobName>"
    mixin_cfg = (ROOT / "mixin" / "config.libsonnet").read_text()
    assert "jobName: 'llm-app'" in mixin_cfg and "llmSelector: 'job=\"%s\"' % self.jobName" in mixin_cfg

    def targets(pattern: str) -> list[str]:
        out = []
        for f in sorted((ROOT / "prometheus").glob(pattern)):
            out += [t for group in yaml.safe_load(f.read_text()) for t in group["targets"]]
        return out

    # the demo listens on the port its target names; Prometheus scrapes itself on localhost
    demo_cmd = services["demo"]["command"]
    assert targets("targets/llm-app*.yml") == [f"demo:{demo_cmd[demo_cmd.index('--port') + 1]}"]
    assert demo_cmd[demo_cmd.index("--host") + 1] == "0.0.0.0"
    assert targets("targets/alertmanager*.yml") == ["alertmanager:9093"]
    assert 9093 in _compose_port(config, "alertmanager")
    assert targets("targets/prometheus*.yml") == ["localhost:9090"]
    # the file_sd globs in prometheus.yml find those files inside the container
    prom = services["prometheus"]
    for job in prom_yml["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            for pattern in sd["files"]:
                host = _host_path(prom, str(PurePosixPath("/etc/prometheus") / pattern))
                assert host is not None and list(host.parent.glob(host.name)), pattern
    for am in prom_yml["alerting"]["alertmanagers"]:
        for sd in am["file_sd_configs"]:
            assert all(list((ROOT / "prometheus").glob(p)) for p in sd["files"])

    datasources = {}
    for f in (ROOT / "grafana" / "provisioning" / "datasources").glob("*.yaml"):
        for ds in yaml.safe_load(f.read_text())["datasources"]:
            datasources[ds["type"]] = ds["url"]
    for kind, service, port in (("prometheus", "prometheus", 9090), ("alertmanager", "alertmanager", 9093)):
        m = re.fullmatch(r"http://([a-z0-9_-]+):(\d+)/?", datasources[kind])
        assert m and m.group(1) == service and int(m.group(2)) == port, datasources[kind]
        assert service in services


def test_grafana_provisioning_paths_and_home_dashboard(config: dict) -> None:
    grafana = config["services"]["grafana"]
    for f in (ROOT / "grafana" / "provisioning" / "dashboards").glob("*.yaml"):
        for provider in yaml.safe_load(f.read_text())["providers"]:
            host = _host_path(grafana, provider["options"]["path"])
            assert host == ROOT / "grafana" / "dashboards"
            assert list(host.glob("*.json"))
    env = grafana["environment"]
    home = _host_path(grafana, env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert home is not None and home.is_file()


def test_no_secret_in_compose_and_every_secret_file_is_provided(config: dict, raw: dict, tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"(?i)(password|routing_key|api_url)\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}", text)
    grafana_env = config["services"]["grafana"]["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana_env  # only the __FILE form

    # every file a container reads as a secret maps into ./secrets ...
    am = config["services"]["alertmanager"]
    workdir = am["working_dir"]
    wanted: dict[str, Path] = {}
    for rel in localstack.alertmanager_secret_files():
        host = _host_path(am, str(PurePosixPath(workdir) / rel))
        assert host is not None, f"alertmanager.yml reads {rel}, not mounted in compose"
        wanted[rel] = host
    pw = _host_path(config["services"]["grafana"], grafana_env["GF_SECURITY_ADMIN_PASSWORD__FILE"])
    assert pw is not None
    wanted["grafana"] = pw
    for host in wanted.values():
        assert host.parent == ROOT / "secrets", host

    # ... which the one-shot secrets service fills (before those services start) with init-secrets
    init = config["services"]["secrets"]
    cmd = init["command"]
    assert cmd[0] == "init-secrets"
    assert _host_path(init, cmd[1]) == ROOT / "secrets"
    for name in ("alertmanager", "grafana"):
        assert config["services"][name]["depends_on"]["secrets"]["condition"] == "service_completed_successfully"
    created = {p.name for p in stack.init_secrets(tmp_path / "secrets")}
    assert {p.name for p in wanted.values()} <= created
    assert (ROOT / ".gitignore").read_text().count("/secrets/*") == 1


def test_capture_receiver_is_where_alertmanager_sends(config: dict, tmp_path: Path) -> None:
    services = config["services"]
    assert services["capture"]["network_mode"] == "service:alertmanager"
    cmd = services["capture"]["command"]
    assert cmd[0] == "capture" and int(cmd[cmd.index("--port") + 1]) == CAPTURE_PORT
    am_yml = yaml.safe_load(localstack.ALERTMANAGER_CONFIG.read_text())
    assert am_yml["global"]["pagerduty_url"].startswith(f"http://127.0.0.1:{CAPTURE_PORT}/")
    stack.init_secrets(tmp_path / "secrets")
    slack = (tmp_path / "secrets" / "slack_api_url").read_text().strip()
    assert slack == f"http://127.0.0.1:{CAPTURE_PORT}/slack"


def test_commands_are_valid_cli_invocations(config: dict) -> None:
    parser = build_parser()
    for name in ("demo", "capture", "secrets"):
        args = parser.parse_args(config["services"][name]["command"])
        assert callable(args.func)
    demo = parser.parse_args(config["services"]["demo"]["command"])
    assert demo.scenario == "normal"  # ${LLM_DEMO_SCENARIO:-normal}


def test_dockerfile_builds_from_files_the_context_keeps() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", dockerfile, re.MULTILINE), "pin the base image"
    lines = [x.strip() for x in (ROOT / ".dockerignore").read_text().splitlines()]
    kept = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.MULTILINE):
        *sources, _dest = shlex.split(line)
        for src in sources:
            assert (ROOT / src).exists(), f"COPY {src}: missing"
            assert src.rstrip("/") in kept, f"COPY {src}: excluded by .dockerignore"
    assert 'ENTRYPOINT ["llm-exporter"]' in dockerfile
    # the package's console script is the entry point
    assert 'llm-exporter = "llm_exporter.cli:main"' in (ROOT / "pyproject.toml").read_text()


# --- exposure: addresses, users, secret file owners (issue 19, point 4) ---------------------------

PUBLISHED = {("demo", 8000), ("prometheus", 9090), ("alertmanager", 9093), ("alertmanager", CAPTURE_PORT),
             ("grafana", 3000)}


def _addresses(config: dict) -> dict[tuple[str, int], str | None]:
    return {(name, published): host for name, s in config["services"].items() for host, published, _ in _ports(s)}


def test_published_ports_listen_on_localhost_unless_llm_exporter_bind_opens_them(config: dict) -> None:
    # Prometheus and Alertmanager have no authentication: never on every interface by default
    assert _addresses(config) == {key: "127.0.0.1" for key in PUBLISHED}
    opened = _resolve(LLM_EXPORTER_BIND="0.0.0.0")
    assert _addresses(opened) == {key: "0.0.0.0" for key in PUBLISHED}
    assert "LLM_EXPORTER_BIND" in (ROOT / "README.md").read_text()


def _uid(service: dict) -> int:
    user = service.get("user")
    assert user is not None, "set the user explicitly: the image's default is not visible here"
    return int(str(user).split(":")[0])


def test_nothing_runs_as_root_but_the_secrets_service_with_only_the_capabilities_it_needs(config: dict) -> None:
    services = config["services"]
    for name in LONG_RUNNING:
        s = services[name]
        assert _uid(s) != 0, f"{name} runs as root"
        assert s.get("cap_drop") == ["ALL"] and not s.get("cap_add"), name
        assert "no-new-privileges:true" in s.get("security_opt", []), name
    # the image built from the Dockerfile runs as the user compose names
    dockerfile_user = re.search(r"^USER (\S+)$", (ROOT / "Dockerfile").read_text(), re.MULTILINE).group(1)
    assert services["demo"]["user"] == services["capture"]["user"] == dockerfile_user
    init = services["secrets"]  # root: writes into the host's ./secrets and chowns the files
    assert _uid(init) == 0
    assert init["cap_drop"] == ["ALL"] and sorted(init["cap_add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER"]
    assert "no-new-privileges:true" in init["security_opt"]
    assert init["read_only"] is True and init["network_mode"] == "none"


def test_each_secret_file_belongs_to_the_user_of_the_one_service_that_reads_it(config: dict, tmp_path: Path) -> None:
    services = config["services"]
    secrets_dir = ROOT / "secrets"
    readers: dict[str, str] = {}
    am = services["alertmanager"]
    for rel in localstack.alertmanager_secret_files():
        readers[_host_path(am, str(PurePosixPath(am["working_dir"]) / rel)).name] = "alertmanager"
    grafana = services["grafana"]
    readers[_host_path(grafana, grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]).name] = "grafana"
    assert set(readers) == set(stack.SECRET_FILES)
    for name, s in services.items():  # nobody else mounts the secrets
        if name not in ("secrets", "alertmanager", "grafana"):
            assert all(Path(src) != secrets_dir for src, _, _ in _mounts(s)), name

    args = build_parser().parse_args(services["secrets"]["command"])
    owners = dict(stack.parse_owner(spec) for spec in args.owner)
    assert owners == {name: _uid(services[reader]) for name, reader in readers.items()}

    # what the service does with them (it runs as root; as another user, give the files to that user)
    d = tmp_path / "secrets"
    d.mkdir(mode=0o700)
    d.chmod(0o700)
    (d / "slack_api_url").write_text("https://hooks.slack.example/real\n")  # the user's own file
    (d / "slack_api_url").chmod(0o644)
    as_root = os.geteuid() == 0
    wanted = owners if as_root else {name: os.getuid() for name in owners}
    created = stack.init_secrets(d, owners=wanted)
    assert sorted(p.name for p in created) == ["grafana_admin_password", "pagerduty_routing_key"]
    assert (d / "slack_api_url").read_text() == "https://hooks.slack.example/real\n"  # content kept
    for name, uid in wanted.items():
        st = (d / name).stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o440, uid, d.stat().st_gid), name
    assert d.stat().st_mode & 0o777 == 0o701  # containers may enter, not list
