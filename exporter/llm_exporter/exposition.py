"""Serve /metrics: ``start_http_server``, ``make_wsgi_app``, ``make_asgi_app``, ``generate_latest``.

prometheus-client negotiates the format (OpenMetrics, with exemplars, when the
scraper's Accept header asks for it) and handles ``?name[]=`` filtering. For
the classic text format our own families are rendered by
``store.StoreCollector.render_text`` (each series' label text built once and
cached: ~80 % of ``generate_latest``'s time is rebuilding it), followed by
prometheus-client's ``generate_latest`` of the rest of the registry (the app's
own metrics). Without an explicit registry they serve the *currently
configured* registry (so a later ``configure(registry=...)`` is honoured), or,
under ``PROMETHEUS_MULTIPROC_DIR``, every worker's values aggregated from the
multiprocess directory (``multiprocess.FastMultiProcessCollector``: the same
samples as prometheus-client's ``MultiProcessCollector``, key parses and label
text cached across scrapes).
"""

from __future__ import annotations

import gzip
import socket
import threading
from functools import partial
from typing import Any, Callable, Iterable
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, make_server

import prometheus_client
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder, gzip_accepted
from prometheus_client.registry import Collector

from . import metrics, multiprocess
from .errors import log_failure
from .store import created_series_enabled, rendering


class _Current(Collector):
    """Collects whatever registry is active at scrape time."""

    def _target(self) -> Any:
        if multiprocess.directory() is not None:
            return multiprocess.collecting_registry()
        return metrics.current().registry

    def collect(self) -> Iterable[Any]:
        return self._target().collect()

    def restricted_registry(self, names: Iterable[str]) -> Any:  # ?name[]=... filtering
        return self._target().restricted_registry(names)


class _Rest(Collector):
    """Every collector of a registry but ``skip`` (ours, rendered already), through the registry's
    public ``collect``: ``skip`` answers nothing in this thread meanwhile (``store.rendering``)."""

    def __init__(self, registry: CollectorRegistry, skip: Any) -> None:
        self._registry = registry
        self._skip = skip

    def collect(self) -> Iterable[Any]:
        rendering(self._skip)
        try:
            yield from self._registry.collect()
        finally:
            rendering(None)


def generate_latest(registry: Any = None) -> bytes:
    """Text format 0.0.4 of ``registry`` (default: what /metrics serves), our families first.

    Same samples as ``prometheus_client.generate_latest``; our families' text is
    byte-identical to its rendering of them, and the rest of the registry is
    rendered by it.
    """
    target = registry if registry is not None else _Current()
    if isinstance(target, _Current):
        target = target._target()
    try:
        fast = multiprocess.fast_collector(target)
        if fast is not None:  # multi-process: merged worker files, rendered with cached label text
            return fast.render_text().encode("utf-8") + prometheus_client.generate_latest(_Rest(target, fast))
        m = metrics.current()
        c = m.collector
        if c is None or target is not m.registry or created_series_enabled():
            return prometheus_client.generate_latest(target)  # multi-process, _created on, or not our registry
        return c.render_text().encode("utf-8") + prometheus_client.generate_latest(_Rest(target, c))
    except Exception:  # e.g. registry internals changed in a newer prometheus-client: the standard path
        log_failure("exposition.fast-text", "fast /metrics rendering failed; using prometheus-client's")
        return prometheus_client.generate_latest(target)


def _is_text(encoder: Any) -> bool:
    if isinstance(encoder, partial):
        encoder = encoder.func
    return encoder is prometheus_client.generate_latest


def _bake_output(registry: Any, accept_header: str | None, accept_encoding_header: str | None,
                 params: dict[str, list[str]]) -> tuple[str, list[tuple[str, str]], bytes]:
    """prometheus-client's ``_bake_output`` with our text renderer for the classic format."""
    encoder, content_type = choose_encoder(accept_header or "")
    if "name[]" in params:
        registry = registry.restricted_registry(params["name[]"])
    elif _is_text(encoder):
        encoder = generate_latest  # label names are valid legacy names: escaping schemes change nothing
    output = encoder(registry)
    headers = [("Content-Type", content_type)]
    if gzip_accepted(accept_encoding_header or ""):
        output = gzip.compress(output)
        headers.append(("Content-Encoding", "gzip"))
    return "200 OK", headers, output


def _wsgi_app(registry: Any) -> Callable[..., Any]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ["REQUEST_METHOD"]
        if method == "OPTIONS":
            status, headers, output = "200 OK", [("Allow", "OPTIONS,GET")], b""
        elif method != "GET":
            status = "405 Method Not Allowed"
            headers = [("Allow", "OPTIONS,GET")]
            output = f"# HTTP {status}: {method}; use OPTIONS or GET\n".encode()
        elif environ.get("PATH_INFO") == "/favicon.ico":
            status, headers, output = "200 OK", [], b""
        else:
            try:
                status, headers, output = _bake_output(registry, environ.get("HTTP_ACCEPT"),
                                                       environ.get("HTTP_ACCEPT_ENCODING"),
                                                       parse_qs(environ.get("QUERY_STRING", "")))
            except Exception:  # let prometheus-client answer (and report) as it would
                return prometheus_client.make_wsgi_app(registry)(environ, start_response)
        start_response(status, headers)
        return [output]

    return app


def _registry(registry: CollectorRegistry | None) -> Any:
    metrics.current()  # make sure our families (and llm_exporter_info) exist before the first scrape
    return registry if registry is not None else _Current()


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape on stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_http_server(port: int, addr: str = "0.0.0.0", registry: CollectorRegistry | None = None) -> tuple[Any, Any]:
    """Serve /metrics on ``addr:port`` in a daemon thread; returns ``(server, thread)``.

    Stop it with ``server.shutdown(); server.server_close()``. ``port=0`` picks a
    free port (``server.server_port``).
    """
    class _Server(ThreadingWSGIServer):
        """Per-call subclass, to set the address family of ``addr``."""

    infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    _Server.address_family = infos[0][0]  # IPv6 for "::", IPv4 for "0.0.0.0" and names that resolve to it
    httpd = make_server(addr, port, _wsgi_app(_registry(registry)), _Server, handler_class=_QuietHandler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    return httpd, t


def make_wsgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """WSGI app serving the metrics (mount it at /metrics)."""
    return _wsgi_app(_registry(registry))


def make_asgi_app(registry: CollectorRegistry | None = None) -> Callable[..., Any]:
    """ASGI app serving the metrics (mount it at /metrics)."""
    reg = _registry(registry)

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        assert scope.get("type") == "http"
        hdrs = scope.get("headers") or []

        def header(name: str) -> str:
            return ",".join(v.decode("utf8") for k, v in hdrs if k.decode("utf8").lower() == name)

        status, headers, output = _bake_output(reg, header("accept"), header("accept-encoding"),
                                               parse_qs(scope.get("query_string", b"").decode("utf8")))
        payload = await receive()
        if payload.get("type") == "http.request":
            await send({"type": "http.response.start", "status": int(status.split(" ")[0]),
                        "headers": [tuple(x.encode("utf8") for x in h) for h in headers]})
            await send({"type": "http.response.body", "body": output})

    return app
