"""``start_call`` / ``Call`` / ``track``: time one LLM call and record it once.

Everything here fails open: if recording breaks, the app's call goes on and the
failure is logged (rate-limited). Only ``track`` re-raises the *app's* own
exception after recording it.
"""

from __future__ import annotations

import functools
import inspect
import time
from typing import Any, Callable, TypeVar

from . import gcsafe, metrics, normalise, responses
from .contract import OVERFLOW_VALUE
from .context import current_feature
from .errors import classify_error, log_failure
from .quality import count_hedging
from .recorder import exemplar, record

Clock = Callable[[], float]
_sc = normalise.soft_count
F = TypeVar("F", bound=Callable[..., Any])


class Call:
    """One in-flight LLM call. Create with ``start_call``; ``finish`` records it exactly once.

    Facts given after ``finish`` are ignored: what the call recorded is decided when it finishes.
    """

    # Facts start at these class-level values; an instance stores only what it sets (making a
    # call runs inside the app's call: the fewer stores, the less it costs).
    _ttft: float | None = None
    _input: int | None = None
    _output: int | None = None
    _cache_read: int | None = None
    _cache_write: int | None = None
    _reasoning: int | None = None
    _usage_known = False
    _finish_reason: str | None = None
    _response_model: str | None = None
    _retries = 0
    _refused = False
    _hedged = False
    _done = False
    _duration = 0.0
    _error_type: str | None = None

    def __init__(self, m: metrics.Metrics | None, b: metrics.Bundle | None, *, clock: Clock, start: float,
                 stream: bool, request_model: str | None, additive: bool, ex: dict[str, str] | None) -> None:
        self._m = m
        self._b = b
        self._clock = clock
        self._start = start
        self._stream = stream
        self._request_model = request_model
        self._additive = additive
        self._provider_additive = additive
        self._once = [True]  # list.pop() is atomic: exactly one finish() wins across threads
        self._ex = ex

    # --- facts about the call -----------------------------------------------------

    @property
    def finished(self) -> bool:
        return self._done

    @property
    def stream(self) -> bool:
        return self._stream

    def first_token(self) -> None:
        """Mark the first content/tool/reasoning delta now (the first mark wins).

        A call started without ``stream=True`` becomes a stream by this: only streams record time
        to first token and time per output token, and a first token says the answer streamed.
        """
        if self._ttft is None and not self._done:
            self._ttft = max(0.0, self._clock() - self._start)
            self._stream = True

    def record_response(self, response: Any) -> None:
        """Read usage, response model and finish reason from a provider response (duck-typed)."""
        if self._done:
            return
        try:
            r = responses.fields(response)
            usage = r.get("usage")
            if usage is not None:
                self.record_usage(usage)
            model = r.get("model")
            if isinstance(model, str) and model:
                self._response_model = model
            reason = responses.finish_reason_of(r)
            if reason is not None:
                self._finish_reason = normalise.finish_reason(reason)
            s = self._m.settings if self._m is not None else None
            if s is not None and (s.refusal_detector is not None or s.hedging_detector is not None):
                text, explicit = responses.text_of(response)
                if s.refusal_detector is not None and (explicit or s.refusal_detector.is_refusal(text)):
                    self._refused = True
                if s.hedging_detector is not None and s.hedging_detector.is_hedged(text):
                    self._hedged = True
        except Exception:
            log_failure("record_response", "reading an LLM response failed; some of its metrics are missing")

    def record_usage(self, usage: Any) -> None:
        """Read a usage object/dict; fields it does not report keep their previous values."""
        if self._done:
            return
        try:
            u = responses.read_usage(usage)
            if u is None:
                return
            if u.additive is not None:
                self._additive = u.additive
            self._update(u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens,
                         u.reasoning_tokens)
        except Exception:
            log_failure("record_usage", "reading LLM usage failed")

    def set_usage(self, input_tokens: int | None = None, output_tokens: int | None = None,
                  cache_read_tokens: int | None = None, cache_write_tokens: int | None = None,
                  reasoning_tokens: int | None = None) -> None:
        """Token counts in provider semantics (see ``record_call``); None keeps the old value."""
        if self._done:
            return
        self._additive = self._provider_additive
        # inline fast path for plain non-negative ints; anything else goes through soft_count
        if input_tokens is not None:
            self._input = input_tokens if type(input_tokens) is int and input_tokens >= 0 else _sc(input_tokens)
        if output_tokens is not None:
            self._output = output_tokens if type(output_tokens) is int and output_tokens >= 0 else _sc(output_tokens)
        if cache_read_tokens is not None:
            self._cache_read = (cache_read_tokens if type(cache_read_tokens) is int and cache_read_tokens >= 0
                                else _sc(cache_read_tokens))
        if cache_write_tokens is not None:
            self._cache_write = (cache_write_tokens if type(cache_write_tokens) is int and cache_write_tokens >= 0
                                 else _sc(cache_write_tokens))
        if reasoning_tokens is not None:
            self._reasoning = (reasoning_tokens if type(reasoning_tokens) is int and reasoning_tokens >= 0
                               else _sc(reasoning_tokens))
        if (self._input is not None or self._output is not None or self._cache_read is not None
                or self._cache_write is not None or self._reasoning is not None):
            self._usage_known = True

    def _update(self, inp: int | None, out: int | None, cr: int | None, cw: int | None, rs: int | None) -> None:
        if inp is not None:
            self._input = inp
        if out is not None:
            self._output = out
        if cr is not None:
            self._cache_read = cr
        if cw is not None:
            self._cache_write = cw
        if rs is not None:
            self._reasoning = rs
        if inp is not None or out is not None or cr is not None or cw is not None or rs is not None:
            self._usage_known = True

    def set_finish_reason(self, raw: Any) -> None:
        """Raw provider finish reason (end_turn, max_tokens, stop, ...); normalised."""
        if raw is not None and not self._done:
            self._finish_reason = normalise.finish_reason(raw)

    def set_response_model(self, model_id: Any) -> None:
        """Most specific model id (e.g. dated) for pricing; the label stays the request model."""
        if isinstance(model_id, str) and model_id and not self._done:
            self._response_model = model_id

    def add_retries(self, n: int = 1) -> None:
        """Count attempts after the first (``llm_retries_total``)."""
        if isinstance(n, int) and not isinstance(n, bool) and n > 0 and not self._done:
            self._retries += n

    def check_refusal(self, text: str | None, explicit: bool = False) -> bool:
        """Run the refusal detector (if configured) on streamed text; True if it matched.
        The hedging detector (if configured) runs on the same text (``llm_hedged_responses_total``).

        ``explicit``: the provider flagged a refusal itself (OpenAI's ``refusal`` delta).
        """
        if self._done:
            return False
        try:
            hedging = self._m.settings.hedging_detector if self._m is not None else None
            if hedging is not None and hedging.is_hedged(text):
                self._hedged = True
            detector = self._m.settings.refusal_detector if self._m is not None else None
            if detector is not None and (explicit or detector.is_refusal(text)):
                self._refused = True
                return True
        except Exception:
            log_failure("check_refusal", "refusal detection failed")
        return False

    # --- finishing -----------------------------------------------------------------

    def finish(self, error: BaseException | str | None = None) -> None:
        """Record the call once (later calls do nothing); its metrics are in the registry when
        this returns. Never raises.

        ``error``: the exception that ended the call, or an error type string.
        """
        try:
            self._once.pop()
        except IndexError:
            return
        self._done = True
        if self._m is None or self._b is None:
            return
        try:
            self._duration = max(0.0, self._clock() - self._start)
            if error is not None:
                self._error_type = classify_error(error)
        except Exception:
            log_failure("finish", "recording an LLM call failed; its metrics were dropped")
        # at once, unless a garbage-collector finalizer (a dropped stream) interrupted a metric update
        gcsafe.run(self._record)

    def _record(self) -> None:
        m, b = self._m, self._b
        assert m is not None and b is not None
        try:
            error_type = self._error_type
            if error_type is None:
                finish_reason = self._finish_reason or "stop"
            else:
                finish_reason = "cancelled" if error_type == "cancelled" else "error"
            record(
                m, b,
                finish_reason=finish_reason, error_type=error_type, duration=self._duration,
                ttft=self._ttft if self._stream else None, parts=self._parts() if self._usage_known else None,
                cost_usd=None, retries=self._retries, price_models=(self._response_model, self._request_model),
                refused=self._refused, ex=self._ex,
            )
            if m.settings.hedging_detector is not None:
                count_hedging(m, b.key, self._hedged)
        except Exception:
            log_failure("finish", "recording an LLM call failed; its metrics were dropped")
        finally:
            try:
                b.in_flight.dec()
            except Exception:
                log_failure("in_flight", "decrementing llm_in_flight_requests failed")

    def _parts(self) -> normalise.TokenParts:
        args = (self._input or 0, self._output or 0, self._cache_read or 0, self._cache_write or 0,
                self._reasoning or 0)
        try:
            return normalise.split_tokens(self._additive, *args, True)
        except normalise.TokenMismatch as e:
            log_failure("token-mismatch", "inconsistent token counts (%s); clamped", e, exc_info=False)
            return normalise.split_tokens(self._additive, *args, False)

    def cancel(self) -> None:
        """Finish as cancelled (finish_reason=cancelled, error_type=cancelled)."""
        self.finish("cancelled")

    # --- context manager: ``with start_call(...) as call`` ---------------------------------

    def __enter__(self) -> Call:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.finish(exc)
        return False

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self.finish(exc)
        return False


def start_call(provider: str, model: str, feature: str | None = None, operation: str = "chat",
               stream: bool = False, *, clock: Clock | None = None) -> Call:
    """Start timing one LLM call; increments ``llm_in_flight_requests``. Never raises.

    ``feature=None`` takes the current ``feature(...)`` context, else "unknown".
    ``clock`` (default ``time.perf_counter``) is injectable for tests.
    """
    clk = clock or time.perf_counter
    try:
        m = metrics.current()
        feature = current_feature(feature)
        ex = exemplar(m)
    except Exception:
        log_failure("start_call", "starting LLM call metrics failed; this call is not recorded")
        m = ex = None
    return open_call(m, provider, model, feature, operation, stream, clk, clk(), ex)


def open_call(m: metrics.Metrics | None, provider: str, model: str, feature: Any, operation: str, stream: bool,
              clock: Clock, start: float, ex: dict[str, str] | None) -> Call:
    """``start_call`` with what it reads from the caller's context given: the metrics, the
    feature, the start time and the exemplar (the instrumentation reads them once). Never raises."""
    b = None
    additive = False
    if m is not None:
        try:
            with gcsafe.section:
                b = m.lookup(provider, model, feature, operation)
                b.in_flight.inc()
            prov = b.key[0]
            additive = normalise.is_additive(prov if prov != OVERFLOW_VALUE else normalise.provider(provider))
        except Exception:
            log_failure("start_call", "starting LLM call metrics failed; this call is not recorded")
            m = b = None
    req_model = model if isinstance(model, str) else None
    return Call(m, b, clock=clock, start=start, stream=bool(stream), request_model=req_model, additive=additive,
                ex=ex)


_RESPONSE_MARKERS = ("usage", "choices", "stop_reason")


def _looks_like_response(value: Any) -> bool:
    if value is None or isinstance(value, (str, bytes, int, float, bool)):
        return False
    return any(responses.get(value, k) is not None for k in _RESPONSE_MARKERS)


class track:  # noqa: N801 - public API name is lower case
    """Time an LLM call: ``with``, ``async with`` or as a decorator.

    ::

        with track(provider="openai", model="gpt-4o-mini", feature="search") as call:
            resp = client.chat.completions.create(...)
            call.record_response(resp)

    An exception inside is classified (``llm_errors_total{error_type}``), recorded
    and re-raised. As a decorator each invocation is one call, and a return value
    that looks like a provider response is read with ``record_response``.
    """

    def __init__(self, provider: str, model: str, feature: str | None = None, operation: str = "chat",
                 stream: bool = False, *, clock: Clock | None = None) -> None:
        self._args = (provider, model, feature, operation, stream)
        self._clock = clock
        self._calls: list[Call] = []

    def _start(self) -> Call:
        return start_call(*self._args, clock=self._clock)

    def __enter__(self) -> Call:
        call = self._start()
        self._calls.append(call)
        return call

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        self._calls.pop().finish(exc)
        return False

    async def __aenter__(self) -> Call:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        return self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        if inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func):
            raise TypeError("track() cannot decorate a generator; use `with track(..., stream=True) as call:` "
                            "inside it and call call.first_token()")
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                call = self._start()
                try:
                    result = await func(*args, **kwargs)
                except BaseException as e:
                    call.finish(e)
                    raise
                if _looks_like_response(result):
                    call.record_response(result)
                call.finish()
                return result
            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call = self._start()
            try:
                result = func(*args, **kwargs)
            except BaseException as e:
                call.finish(e)
                raise
            if _looks_like_response(result):
                call.record_response(result)
            call.finish()
            return result
        return wrapper  # type: ignore[return-value]


__all__ = ["Call", "open_call", "start_call", "track"]
