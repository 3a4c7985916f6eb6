"""``llm-exporter stack``: the whole stack on 127.0.0.1 without Docker.

Runs the demo app, the capture receiver, Debian ``prometheus`` and ``prometheus-alertmanager``
from the repository's own config files (the ones docker-compose.yml mounts), prints where to
look, and stops everything it started on Ctrl-C (or SIGTERM). Grafana is Docker-only.

Layout of the working directory (default ``<repo>/.stack``)::

    prometheus/          copy of prometheus/prometheus.yml + rules/ + targets/ (127.0.0.1 addresses)
    prometheus-data/     TSDB and prometheus.log (kept between runs)
    alertmanager-data/   silences, notification log and alertmanager.log (kept between runs)
    stack.json           URLs and process ids of the running stack

Alertmanager runs in the parent of the secrets directory (default ``<repo>/secrets``) so the
relative ``secrets/...`` paths in alertmanager.yml resolve as they do in docker-compose;
missing secret files get demo values (:func:`init_secrets`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets as _secrets
import signal
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import capture as _capture
from . import demo as _demo
from . import localstack

log = logging.getLogger(__name__)

#: The capture receiver's port: alertmanager.yml's global.pagerduty_url points at it.
CAPTURE_PORT = _capture.DEFAULT_PORT

# --- secrets ----------------------------------------------------------------------------------

SECRET_FILES: tuple[str, ...] = ("pagerduty_routing_key", "slack_api_url", "grafana_admin_password")


def secret_defaults(capture_url: str = f"http://127.0.0.1:{CAPTURE_PORT}") -> dict[str, str]:
    """Demo values: receivers point at the capture receiver; a fresh random Grafana password."""
    return {
        # any 32 characters: the capture receiver plays PagerDuty and accepts every key
        "pagerduty_routing_key": "demo0000000000000000000000000000",
        "slack_api_url": capture_url + _capture.SLACK_PATH,
        "grafana_admin_password": os.environ.get("GRAFANA_ADMIN_PASSWORD") or _secrets.token_urlsafe(18),
    }


#: Mode of a secret file given to the user of the container that reads it (``init_secrets(owners=...)``):
#: that user, and the secrets directory's group (yours: the local stack still reads the files).
OWNED_MODE = 0o440


def init_secrets(directory: str | os.PathLike[str], *, capture_url: str = f"http://127.0.0.1:{CAPTURE_PORT}",
                 owners: Mapping[str, int | tuple[int, int]] | None = None) -> list[Path]:
    """Create the stack's secret files that are missing in ``directory``; returns those created.

    The content of existing files (your real PagerDuty key or Slack webhook) is never changed.
    New files are mode 0600 (whoever runs this reads them: the local stack).

    ``owners`` (docker-compose, where each file is read by one container's user):
    ``{file name: uid or (uid, gid)}``. Those files, new or existing, get that owner, the given
    group or else the directory's group, and mode ``OWNED_MODE`` (0440): readable by that
    container's user and the directory's group, nobody else; the directory gets the
    search bit for others (enter, not list) so that the container's user reaches them.
    Changing owners needs root (CAP_CHOWN, CAP_FOWNER).
    """
    directory = Path(directory)
    owners = dict(owners or {})
    unknown = sorted(set(owners) - set(SECRET_FILES))
    if unknown:
        raise ValueError(f"owners: {unknown[0]!r} is not a secret file (one of {', '.join(SECRET_FILES)})")
    directory.mkdir(parents=True, exist_ok=True)
    created = []
    for name, value in secret_defaults(capture_url).items():
        path = directory / name
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(value + "\n")
            os.chmod(path, 0o600)  # whatever the umask
            created.append(path)
        owner = owners.get(name)
        if owner is not None:
            uid, gid = owner if isinstance(owner, tuple) else (owner, directory.stat().st_gid)
            os.chmod(path, OWNED_MODE)  # before chown: never readable by the new owner with a wider mode
            os.chown(path, uid, gid)
    if owners:
        mode = directory.stat().st_mode & 0o7777
        if not mode & 0o001:
            os.chmod(directory, mode | 0o001)
    return created


def parse_owner(spec: str) -> tuple[str, int | tuple[int, int]]:
    """``NAME=UID`` or ``NAME=UID:GID`` (``init-secrets --owner``)."""
    name, sep, ids = spec.partition("=")
    uid, colon, gid = ids.partition(":")
    if not sep or not uid.isdigit() or (colon and not gid.isdigit()):
        raise ValueError(f"--owner {spec!r}: expected NAME=UID or NAME=UID:GID with numeric ids")
    return name, (int(uid), int(gid)) if colon else int(uid)


# --- ports ------------------------------------------------------------------------------------


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        # as the servers themselves do: TIME_WAIT leftovers of a previous run do not count
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int, what: str, host: str = "127.0.0.1", tries: int = 50) -> int:
    """``preferred`` if free (0: any free port), else the next free one (Debian's packages start a
    system Prometheus on 9090 and Alertmanager on 9093 where systemd runs)."""
    if preferred == 0:
        return localstack.free_port(host)
    for port in range(preferred, preferred + tries):
        if _port_free(port, host):
            if port != preferred:
                print(f"note: port {preferred} is busy, {what} uses {port}", file=sys.stderr)
            return port
    raise RuntimeError(f"no free port for {what} in {preferred}..{preferred + tries - 1}")


# --- the stack --------------------------------------------------------------------------------


def default_repo() -> Path:
    return localstack.REPO_ROOT


@dataclass
class StackConfig:
    repo: Path = field(default_factory=default_repo)
    workdir: Path | None = None  # default <repo>/.stack
    secrets_dir: Path | None = None  # default <repo>/secrets; must be named "secrets"
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    capture_port: int = CAPTURE_PORT
    demo: _demo.DemoConfig = field(default_factory=_demo.DemoConfig)
    rules_dir: Path | None = None  # default <repo>/prometheus/rules
    scrape_interval: str | None = None  # e.g. "1s" for tests; default: prometheus.yml's
    echo_pages: bool = True  # print a line per page the capture receiver gets

    def resolved(self) -> StackConfig:
        repo = Path(self.repo).resolve()
        return StackConfig(
            repo=repo,
            workdir=Path(self.workdir or repo / ".stack").resolve(),
            secrets_dir=Path(self.secrets_dir or repo / "secrets").resolve(),
            prometheus_port=self.prometheus_port, alertmanager_port=self.alertmanager_port,
            capture_port=self.capture_port, demo=self.demo,
            rules_dir=Path(self.rules_dir or repo / "prometheus" / "rules").resolve(),
            scrape_interval=self.scrape_interval, echo_pages=self.echo_pages,
        )


class Stack:
    """Start with :meth:`start`, stop with :meth:`stop` (also a context manager)."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config.resolved()
        self.capture: _capture.CaptureServer | None = None
        self.demo: _demo.Demo | None = None
        self.alertmanager: localstack.Alertmanager | None = None
        self.prometheus: localstack.Prometheus | None = None

    def check(self) -> None:
        """Fail early, with what to do, when a binary or a config file is missing."""
        cfg = self.config
        for f in (cfg.repo / "prometheus" / "prometheus.yml", cfg.repo / "alertmanager" / "alertmanager.yml"):
            if not f.is_file():
                raise FileNotFoundError(f"{f} not found: run from a clone of the llm-exporter repository "
                                        "(or pass --repo DIR)")
        if cfg.secrets_dir.name != "secrets":
            raise ValueError(f"secrets dir must be named 'secrets' (alertmanager.yml reads secrets/...): "
                             f"{cfg.secrets_dir}")
        localstack.find_binary("prometheus")
        localstack.find_binary("prometheus-alertmanager")

    def start(self) -> Stack:
        cfg = self.config
        self.check()
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if not _port_free(cfg.capture_port):
                raise RuntimeError(
                    f"port {cfg.capture_port} is busy: alertmanager.yml sends pages to the capture receiver "
                    f"there (another `llm-exporter stack` or `docker compose up` running?)")
            capture_url = f"http://127.0.0.1:{cfg.capture_port}"
            init_secrets(cfg.secrets_dir, capture_url=capture_url)
            self.capture = _capture.CaptureServer("127.0.0.1", cfg.capture_port, echo=cfg.echo_pages).start()

            demo_cfg = cfg.demo
            if demo_cfg.port != 0:
                demo_cfg.port = pick_port(demo_cfg.port, "the demo app", demo_cfg.host)
            self.demo = _demo.Demo(demo_cfg).start()

            am_port = pick_port(cfg.alertmanager_port, "Alertmanager")
            prom_port = pick_port(cfg.prometheus_port, "Prometheus")
            prom_config = localstack.prepare_prometheus_dir(
                cfg.workdir / "prometheus",
                llm_app=[f"127.0.0.1:{self.demo.port}"],
                alertmanagers=[f"127.0.0.1:{am_port}"],
                prometheus=[f"127.0.0.1:{prom_port}"],
                rules_dir=cfg.rules_dir,
                scrape_interval=cfg.scrape_interval,
                config_file=cfg.repo / "prometheus" / "prometheus.yml",
            )
            self.alertmanager = localstack.Alertmanager(
                cfg.repo / "alertmanager" / "alertmanager.yml", workdir=cfg.secrets_dir.parent,
                port=am_port, data_dir=cfg.workdir / "alertmanager-data",
            ).start()
            self.prometheus = localstack.Prometheus(
                prom_config, port=prom_port, data_dir=cfg.workdir / "prometheus-data",
            ).start()
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def urls(self) -> dict[str, str]:
        assert self.prometheus and self.alertmanager and self.demo and self.capture
        return {
            "prometheus": self.prometheus.url,
            "alertmanager": self.alertmanager.url,
            "capture": self.capture.url,
            "demo": self.demo.url,
        }

    def pids(self) -> dict[str, int]:
        out = {}
        for name, svc in (("prometheus", self.prometheus), ("alertmanager", self.alertmanager)):
            if svc is not None and svc.process is not None:
                out[name] = svc.process.pid
        return out

    def state_path(self) -> Path:
        assert self.config.workdir is not None
        return self.config.workdir / "stack.json"

    def write_state(self) -> None:
        data = {"pid": os.getpid(), "urls": self.urls(), "children": self.pids(),
                "scenario": self.demo.state.current.name if self.demo else None}
        tmp = self.state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.state_path())

    def stop(self) -> None:
        """Stop in reverse order; never raises; removes stack.json."""
        for name in ("prometheus", "alertmanager", "demo", "capture"):
            part = getattr(self, name)
            if part is None:
                continue
            try:
                part.stop()
            except Exception:  # keep stopping the rest
                log.exception("stopping %s failed", name)
            setattr(self, name, None)
        try:
            self.state_path().unlink()
        except OSError:
            pass

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def describe(self) -> str:
        u = self.urls()
        demo = u["demo"]
        return "\n".join([
            "llm-exporter stack is up (Ctrl-C stops everything it started):",
            f"  Prometheus     {u['prometheus']}/alerts   (rules, targets: {u['prometheus']}/targets)",
            f"  Alertmanager   {u['alertmanager']}",
            f"  Pages received {u['capture']}/   (and printed below as they arrive)",
            f"  Demo app       {demo}/metrics   scenario: {self.demo.state.current.name if self.demo else '?'}",
            f"  Switch the scenario: curl -X POST {demo}/scenario/<{'|'.join(_demo.SCENARIOS)}>",
            "  e.g. error-burst pages LLMHighErrorRate within a few minutes.",
            f"  Logs and data: {self.config.workdir}",
            "  Grafana needs Docker: `docker compose up` (http://localhost:3000).",
        ])


def run(config: StackConfig) -> int:
    """Start the stack, print where to look, block until Ctrl-C or SIGTERM, stop everything."""
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    stack = Stack(config)
    try:
        try:
            stack.start()
        except (localstack.BinaryNotFound, FileNotFoundError, ValueError, RuntimeError,
                localstack.ServiceError) as exc:
            print(f"llm-exporter stack: {exc}", file=sys.stderr)
            return 2
        print(stack.describe(), flush=True)
        while not stop.wait(1.0):
            for name, svc in (("Prometheus", stack.prometheus), ("Alertmanager", stack.alertmanager)):
                if svc is not None and not svc.running():
                    print(f"{name} exited:\n{svc.log_tail()}", file=sys.stderr)
                    return 1
        print("stopping...", flush=True)
        return 0
    finally:
        stack.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
