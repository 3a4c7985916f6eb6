"""Capture receiver: a local stand-in for PagerDuty, Slack and webhook endpoints.

Alertmanager's notifications land here instead of a real pager, so the demo
stack (and the tests) show pages arriving without any account. Every POST body
is stored per path (JSON-decoded when it is JSON) and a one-line summary per
page is printed. ``GET /`` (or ``GET /<prefix>``) returns what was received as
JSON.

Paths the shipped ``alertmanager/alertmanager.yml`` uses:

- ``/pagerduty/v2/enqueue``: PagerDuty Events API v2 (``global.pagerduty_url``)
- ``/slack``: Slack incoming webhook (the URL in ``secrets/slack_api_url``)

Standalone: ``python -m llm_exporter.capture --port 9099``.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, TextIO

DEFAULT_PORT = 9099
PAGERDUTY_PATH = "/pagerduty/v2/enqueue"
SLACK_PATH = "/slack"


@dataclass(frozen=True)
class Received:
    """One POST the receiver got."""

    path: str
    body: Any  # decoded JSON, or the raw text when the body is not JSON
    headers: dict[str, str]
    time: float = field(default_factory=time.time)


def summarize(path: str, body: Any) -> str:
    """One line describing a PagerDuty, Slack or Alertmanager-webhook payload."""
    if isinstance(body, dict):
        if "event_action" in body:  # PagerDuty Events v2
            payload = body.get("payload") or {}
            return "[pagerduty] %s %s: %s" % (
                body.get("event_action"),
                payload.get("severity", "?"),
                payload.get("summary", ""),
            )
        if "attachments" in body or "text" in body:  # Slack
            titles = [a.get("title", "") for a in body.get("attachments") or [] if isinstance(a, dict)]
            return "[slack] %s %s" % (body.get("channel", ""), " | ".join(titles) or body.get("text", ""))
        if "alerts" in body and "status" in body:  # Alertmanager webhook
            names = sorted({a.get("labels", {}).get("alertname", "?") for a in body["alerts"]})
            return "[webhook %s] %s: %s" % (path, body["status"], ", ".join(names))
    return "[%s] %s" % (path, str(body)[:200])


class CaptureServer:
    """Threaded HTTP server that records POST bodies.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. ``port=0``
    picks a free port; :attr:`url` is the base URL once started.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        echo: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._echo = echo
        self._out = out
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------
    def start(self) -> "CaptureServer":
        self._server = ThreadingHTTPServer((self._host, self._port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="capture", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "CaptureServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("capture server is not running")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return "http://%s:%d" % (self._host, self.port)

    # -- results ---------------------------------------------------------
    def received(self, path_prefix: str = "") -> list[Received]:
        """Everything POSTed to a path starting with ``path_prefix``, oldest first."""
        with self._lock:
            return [r for r in self._received if r.path.startswith(path_prefix)]

    def bodies(self, path_prefix: str = "") -> list[Any]:
        return [r.body for r in self.received(path_prefix)]

    def clear(self) -> None:
        with self._lock:
            self._received.clear()

    def wait_for(
        self,
        path_prefix: str = "",
        *,
        count: int = 1,
        timeout: float = 30.0,
        predicate: Callable[[Received], bool] | None = None,
    ) -> list[Received]:
        """Block until ``count`` matching POSTs arrived; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout

        def matching() -> list[Received]:
            return [
                r for r in self._received
                if r.path.startswith(path_prefix) and (predicate is None or predicate(r))
            ]

        with self._lock:
            while True:
                found = matching()
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        "capture: %d of %d POSTs to %r within %.0fs; got paths %s"
                        % (len(found), count, path_prefix, timeout, [r.path for r in self._received])
                    )
                self._lock.wait(remaining)

    def _record(self, item: Received) -> None:
        with self._lock:
            self._received.append(item)
            self._lock.notify_all()
        if self._echo:
            out = self._out or sys.stdout
            print(summarize(item.path, item.body), file=out, flush=True)


def _handler_for(capture: CaptureServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "llm-exporter-capture"

        def do_POST(self) -> None:  # noqa: N802 (http.server API)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw
            capture._record(Received(self.path, body, dict(self.headers.items())))
            if self.path.startswith("/pagerduty"):
                # What the Events API v2 answers; Alertmanager only checks the status.
                self._reply(202, {"status": "success", "message": "Event processed", "dedup_key": "capture"})
            elif self.path.startswith(SLACK_PATH):
                self._reply(200, "ok")
            else:
                self._reply(200, {"status": "ok"})

        def do_GET(self) -> None:  # noqa: N802
            prefix = "" if self.path in ("/", "") else self.path
            items = [{"path": r.path, "time": r.time, "body": r.body} for r in capture.received(prefix)]
            self._reply(200, items)

        def _reply(self, status: int, data: Any) -> None:
            payload = (data if isinstance(data, str) else json.dumps(data)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if isinstance(data, str) else "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass  # one summary line per page is printed instead of access logs

    return Handler


def start_capture(host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, wait: float = 0.0, echo: bool = False) -> CaptureServer:
    """Start a receiver on a fixed address, retrying for up to ``wait`` seconds while it is busy.

    The PagerDuty address is fixed in alertmanager.yml (``global.pagerduty_url``), so a
    receiver for it cannot pick a random port; another stack may still be releasing it.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            return CaptureServer(host, port, echo=echo).start()
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise OSError(
                    exc.errno,
                    f"capture receiver: {host}:{port} is busy ({exc.strerror}); alertmanager.yml's "
                    "global.pagerduty_url points there. Is `llm-exporter stack` or another test running?",
                ) from exc
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Capture PagerDuty / Slack / webhook POSTs from Alertmanager.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %d)" % DEFAULT_PORT)
    parser.add_argument("--quiet", action="store_true", help="do not print a line per received page")
    args = parser.parse_args(argv)
    server = CaptureServer(args.host, args.port, echo=not args.quiet)
    server.start()
    print("capture receiver listening on %s (PagerDuty: %s, Slack: %s)" % (server.url, PAGERDUTY_PATH, SLACK_PATH), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
