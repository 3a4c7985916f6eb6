"""``feature(name)``: the feature label for every call inside, via a contextvar.

Works across threads started with ``contextvars.copy_context()`` and across
``await`` (asyncio tasks copy the context when created). An explicit
``feature=`` argument to ``record_call``/``track``/``start_call`` wins.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from typing import Any, Callable, TypeVar

from . import contract

_feature: contextvars.ContextVar[str | None] = contextvars.ContextVar("llm_exporter_feature", default=None)

F = TypeVar("F", bound=Callable[..., Any])


def current_feature(explicit: object = None) -> object:
    """``explicit`` if given, else the innermost ``feature(...)``, else "unknown"."""
    if explicit is not None:
        return explicit
    value = _feature.get()
    return value if value is not None else contract.DEFAULT_FEATURE


class feature:  # noqa: N801 - public API name is lower case
    """Set the feature label: ``with feature("search"):`` or ``@feature("search")``.

    Re-entrant and nestable (the innermost wins); also ``async with``.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"feature name must be a str, got {type(name).__name__}")
        self.name = name
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> str:
        self._tokens.append(_feature.set(self.name))
        return self.name

    def __exit__(self, *exc: object) -> None:
        _feature.reset(self._tokens.pop())

    async def __aenter__(self) -> str:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.__exit__(*exc)

    def __call__(self, func: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                token = _feature.set(name)
                try:
                    return await func(*args, **kwargs)
                finally:
                    _feature.reset(token)
            return awrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = _feature.set(name)
            try:
                return func(*args, **kwargs)
            finally:
                _feature.reset(token)
        return wrapper  # type: ignore[return-value]
