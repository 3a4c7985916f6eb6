"""Wrapping SDK resource methods: one ``Call`` per API call, results passed through untouched."""

from __future__ import annotations

import functools
import inspect
import json
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Callable, Optional

from ..errors import classify_error, log_failure
from ._parsed import EventStream
from ._state import CallState, _active

WRAPPED_ATTR = "__llm_exporter_wrapped__"


@dataclass(frozen=True)
class MethodSpec:
    path: tuple[str, ...]  # attribute path from the client to the resource, e.g. ("chat", "completions")
    name: str  # method name on the resource
    operation: str  # contract.OPERATIONS value
    manager: bool = False  # returns a context manager that sends the request on enter (messages.stream)


def begin(provider: str, spec: MethodSpec, kwargs: dict[str, Any], feature: Optional[str],
          is_async: bool) -> Optional[CallState]:
    if _active.get() is not None:
        return None  # an instrumented method calling another: the outer one records
    try:
        return CallState(provider, kwargs, feature, spec.operation, is_async, spec.manager)
    except Exception:
        log_failure("instrument.begin", "starting an instrumented call failed")
        return None


def fail(state: CallState, exc: BaseException) -> None:
    try:
        # classified now: an exception holds its frames alive
        state.finish_later(None, perf_counter(), classify_error(exc))
    except Exception:
        log_failure("instrument.fail", "recording a failed call failed")


def complete(state: CallState, result: Any) -> None:
    """The method returned: record the result, unless the body will finish the call."""
    try:
        observer = state.observer
        if observer is not None:
            if type(observer) is not EventStream:
                return  # streams and unread raw bodies finish when their body ends or is closed
            state.observer = None  # the watcher lives on with the stream, not with the state
            if observer.attach(result):
                return
            observer.over = True  # no events to read: finished now, as a stream whose body was not seen
        if state.call is None or not (state.stream or state.raw):
            # the SDK's parsed result (also when the SDK itself asked for a raw response: anthropic's
            # middleware chain does for plain calls; no second parse of the body), or a stream whose
            # body was not seen. Read with the batch, after the call; the duration ends here.
            state.finish_later(None if state.stream else result, perf_counter(), None)
            return
        state.count_retries()
        if state.raw_body is not None:
            state.call.record_response(json.loads(state.raw_body))
        # else no body seen (should not happen with the HTTP hooks in place): record what is known
    except Exception:
        log_failure("instrument.complete", "reading an API result failed")
    try:
        state.call.finish()
    except Exception:
        log_failure("instrument.finish", "finishing a call failed")


def wrap_method(original: Callable[..., Any], provider: str, spec: MethodSpec,
                feature: Optional[str], is_async: bool) -> Callable[..., Any]:
    if spec.manager:
        wrapper = _wrap_manager(original, provider, spec, feature)
    elif is_async or inspect.iscoroutinefunction(original):
        wrapper = _wrap_async(original, provider, spec, feature)
    else:
        wrapper = _wrap_sync(original, provider, spec, feature)
    setattr(wrapper, WRAPPED_ATTR, original)
    return wrapper


def _wrap_sync(original: Callable[..., Any], provider: str, spec: MethodSpec,
               feature: Optional[str]) -> Callable[..., Any]:
    operation = spec.operation

    # ``begin`` and the common case of ``complete`` written out, and no closures made: about -2.6 us
    # per parsed call, cold in the CPU caches as between an app's LLM calls (benchmarks/README.md)
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _active.get() is not None:
            return original(*args, **kwargs)  # an instrumented method calling another: the outer one records
        try:
            state = CallState(provider, kwargs, feature, operation)
        except Exception:
            log_failure("instrument.begin", "starting an instrumented call failed")
            return original(*args, **kwargs)
        token = _active.set(state)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            fail(state, exc)
            raise
        finally:
            _active.reset(token)
        if state.parsed:
            state.result = result
            state.stopped = perf_counter()
            state.m.store.defer(state)  # ``finish_later``: parsed calls are deferred only with a store
        else:
            complete(state, result)
        return result

    return wrapper


def _wrap_async(original: Callable[..., Any], provider: str, spec: MethodSpec,
                feature: Optional[str]) -> Callable[..., Any]:
    # A plain function returning a coroutine, like the SDK's own (decorated) methods: argument
    # errors still raise at call time, and the call starts when it is awaited (never, if never).
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        pending = original(*args, **kwargs)
        if not inspect.isawaitable(pending):
            return pending

        async def run() -> Any:
            state = begin(provider, spec, kwargs, feature, True)
            if state is None:
                return await pending
            token = _active.set(state)
            try:
                result = await pending
            except BaseException as exc:
                fail(state, exc)
                raise
            finally:
                _active.reset(token)
            complete(state, result)
            return result

        return run()

    return wrapper


def _wrap_manager(original: Callable[..., Any], provider: str, spec: MethodSpec,
                  feature: Optional[str]) -> Callable[..., Any]:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        manager = original(*args, **kwargs)
        return ManagerProxy(manager, functools.partial(begin, provider, spec, kwargs, feature))

    return wrapper


class ManagerProxy:
    """Stands in for a stream manager whose request is sent on ``__enter__``/``__aenter__``.

    Everything else is forwarded to the SDK's manager; what ``with`` yields is the SDK's own stream.
    """

    def __init__(self, manager: Any, begin_call: Callable[[bool], Optional[CallState]]) -> None:
        self._manager = manager
        self._begin_call = begin_call

    def __enter__(self) -> Any:
        state = self._begin_call(False)
        if state is None:
            return self._manager.__enter__()
        token = _active.set(state)
        try:
            result = self._manager.__enter__()
        except BaseException as exc:
            fail(state, exc)
            raise
        finally:
            _active.reset(token)
        complete(state, result)
        return result

    def __exit__(self, *exc: Any) -> Any:
        return self._manager.__exit__(*exc)

    async def __aenter__(self) -> Any:
        state = self._begin_call(True)
        if state is None:
            return await self._manager.__aenter__()
        token = _active.set(state)
        try:
            result = await self._manager.__aenter__()
        except BaseException as exc:
            fail(state, exc)
            raise
        finally:
            _active.reset(token)
        complete(state, result)
        return result

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._manager.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._manager, name)

    def __repr__(self) -> str:
        return f"<instrumented {self._manager!r}>"


def install_methods(client: Any, provider: str, specs: tuple[MethodSpec, ...], feature: Optional[str],
                    is_async: bool) -> int:
    """Wrap each spec'd method on the client's resource objects; returns how many were wrapped."""
    count = 0
    for spec in specs:
        try:
            obj = client
            for attr in spec.path:
                obj = getattr(obj, attr)
            original = getattr(obj, spec.name, None)
        except Exception:
            continue  # resource absent in this SDK version
        if original is None or not callable(original) or hasattr(original, WRAPPED_ATTR):
            continue
        setattr(obj, spec.name, wrap_method(original, provider, spec, feature, is_async))
        count += 1
    return count
