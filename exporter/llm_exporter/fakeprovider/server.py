"""The HTTP server: routes provider paths, applies the policy, paces and cuts SSE streams."""

from __future__ import annotations

import collections
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, Optional

from . import anthropic_wire, openai_wire
from .reply import Policy, Reply, RequestInfo, Resolved, default_policy, resolve

log = logging.getLogger(__name__)

_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("openai", "chat"),
    "/v1/responses": ("openai", "responses"),
    "/v1/embeddings": ("openai", "embeddings"),
    "/v1/messages": ("anthropic", "messages"),
}

def route(path: str) -> tuple[str, str]:
    """(provider, operation) of a request path; Azure-style ``/openai/deployments/<d>/...`` too."""
    path = path.split("?", 1)[0].rstrip("/")
    for suffix, target in _ROUTES.items():
        if path == suffix or (path.endswith(suffix[3:]) and "/deployments/" in path):
            return target
    return ("unknown", "unknown")


_JSON_RENDER: dict[str, Callable[[Resolved, RequestInfo], dict]] = {
    "chat": openai_wire.chat_json,
    "responses": openai_wire.responses_json,
    "embeddings": openai_wire.embeddings_json,
    "messages": anthropic_wire.messages_json,
}
_STREAM_RENDER: dict[str, Callable[[Resolved, RequestInfo], Iterator[tuple[bytes, bool]]]] = {
    "chat": openai_wire.chat_stream,
    "responses": openai_wire.responses_stream,
    "messages": anthropic_wire.messages_stream,
}

_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout)


class FakeProvider:
    """A local server speaking the OpenAI and Anthropic wire protocols.

    Each request is answered by the next scripted ``Reply`` from ``enqueue``, else by
    ``policy(RequestInfo)`` (returning ``None`` falls back to the default), else by a
    healthy default. The last ``keep_requests`` requests received are kept in ``requests``
    (bounded, so a long-running demo does not grow without limit).

        with FakeProvider() as server:
            client = OpenAI(base_url=server.openai_base_url, api_key="test")
    """

    def __init__(self, policy: Optional[Policy] = None, host: str = "127.0.0.1", port: int = 0,
                 keep_requests: int = 10_000) -> None:
        self.policy: Optional[Policy] = policy
        self._host, self._port = host, port
        self._queue: collections.deque[Reply] = collections.deque()
        self._lock = threading.Lock()
        self._requests: collections.deque[RequestInfo] = collections.deque(maxlen=keep_requests)
        self._received = 0  # requests ever received; RequestInfo.index
        self._stop = threading.Event()
        self._httpd: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # --- lifecycle -------------------------------------------------------------

    def start(self) -> "FakeProvider":
        if self._httpd is not None:
            return self
        self._stop.clear()
        self._httpd = _Server((self._host, self._port), _Handler, self)
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fakeprovider", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stop.set()  # wakes handlers sleeping in delays
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeProvider":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("FakeProvider is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    # --- behaviour and records -------------------------------------------------

    def enqueue(self, *replies: Reply) -> None:
        """Script the next replies, used in order before the policy."""
        with self._lock:
            self._queue.extend(replies)

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[RequestInfo]:
        with self._lock:
            return list(self._requests)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self._received = 0

    def _register(self, method: str, path: str, headers: dict[str, str], body: Any) -> RequestInfo:
        provider, operation = route(path)
        b = body if isinstance(body, dict) else {}
        opts = b.get("stream_options")
        try:
            retry_count = int(headers.get("x-stainless-retry-count", "0"))
        except ValueError:
            retry_count = 0
        with self._lock:
            info = RequestInfo(
                method=method, path=path, headers=headers, body=body, provider=provider,
                operation=operation, model=b.get("model") if isinstance(b.get("model"), str) else None,
                stream=b.get("stream") is True,
                include_usage=isinstance(opts, dict) and opts.get("include_usage") is True,
                index=self._received, retry_count=retry_count,
            )
            self._received += 1
            self._requests.append(info)
        return info

    def _choose(self, info: RequestInfo) -> Reply:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if self.policy is not None:
            try:
                reply = self.policy(info)
                if reply is not None:
                    return reply
            except Exception:  # a broken demo policy must not kill the server
                log.exception("fake provider policy failed")
                return Reply(status=500)
        return default_policy(info)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stop.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr: tuple[str, int], handler: type, provider: FakeProvider) -> None:
        self.provider = provider
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(addr, handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        # keep-alive connections would otherwise hold handler threads after stop()
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("fake provider connection error from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without TCP_NODELAY small SSE writes wait for delayed ACKs (~40 ms a request).
    disable_nagle_algorithm = True
    server: _Server
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("fake provider: " + format, *args)

    def do_GET(self) -> None:
        if self.path in ("/health", "/healthz"):
            self._send_json(200, {"status": "ok"}, {})
        else:
            self._send_json(404, {"error": {"message": "not found", "type": "invalid_request_error"}}, {})

    def do_POST(self) -> None:
        provider = self.server.provider
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in self.headers.items()}
        info = provider._register("POST", self.path, headers, body)
        reply = provider._choose(info)
        try:
            self._answer(provider, info, reply)
        except _DISCONNECTS:
            self.close_connection = True  # the client gave up (timeouts); nothing to do

    # --- answering ---------------------------------------------------------------

    def _answer(self, provider: FakeProvider, info: RequestInfo, reply: Reply) -> None:
        provider._sleep(reply.delay_s)
        headers = dict(reply.headers)
        if reply.retry_after is not None:
            headers["retry-after"] = _fmt(reply.retry_after)
        if info.provider == "anthropic":
            headers.setdefault("request-id", f"req_fake_{info.index}")
        else:
            headers.setdefault("x-request-id", f"req_fake_{info.index}")
            headers.setdefault("openai-processing-ms", "1")
        if info.operation == "unknown":
            self._send_json(404, openai_wire.error_body(404, Reply(error_message=f"no route {self.path}")), headers)
            return
        if reply.status >= 400:
            if info.provider == "anthropic":
                err = anthropic_wire.error_body(reply.status, reply, info)
            else:
                err = openai_wire.error_body(reply.status, reply)
            self._send_json(reply.status, err, headers)
            return
        res = resolve(reply, info)
        if info.stream and info.operation in _STREAM_RENDER:
            self._send_stream(provider, info, reply, _STREAM_RENDER[info.operation](res, info), headers)
        else:
            self._send_json(reply.status, _JSON_RENDER[info.operation](res, info), headers)

    def _send_json(self, status: int, data: Any, headers: dict[str, str]) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_stream(self, provider: FakeProvider, info: RequestInfo, reply: Reply, events: Iterator[tuple[bytes, bool]],
                     headers: dict[str, str]) -> None:
        self.send_response(reply.status)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        deltas = 0
        for data, is_delta in events:
            if is_delta:
                if reply.cut_after_deltas is not None and deltas >= reply.cut_after_deltas:
                    self._cut()
                    return
                if reply.bad_json_after_deltas is not None and deltas >= reply.bad_json_after_deltas:
                    # an event whose data is not JSON (the SDKs raise while parsing it), then the end
                    self._chunk(b'event: content_block_delta\ndata: {"type": "content_block_delta", "del\n\n'
                                if info.provider == "anthropic" else b'data: {"choices": [{"del\n\n')
                    break
                provider._sleep(reply.first_delta_delay_s if deltas == 0 else reply.chunk_delay_s)
                deltas += 1
            self._chunk(data)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _cut(self) -> None:
        # end the connection without the terminating chunk: the client sees an incomplete body
        self.close_connection = True
        self.wfile.flush()
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def _fmt(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
