"""Shared harness for the instrumentation tests: one real SDK client (sync or async) per
provider against the local fake provider, and label/assertion helpers."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from types import SimpleNamespace
from typing import Any, AsyncIterator, Awaitable, Callable

import pytest
from anthropic import Anthropic, AsyncAnthropic
from openai import AsyncOpenAI, OpenAI

import llm_exporter
from llm_exporter import contract
from llm_exporter.fakeprovider import FakeProvider
from llm_exporter.testing import fresh_registry, sample_value

MODES = ["sync", "async"]
MSGS = [{"role": "user", "content": "hello there"}]

@pytest.fixture(scope="module")
def server():
    """One local fake provider per test module."""
    with FakeProvider() as s:
        yield s


@pytest.fixture
def registry(server):
    """A fresh registry, and the fake provider's queue and request log emptied."""
    server.reset()
    return fresh_registry()


_CLIENTS = {
    "openai": (OpenAI, AsyncOpenAI, "openai_base_url"),
    "anthropic": (Anthropic, AsyncAnthropic, "anthropic_base_url"),
}


class Ctx:
    """One instrumented client plus helpers that hide the sync/async difference."""

    def __init__(self, provider: str, mode: str, server: FakeProvider, feature: str | None = None,
                 **kw: Any) -> None:
        self.mode = mode
        sync_cls, async_cls, base_url = _CLIENTS[provider]
        cls = async_cls if mode == "async" else sync_cls
        kw.setdefault("max_retries", 2)
        self.client = llm_exporter.instrument(cls(base_url=getattr(server, base_url), api_key="test", **kw),
                                              feature=feature)

    async def __call__(self, fn: Callable[..., Any], *a: Any, **kw: Any) -> Any:
        r = fn(*a, **kw)
        return await r if inspect.isawaitable(r) else r

    async def drain(self, stream: Any) -> list[Any]:
        if self.mode == "async":
            return [x async for x in stream]
        return list(stream)

    async def first(self, stream: Any) -> Any:
        if self.mode == "async":
            async for x in stream:
                return x
        for x in stream:
            return x

    @contextlib.asynccontextmanager
    async def enter(self, cm: Any) -> AsyncIterator[Any]:
        if self.mode == "async":
            async with cm as v:
                yield v
        else:
            with cm as v:
                yield v

    async def close(self, obj: Any) -> None:
        r = obj.close()
        if inspect.isawaitable(r):
            await r


def sdk_method(client: Any, *paths: str) -> Any:
    """The first of ``paths`` (dotted, from the client) the installed SDK has; the test is skipped
    when it has none (the floor run: helpers moved out of ``beta``, the Responses API is newer)."""
    for path in paths:
        obj = client
        for part in path.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        else:
            return obj
    pytest.skip(f"not in the installed SDK: {paths[0]}")


def helpers(provider: str, default_operation: str) -> SimpleNamespace:
    """Ctx/run and label helpers bound to one provider and its default operation."""

    def ctx(mode: str, server: FakeProvider, feature: str | None = None, **kw: Any) -> Ctx:
        return Ctx(provider, mode, server, feature, **kw)

    def run(mode: str, server: FakeProvider, body: Callable[[Ctx], Awaitable[None]], **kw: Any) -> None:
        async def main() -> None:
            c = ctx(mode, server, **kw)
            try:
                await body(c)
            finally:
                await c.close(c.client)

        asyncio.run(main())

    def L(model: str, operation: str = default_operation, feature: str = "unknown", **extra: str) -> dict[str, str]:
        return dict(provider=provider, model=model, feature=feature, operation=operation, **extra)

    def tokens(reg, model: str, operation: str = default_operation, feature: str = "unknown") -> dict:
        return {t: reg.get_sample_value("llm_tokens_total", L(model, operation, feature, token_type=t))
                for t in contract.TOKEN_TYPES}

    def in_flight(reg, model: str, feature: str = "unknown") -> float | None:
        return reg.get_sample_value("llm_in_flight_requests", dict(provider=provider, model=model, feature=feature))

    def assert_one(reg, model: str, finish: str, operation: str = default_operation, feature: str = "unknown",
                   error: str | None = None) -> None:
        """Exactly one call recorded, with this finish reason (and error type), and nothing in flight."""
        lab = L(model, operation, feature)
        assert reg.get_sample_value("llm_requests_total", dict(lab, finish_reason=finish)) == 1
        for other in contract.FINISH_REASONS:
            if other != finish:
                assert reg.get_sample_value("llm_requests_total", dict(lab, finish_reason=other)) in (None, 0)
        # the histogram is per (provider, model, operation): the features of the test may share it
        assert sample_value(reg, "llm_request_duration_seconds_count", lab) >= 1
        assert in_flight(reg, model, feature) == 0
        if error is not None:
            assert reg.get_sample_value("llm_errors_total", dict(lab, error_type=error)) == 1

    return SimpleNamespace(Ctx=ctx, run=run, L=L, tokens=tokens, in_flight=in_flight, assert_one=assert_one)
