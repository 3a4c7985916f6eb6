"""Run Debian's ``prometheus`` and ``prometheus-alertmanager`` on 127.0.0.1.

Used by the tests and by ``llm-exporter stack``: both run the repository's
``prometheus/prometheus.yml`` and ``alertmanager/alertmanager.yml`` unchanged.
Environment-specific addresses go into files next to a copy of the Prometheus
config (:func:`prepare_prometheus_dir`) and secrets into a working directory
for Alertmanager (:func:`write_alertmanager_secrets`).

    with Prometheus(config) as prom, Alertmanager(am_config, workdir=d) as am:
        query(prom.url, "up")
        alerts(prom.url)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import yaml

T = TypeVar("T")

#: Repository root (exporter/llm_exporter/localstack.py -> ../../).
REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "prometheus"
ALERTMANAGER_DIR = REPO_ROOT / "alertmanager"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
ALERTMANAGER_CONFIG = ALERTMANAGER_DIR / "alertmanager.yml"

#: Secret files alertmanager.yml reads, relative to Alertmanager's working directory.
SECRET_PAGERDUTY_ROUTING_KEY = "secrets/pagerduty_routing_key"
SECRET_SLACK_API_URL = "secrets/slack_api_url"


class BinaryNotFound(RuntimeError):
    """A Debian binary (prometheus, prometheus-alertmanager) is not installed."""


class ServiceError(RuntimeError):
    """A service exited early or did not become ready."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (the OS picks it)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def find_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BinaryNotFound(
            f"{name} not found on PATH: run scripts/install-deps "
            "(installs the Debian packages prometheus and prometheus-alertmanager)"
        )
    return path


class Service:
    """A child process serving HTTP on 127.0.0.1, ready when ``/-/ready`` answers 200."""

    binary = ""
    name = ""

    def __init__(
        self,
        config_file: str | os.PathLike[str],
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        data_dir: str | os.PathLike[str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        ready_timeout: float = 30.0,
    ) -> None:
        self.config_file = Path(config_file).resolve()
        if not self.config_file.is_file():
            raise FileNotFoundError(f"{self.name} config not found: {self.config_file}")
        self.host = host
        self.port = port or free_port(host)
        self._own_data_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(tempfile.mkdtemp(prefix=f"llm-{self.name}-"))
        self.cwd = Path(cwd) if cwd is not None else self.config_file.parent
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.log_path = self.data_dir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def address(self) -> str:
        """host:port, as written in target files."""
        return f"{self.host}:{self.port}"

    def args(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> "Service":
        cmd = [find_binary(self.binary)] + self.args() + self.extra_args
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        try:
            # Own process group: Ctrl-C in a terminal reaches the parent, which stops us in order.
            self.process = subprocess.Popen(
                cmd, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            log.close()
        try:
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise ServiceError(f"{self.name} exited with code {code}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name} not ready on {self.url} after {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate, wait, kill after ``timeout``; remove a data dir we created."""
        proc, self.process = self.process, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._own_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "Service":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Prometheus(Service):
    """Debian ``prometheus`` with the given config; TSDB in ``data_dir`` (a temp dir by default)."""

    binary = "prometheus"
    name = "prometheus"

    def args(self) -> list[str]:
        return [
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address={self.address}",
            "--storage.tsdb.retention.time=1d",
            "--web.enable-lifecycle",
        ]


class Alertmanager(Service):
    """Debian ``prometheus-alertmanager``, clustering off.

    ``workdir`` (default: the config's directory) is the working directory,
    against which the relative ``secrets/...`` paths in alertmanager.yml resolve.
    """

    binary = "prometheus-alertmanager"
    name = "alertmanager"

    def __init__(self, config_file: str | os.PathLike[str], *, workdir: str | os.PathLike[str] | None = None, **kw: Any) -> None:
        super().__init__(config_file, cwd=workdir, **kw)

    def args(self) -> list[str]:
        return [
            f"--config.file={self.config_file}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address={self.address}",
            f"--web.external-url={self.url}",
            "--cluster.listen-address=",
        ]


# --- configuration files for an environment ------------------------------------


def write_targets(path: str | os.PathLike[str], targets: Iterable[str], labels: dict[str, str] | None = None) -> Path:
    """Write a Prometheus file_sd target file (one group)."""
    group: dict[str, Any] = {"targets": list(targets)}
    if labels:
        group["labels"] = dict(labels)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump([group], sort_keys=False))
    tmp.replace(path)  # file_sd must never see a half-written file
    return path


def prepare_prometheus_dir(
    dest: str | os.PathLike[str],
    *,
    llm_app: Iterable[str] = (),
    alertmanagers: Iterable[str] = (),
    prometheus: Iterable[str] = (),
    rules_dir: str | os.PathLike[str] | None = None,
    scrape_interval: str | None = None,
    config_file: str | os.PathLike[str] = PROMETHEUS_CONFIG,
) -> Path:
    """Lay out ``dest`` like the repo's prometheus/ dir and return the config path.

    prometheus.yml is copied byte for byte; ``rules/`` holds copies of
    ``rules_dir/*.yaml`` (default: the committed rules); ``targets/`` gets
    llm-app.yml, alertmanager.yml and prometheus.yml with the given host:port
    lists. ``scrape_interval`` (e.g. "1s") sets ``__scrape_interval__`` and
    ``__scrape_timeout__`` on the targets, overriding the global interval
    without touching the config.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    config = dest / "prometheus.yml"
    shutil.copyfile(config_file, config)
    rules = dest / "rules"
    rules.mkdir(exist_ok=True)
    for old in rules.glob("*.yaml"):
        old.unlink()
    for f in sorted(Path(rules_dir or PROMETHEUS_DIR / "rules").glob("*.yaml")):
        shutil.copyfile(f, rules / f.name)
    labels = {"__scrape_interval__": scrape_interval, "__scrape_timeout__": scrape_interval} if scrape_interval else None
    write_targets(dest / "targets" / "llm-app.yml", llm_app, labels)
    write_targets(dest / "targets" / "alertmanager.yml", alertmanagers, labels)
    write_targets(dest / "targets" / "prometheus.yml", prometheus, labels)
    return config


def write_alertmanager_secrets(
    workdir: str | os.PathLike[str],
    *,
    pagerduty_routing_key: str,
    slack_api_url: str,
) -> Path:
    """Write the secret files alertmanager.yml reads, under ``workdir/secrets`` (mode 0600)."""
    workdir = Path(workdir)
    for rel, value in ((SECRET_PAGERDUTY_ROUTING_KEY, pagerduty_routing_key), (SECRET_SLACK_API_URL, slack_api_url)):
        path = workdir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value + "\n")
        path.chmod(0o600)
    return workdir


def alertmanager_secret_files(config_file: str | os.PathLike[str] = ALERTMANAGER_CONFIG) -> list[str]:
    """Every ``*_file`` path alertmanager.yml references (relative to Alertmanager's working dir)."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_file") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(Path(config_file).read_text()))
    return sorted(set(found))


# --- Prometheus / Alertmanager HTTP API ---------------------------------------------


def _get_json(url: str, timeout: float) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.load(resp)


def query(base_url: str, promql: str, *, at: float | None = None, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query; returns ``data.result`` (a vector: [{metric: {...}, value: [t, "v"]}])."""
    params = {"query": promql}
    if at is not None:
        params["time"] = repr(at)
    data = _get_json(f"{base_url}/api/v1/query?{urllib.parse.urlencode(params)}", timeout)
    if data.get("status") != "success":
        raise ServiceError(f"query {promql!r} failed: {data}")
    return data["data"]["result"]


def query_value(base_url: str, promql: str, **kw: Any) -> float | None:
    """The single value of an instant query, or None when the result is empty."""
    result = query(base_url, promql, **kw)
    if not result:
        return None
    if len(result) > 1:
        raise ServiceError(f"query {promql!r} returned {len(result)} series")
    return float(result[0]["value"][1])


def alerts(base_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Prometheus ``/api/v1/alerts``: pending and firing alerts with labels, annotations, state."""
    return _get_json(f"{base_url}/api/v1/alerts", timeout)["data"]["alerts"]


def alertmanager_alerts(base_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Alertmanager ``/api/v2/alerts`` (includes inhibited/silenced alerts with their status)."""
    return _get_json(f"{base_url}/api/v2/alerts", timeout)


def wait_until(fn: Callable[[], T], *, timeout: float = 60.0, interval: float = 0.5, what: str = "condition") -> T:
    """Call ``fn`` until it returns something truthy; raise TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except (urllib.error.URLError, OSError, ServiceError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)
