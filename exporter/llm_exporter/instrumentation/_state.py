"""Per-call state shared by the method wrappers and the per-attempt HTTP hooks.

The method wrapper owns the call's lifecycle; the SDK's retry loop runs the HTTP
hooks (httpx event hooks, or Anthropic client middleware) once per attempt inside
it. They meet through a contextvar holding the active ``CallState``.
"""

from __future__ import annotations

import contextvars
from functools import partial
from time import perf_counter
from typing import Any, Optional

from .. import contract, metrics
from ..context import current_feature
from ..errors import log_failure
from ..recorder import exemplar
from ..tracking import open_call
from . import _ratelimit
from ._observe import observe
from ._parsed import READERS, watch
from ._tap import tap

_active: contextvars.ContextVar[Optional["CallState"]] = contextvars.ContextVar(
    "llm_exporter_instrumented_call", default=None
)

#: Header the SDKs add to ``with_raw_response`` / ``with_streaming_response`` requests.
RAW_RESPONSE_HEADER = "x-stainless-raw-response"


def asks_raw(kwargs: dict[str, Any]) -> bool:
    """Whether a method call asks for the raw response (the SDKs' ``with_raw_response`` and
    ``with_streaming_response`` wrappers add the header through ``extra_headers``)."""
    extra = kwargs.get("extra_headers")
    if not extra:
        return False
    try:
        return any(isinstance(name, str) and name.lower() == RAW_RESPONSE_HEADER for name in extra)
    except Exception:
        return False


class CallState:
    """One instrumented API call: its ``Call`` plus what the method wrapper and the HTTP hooks learn.

    In a single-process app, a call with a parsed result and a sync stream the SDK reads are made
    in the call as this object only: the ``Call`` is opened (labels, ``llm_in_flight_requests``)
    with the batch of finished calls (``store.Store.defer``), queued ahead of everything else the
    call queues, so a scrape while it runs still sees it in flight; the hooks only note what they
    see, and a stream is read from the events the SDK yields (``_parsed``) or, from a stream
    helper's manager, tapped (``_tap``). Async streams, raw responses and multi-process mode open
    the ``Call`` at once.
    """

    # Defaults on the class: a call sets on its instance only what differs from them (every
    # attribute set in the call is paid by every instrumented call).
    call: Any = None  # opened by ``open``: at once, or with the batch
    stream = False
    raw = False  # the caller gets the raw response, not a parsed object
    #: a parsed result, the ``Call`` opened with the batch: the wrapper finishes it with the batch too
    parsed = False
    #: a sync stream the SDK parses, opened with the batch: read from the SDK's events (``_parsed``)
    sdk_events = False
    attempts = 0  # HTTP attempts sent (the hooks count them; the retries are the rest)
    observer: Any = None  # what will finish the call from its body (streams, raw responses)
    raw_body: Optional[bytes] = None  # body of a raw response already read by the SDK
    context: Optional[contextvars.Context] = None  # the caller's, copied when the open is deferred
    result: Any = None  # set by ``finish_later``
    stopped = 0.0
    error_type: Optional[str] = None

    def __init__(self, provider: str, kwargs: dict[str, Any], feature: Optional[str], operation: str,
                 is_async: bool = False, manager: bool = False) -> None:
        """From the method call's keyword arguments (``manager``: the method returns a stream manager).
        ``feature`` is the client's default (a ``feature(...)`` block wins, read by ``open``)."""
        model = kwargs.get("model")
        self.model = model if isinstance(model, str) and model else "unknown"
        self.provider = provider
        self.operation = operation
        self.feature = feature
        self.headers: list[Any] = []  # each attempt's response headers (parsed results; read with the batch)
        self.m = m = metrics.current()
        self.start = perf_counter()
        store = m.store
        if manager or kwargs.get("stream") is True:
            self.stream = True
        if "extra_headers" in kwargs and asks_raw(kwargs):
            self.raw = True
            self.open()
        elif store is None or (self.stream and is_async):
            self.open()
        else:
            # the feature(...) block and the trace it runs in are read with the batch, in a copy
            # of the caller's context (a constant-time copy)
            self.context = contextvars.copy_context()
            store.defer(self.open_in_context)
            if not self.stream:
                self.parsed = True
            elif not manager and operation in READERS:
                self.sdk_events = True  # the SDK's own Stream object comes back: read its events

    def open(self) -> None:
        """Open the call (labels, ``llm_in_flight_requests``), in the caller's context."""
        m = self.m
        feature = current_feature(None)
        if feature == contract.DEFAULT_FEATURE and self.feature is not None:
            feature = self.feature  # the client's default, unless a feature(...) block is active
        self.call = open_call(m, self.provider, self.model, feature, self.operation, self.stream, perf_counter,
                              self.start, exemplar(m))

    def open_in_context(self) -> None:
        """``open``, with the batch: in the copy of the caller's context made when the call started."""
        self.context.run(self.open)

    def finish_later(self, result: Any, stopped: float, error_type: Optional[str]) -> None:
        """Finish the call with the batch, from a parsed result or none (an error, or a stream whose
        body was not seen); the duration ends at ``stopped``. The record queued is this state itself
        (``__call__``): no closure is made in the call."""
        self.result = result
        self.stopped = stopped
        self.error_type = error_type
        self.defer(self)

    def __call__(self) -> None:
        """The finish queued by ``finish_later`` (with the batch)."""
        call = self.call
        call.stop(self.stopped)
        self.count_retries()
        try:
            self.record_headers()
            result = self.result
            if result is not None:
                self.result = None
                if self.operation != "embeddings":
                    call.record_response(result)
                else:
                    _read_embeddings(call, result)
        finally:
            call.finish(self.error_type)

    def defer(self, apply: Any) -> None:
        """Run ``apply`` with the batch of finished calls, after the call's open (at once in
        multi-process mode). It must not raise."""
        store = self.m.store
        if store is None:
            apply()
        else:
            store.defer(apply)

    def count_retries(self) -> None:
        """Give the attempts after the first to the call (once: the attempts left count as one)."""
        if self.attempts > 1:
            self.call.add_retries(self.attempts - 1)
            self.attempts = 1

    def on_response(self, response: Any, is_async: Optional[bool] = None) -> None:
        """A stream's or raw response's attempt: its headers (rate limits, read with the batch);
        for the successful one, hook the body. (For a parsed result the response hook only
        keeps each attempt's headers in ``headers``: the wrapper reads them with the result.)"""
        headers = response.headers
        if self.sdk_events:
            # a sync stream of the SDK's events: the headers are read with the batch too (``record_headers``)
            self.headers.append(headers)
            status = getattr(response, "status_code", 0)
            if isinstance(status, int) and 200 <= status < 300 and _is_sse(_ratelimit.content_type(headers)):
                self.observer = watch(self, response)  # ``complete`` attaches it to the SDK's stream
            return
        found: Any = None
        names = None
        try:
            found, names = _ratelimit.header_map(headers)  # the content type decides now: map the headers once
            self.defer(partial(_ratelimit.note, self.m, self.provider, self.model, headers, found, names))
        except Exception:
            log_failure("instrument.ratelimit", "reading rate-limit headers failed")
        status = getattr(response, "status_code", 0)
        if not (isinstance(status, int) and 200 <= status < 300):
            return  # a failed attempt: no body to hook
        ctype = found.get(_ratelimit.CONTENT_TYPE) if found is not None else None
        sse = _is_sse(headers.get("content-type", "") if ctype is None else ctype)
        if self.call is None:  # a sync stream from a stream helper's manager, opened with the batch
            self.observer = tap(self, response) if sse else None
            return
        self.count_retries()  # the attempts are over: the body may end the call before the method returns
        if sse:
            self.observer = observe(self, response, "sse", is_async=is_async)
            return
        if self.raw:
            # the caller gets the raw response instead of a parsed object: read usage from the body
            try:
                self.raw_body = response.content  # already read (plain with_raw_response)
            except Exception:
                self.observer = observe(self, response, "json", is_async=is_async)  # read later by the caller

    def record_headers(self) -> None:
        """Rate limits from each attempt's headers noted by ``on_response`` (with the batch)."""
        for headers in self.headers:
            _ratelimit.note(self.m, self.provider, self.model, headers)
        self.headers.clear()


def _is_sse(ctype: Any) -> bool:
    """Whether a content-type header value (bytes or str) is a server-sent event stream's."""
    if isinstance(ctype, bytes):
        return ctype.find(b"text/event-stream") >= 0
    return ctype is not None and str(ctype).find("text/event-stream") >= 0


def _read_embeddings(call: Any, result: Any) -> None:
    usage = getattr(result, "usage", None)
    prompt = getattr(usage, "prompt_tokens", None)
    if isinstance(prompt, int):
        call.set_usage(input_tokens=prompt, output_tokens=0)
    model = getattr(result, "model", None)
    if isinstance(model, str):
        call.set_response_model(model)
