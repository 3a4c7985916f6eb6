"""Error classification (exception -> ``contract.ERROR_TYPES``) and fail-open logging.

Classification is duck-typed: no SDK is imported. It looks, in order, at
cancellation, the error code/message (context length and content filter come
as plain 400s), the provider's error type in the body (Anthropic streams report
``overloaded_error`` mid-stream with HTTP 200), the HTTP status, then the
exception class names along the MRO (``RateLimitError``, ``APITimeoutError``, ...).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from . import normalise
from .locks import new_rlock

logger = logging.getLogger("llm_exporter")

_CANCELLED = (asyncio.CancelledError, GeneratorExit, KeyboardInterrupt)

_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "prompt is too long",
    "maximum context length",
    "context window",
    "model_context_window_exceeded",
    "string_above_max_length",
)
_CONTENT_FILTER_MARKERS = (
    "content_filter",
    "content_policy_violation",
    "content management policy",
    "violates our usage policies",
)

#: Provider error "type"/"code" strings (Anthropic body error.type, OpenAI code).
_BODY_TYPES = {
    "rate_limit_error": "rate_limit",
    "rate_limit_exceeded": "rate_limit",
    "insufficient_quota": "rate_limit",
    "overloaded_error": "overloaded",
    "authentication_error": "authentication",
    "invalid_api_key": "authentication",
    "permission_error": "permission",
    "not_found_error": "not_found",
    "model_not_found": "not_found",
    "invalid_request_error": "bad_request",
    "request_too_large": "bad_request",
    "timeout_error": "timeout",
    "api_error": "server_error",
    "server_error": "server_error",
}

_STATUS = {
    400: "bad_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "bad_request",
    422: "bad_request",
    429: "rate_limit",
    499: "cancelled",
    503: "overloaded",
    504: "timeout",
    529: "overloaded",
}

#: Exception class names (openai, anthropic, httpx, builtins), checked along the MRO.
_CLASS_NAMES = {
    "RateLimitError": "rate_limit",
    "APITimeoutError": "timeout",
    "RequestTimeoutError": "timeout",
    "GatewayTimeoutError": "timeout",
    "TimeoutException": "timeout",  # httpx
    "TimeoutError": "timeout",  # builtin, asyncio.TimeoutError, socket.timeout
    "APIConnectionError": "connection",
    "NetworkError": "connection",  # httpx
    "RemoteProtocolError": "connection",  # httpx
    "ConnectionError": "connection",  # builtin
    "AuthenticationError": "authentication",
    "CredentialsError": "authentication",
    "PermissionDeniedError": "permission",
    "BadRequestError": "bad_request",
    "UnprocessableEntityError": "bad_request",
    "ContentTooLargeError": "bad_request",
    "NotFoundError": "not_found",
    "OverloadedError": "overloaded",
    "ServiceUnavailableError": "overloaded",
    "InternalServerError": "server_error",
    "ContentFilterFinishReasonError": "content_filter",
    "CancelledError": "cancelled",
}


def _attr(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:  # properties of foreign objects may raise
        return None


def _body_error(exc: BaseException) -> dict[str, Any]:
    body = _attr(exc, "body")
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict):
            return err
    return {}


def _status(exc: BaseException) -> int | None:
    status = _attr(exc, "status_code")
    if status is None:
        status = _attr(_attr(exc, "response"), "status_code")
    return status if isinstance(status, int) and not isinstance(status, bool) else None


def classify_error(error: BaseException | str | None) -> str:
    """Classify an exception (or an error type string) into ``contract.ERROR_TYPES``."""
    try:
        return _classify(error)
    except Exception:  # classification must never raise into the app
        return "other"


def _classify(error: BaseException | str | None) -> str:
    if error is None:
        return "other"
    if isinstance(error, str):
        return normalise.error_type(error)
    if isinstance(error, _CANCELLED):
        return "cancelled"

    body = _body_error(error)
    codes = [c for c in (_attr(error, "code"), _attr(error, "error_code"), _attr(error, "type"),
                         body.get("code"), body.get("type")) if isinstance(c, str)]
    status = _status(error)
    if status in (None, 200, 400, 413, 422) or codes:
        text = " ".join(codes + [str(error), str(body.get("message", ""))]).lower()
        if any(m in text for m in _CONTEXT_MARKERS):
            return "context_length"
        if any(m in text for m in _CONTENT_FILTER_MARKERS):
            return "content_filter"
    for code in codes:
        mapped = _BODY_TYPES.get(code)
        if mapped is not None:
            return mapped
    if status is not None:
        mapped = _STATUS.get(status)
        if mapped is not None:
            return mapped
        if 500 <= status < 600:
            return "server_error"
    for cls in type(error).__mro__:
        mapped = _CLASS_NAMES.get(cls.__name__)
        if mapped is not None:
            return mapped
    return "other"


# --- fail-open logging -----------------------------------------------------------------

LOG_INTERVAL_S = 60.0
_last_logged: dict[str, float] = {}
_log_lock = new_rlock()  # reentrant: a finalizer may log while this thread logs


def log_failure(key: str, message: str, *args: Any, exc_info: bool = True) -> None:
    """Log an internal failure at most once per ``LOG_INTERVAL_S`` per ``key``.

    Used wherever recording fails open: the app's LLM call goes on, and a broken
    metrics setup does not flood the log at request rate.
    """
    now = time.monotonic()
    with _log_lock:
        last = _last_logged.get(key)
        if last is not None and now - last < LOG_INTERVAL_S:
            return
        if len(_last_logged) > 1000:  # keys are code locations; bound anyway
            _last_logged.clear()
        _last_logged[key] = now
    try:
        logger.warning("llm_exporter: " + message, *args, exc_info=exc_info)
    except Exception:
        pass


_logged_once: set[str] = set()


def log_once(key: str, message: str, *args: Any) -> None:
    """Log a warning the first time ``key`` is seen in this process (a missing hook point:
    it stays missing, so once is enough)."""
    with _log_lock:
        if key in _logged_once:
            return
        _logged_once.add(key)
    try:
        logger.warning("llm_exporter: " + message, *args)
    except Exception:
        pass


def reset_log_limits() -> None:
    """Forget which failures were logged (tests that assert on log output)."""
    with _log_lock:
        _last_logged.clear()
        _logged_once.clear()
