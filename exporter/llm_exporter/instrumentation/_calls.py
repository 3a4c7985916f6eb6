"""One instrumented API call: the wrapped resource methods, and what they share with the hooks.

Each method in a provider's ``MethodSpec`` table is wrapped on the client's resource object (an
instance attribute: classes are never patched). The wrapper opens a ``Call``, runs the SDK's
method with the call active (the per-attempt HTTP hooks find it there), and when the method
returns, reads the result and finishes the call, or hands a stream to ``_streams``, which
finishes it when the stream ends. What the caller gets is the SDK's own result or exception.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
from dataclasses import dataclass

from time import perf_counter as _clock
from typing import Any, Callable, Optional

from .. import contract, metrics
from ..context import current_feature
from ..errors import log_failure, log_once
from ..quality import text_scan_enabled
from ..recorder import exemplar
from ..responses import fields
from ..tracking import Call, open_call
from . import _streams

WRAPPED_ATTR = "__llm_exporter_wrapped__"

#: Header the SDKs add to ``with_raw_response`` / ``with_streaming_response`` requests.
RAW_RESPONSE_HEADER = "x-stainless-raw-response"


@dataclass(frozen=True)
class MethodSpec:
    path: tuple[str, ...]  # attribute path from the client to the resource, e.g. ("chat", "completions")
    name: str  # method name on the resource
    operation: str  # contract.OPERATIONS value
    #: the resource's request function, called by a stream helper's manager when it is entered
    #: (anthropic ``messages.stream()``): a call only when it streams and no call is active;
    #: the model is in the request body
    request: bool = False


class CallState:
    """An instrumented call in progress: its ``Call`` and what the per-attempt hooks see."""

    __slots__ = ("call", "m", "provider", "model", "operation", "attempts", "response")

    def __init__(self, m: Any, call: Call, provider: str, model: str, operation: str) -> None:
        self.m = m
        self.call = call
        self.provider = provider
        self.model = model
        self.operation = operation
        self.attempts = 0  # HTTP attempts sent (the request hook counts them)
        self.response: Any = None  # the last attempt's HTTP response (the response hook keeps it)


_active: contextvars.ContextVar[Optional[CallState]] = contextvars.ContextVar(
    "llm_exporter_instrumented_call", default=None)
active = _active.get


def asks_raw(kwargs: dict[str, Any]) -> bool:
    """Whether a method call asks for the raw response (the SDKs' ``with_raw_response`` and
    ``with_streaming_response`` wrappers add a header through ``extra_headers``)."""
    extra = kwargs.get("extra_headers")
    if not extra:
        return False
    try:
        return any(isinstance(name, str) and name.lower() == RAW_RESPONSE_HEADER for name in extra)
    except Exception:
        return False


def _open(provider: str, spec: MethodSpec, kwargs: dict[str, Any], feature: Optional[str]) -> Optional[CallState]:
    """Open the call (in-flight gauge up); None if this is not a call to record, or on failure."""
    try:
        model = kwargs.get("model")
        stream = kwargs.get("stream") is True
        if spec.request:
            body = kwargs.get("body")
            if not stream or not isinstance(body, dict):
                return None
            model = body.get("model")
        model = model if isinstance(model, str) and model else "unknown"
        m = metrics.current()
        label = current_feature(None)
        if label == contract.DEFAULT_FEATURE and feature is not None:
            label = feature  # the client's default, unless a feature(...) block is active
        call = open_call(m, provider, model, label, spec.operation, stream or spec.request, _clock, _clock(),
                         exemplar(m))
        return CallState(m, call, provider, model, spec.operation)
    except Exception:
        log_failure("instrument.begin", "starting an instrumented call failed; it is not recorded")
        return None


def _failed(state: CallState, exc: BaseException) -> None:
    try:
        _count_retries(state)
        state.call.finish(exc)
    except Exception:
        log_failure("instrument.fail", "recording a failed call failed")


def _returned(state: CallState, result: Any, kwargs: dict[str, Any]) -> None:
    """The SDK's method returned ``result``: record it, or let its stream finish the call."""
    call = state.call
    try:
        _count_retries(state)
        if asks_raw(kwargs):
            _read_raw(state)
        elif call.stream:
            if _streams.attach(call, state.operation, result, text_scan_enabled(state.m.settings)):
                return  # the stream finishes the call
            log_once("instrument.stream-seam", "%s has no event generator to read (private _iterator, see "
                     "docs/instrumentation.md): its streams are recorded with duration and finish_reason=other only",
                     type(result).__name__)
            call.set_finish_reason("other")
        elif state.operation == "embeddings":
            _read_embeddings(call, result)
        else:
            call.record_response(result)
    except Exception:
        log_failure("instrument.complete", "reading an API result failed")
    call.finish()


def _count_retries(state: CallState) -> None:
    if state.attempts > 1:
        state.call.add_retries(state.attempts - 1)
        state.attempts = 1


def _read_raw(state: CallState) -> None:
    """A raw response: usage from its body when the SDK has read it already (``with_raw_response``
    of a plain call); otherwise (``with_streaming_response``, raw streams) the caller reads the
    body: duration and outcome only, finish_reason=other."""
    response = state.response
    try:
        body = response.content if response is not None and not state.call.stream else None
    except Exception:  # httpx: ResponseNotRead
        body = None
    if body is None:
        state.call.set_finish_reason("other")
        return
    data = json.loads(body)
    if state.operation == "embeddings":
        _read_embeddings(state.call, data)
    else:
        state.call.record_response(data)


def _read_embeddings(call: Call, result: Any) -> None:
    r = fields(result)
    prompt = fields(r.get("usage")).get("prompt_tokens")
    if isinstance(prompt, int):
        call.set_usage(input_tokens=prompt, output_tokens=0)
    call.set_response_model(r.get("model"))


def wrap_method(original: Callable[..., Any], provider: str, spec: MethodSpec, feature: Optional[str],
                is_async: bool) -> Callable[..., Any]:
    if is_async or inspect.iscoroutinefunction(original):
        # A plain function returning a coroutine, like the SDK's own methods: argument errors still
        # raise at call time, and the call starts when it is awaited (never, if never).
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            pending = original(*args, **kwargs)
            if not inspect.isawaitable(pending) or _active.get() is not None:
                return pending

            async def run() -> Any:
                state = _open(provider, spec, kwargs, feature)
                if state is None:
                    return await pending
                token = _active.set(state)
                try:
                    result = await pending
                except BaseException as exc:
                    _failed(state, exc)
                    raise
                finally:
                    _active.reset(token)
                _returned(state, result, kwargs)
                return result

            return run()
    else:
        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if _active.get() is not None:
                return original(*args, **kwargs)  # an instrumented method calling another: the outer one records
            state = _open(provider, spec, kwargs, feature)
            if state is None:
                return original(*args, **kwargs)
            token = _active.set(state)
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                _failed(state, exc)
                raise
            finally:
                _active.reset(token)
            _returned(state, result, kwargs)
            return result

    setattr(wrapper, WRAPPED_ATTR, original)
    return wrapper


def install_methods(client: Any, provider: str, specs: tuple[MethodSpec, ...], feature: Optional[str],
                    is_async: bool) -> None:
    """Wrap each spec'd method on the client's resource objects; one missing from the installed
    SDK is logged (once per method) and skipped."""
    for spec in specs:
        try:
            obj = client
            for attr in spec.path:
                obj = getattr(obj, attr)
            original = getattr(obj, spec.name)
        except Exception:
            log_once(f"instrument.missing:{provider}.{'.'.join(spec.path)}.{spec.name}",
                     "%s %s.%s is not in the installed SDK: not instrumented", provider, ".".join(spec.path), spec.name)
            continue
        if callable(original) and not hasattr(original, WRAPPED_ATTR):
            setattr(obj, spec.name, wrap_method(original, provider, spec, feature, is_async))
