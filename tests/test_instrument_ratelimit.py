"""Rate-limit headers as the per-attempt response hook reads them (``_hooks.record_ratelimit_headers``)."""

from __future__ import annotations

import httpx
import pytest

from llm_exporter import exposition, metrics
from llm_exporter.fakeprovider import anthropic_ratelimit_headers, openai_ratelimit_headers
from llm_exporter.instrumentation._hooks import record_ratelimit_headers
from llm_exporter.testing import fresh_registry


def read(provider: str, model: str, headers: object) -> None:
    record_ratelimit_headers(metrics.current(), provider, model, headers)


def gauges(reg: object, provider: str, model: str) -> dict[tuple[str, str], float]:
    out = {}
    for fam in reg.collect():  # type: ignore[attr-defined]
        for s in fam.samples:
            if s.name in ("llm_ratelimit_remaining", "llm_ratelimit_limit") and s.labels["model"] == model:
                assert s.labels["provider"] == provider
                out[(s.name[len("llm_ratelimit_"):], s.labels["resource"])] = s.value
    return out


def test_anthropic_headers_every_resource_and_later_values_win():
    reg = fresh_registry()
    read("anthropic", "claude", httpx.Headers(anthropic_ratelimit_headers(
        requests=(4000, 3999), tokens=(2_000_000, 1_990_000), input_tokens=(1_600_000, 1_598_800),
        output_tokens=(400_000, 399_700))))
    read("anthropic", "claude", httpx.Headers(anthropic_ratelimit_headers(
        requests=(4000, 3998), tokens=(2_000_000, 1_980_000), input_tokens=(1_600_000, 1_597_600),
        output_tokens=(400_000, 399_400))))
    assert gauges(reg, "anthropic", "claude") == {
        ("remaining", "requests"): 3998, ("limit", "requests"): 4000,
        ("remaining", "tokens"): 1_980_000, ("limit", "tokens"): 2_000_000,
        ("remaining", "input_tokens"): 1_597_600, ("limit", "input_tokens"): 1_600_000,
        ("remaining", "output_tokens"): 399_400, ("limit", "output_tokens"): 400_000,
    }
    text = exposition.generate_latest(reg).decode()
    assert ('llm_ratelimit_remaining{model="claude",provider="anthropic",resource="requests"} 3998.0'
            in text)


def test_missing_garbage_duplicate_and_decimal_values():
    reg = fresh_registry()
    read("openai", "gpt-4o", httpx.Headers(openai_ratelimit_headers(500, 499, 90000, 89000)))
    # tokens limit missing, requests remaining garbage, tokens remaining a decimal, requests limit twice
    read("openai", "gpt-4o", httpx.Headers([
        ("x-ratelimit-remaining-requests", "n/a"), ("X-RateLimit-Limit-Requests", "600"),
        ("x-ratelimit-limit-requests", "700"), ("x-ratelimit-remaining-tokens", "88000.5"),
        ("set-cookie", "a=1"), ("set-cookie", "b=2"),
    ]))
    assert gauges(reg, "openai", "gpt-4o") == {
        ("remaining", "requests"): 499, ("limit", "requests"): 500,  # garbage and the ambiguous pair ignored
        ("remaining", "tokens"): 88000.5, ("limit", "tokens"): 90000,  # kept: not sent this time
    }


def test_no_rate_limit_headers_and_headers_that_cannot_be_read():
    reg = fresh_registry()
    read("openai", "gpt-4o", httpx.Headers({"Content-Type": "application/json"}))  # nothing to record
    read("openai", "gpt-4o", {"x-ratelimit-remaining-requests": "12"})  # no .raw: logged, never raised
    assert gauges(reg, "openai", "gpt-4o") == {}


@pytest.mark.parametrize("lazy", [True, False], ids=["single-process: read at scrape", "multi-process: set"])
def test_both_gauge_modes_give_the_same_values(lazy, monkeypatch):
    reg = fresh_registry()
    m = metrics.current()
    monkeypatch.setattr(m, "multiprocess", not lazy)  # only decides how the entry's gauges are fed
    for remaining in (499, 498):
        read("openai", "gpt-4o", httpx.Headers(openai_ratelimit_headers(500, remaining, 90000, 89000)))
    assert m.ratelimits["openai", "gpt-4o"].lazy is lazy
    assert gauges(reg, "openai", "gpt-4o") == {("remaining", "requests"): 498, ("limit", "requests"): 500,
                                               ("remaining", "tokens"): 89000, ("limit", "tokens"): 90000}


def test_folded_model_keeps_values_a_later_response_omits():
    reg = fresh_registry(label_limits={"model": 1})
    read("openai", "gpt-4o", httpx.Headers(openai_ratelimit_headers(500, 499, 90000, 89000)))
    read("openai", "other-1", httpx.Headers(openai_ratelimit_headers(60, 59, 1000, 900)))  # folded
    read("openai", "other-2", httpx.Headers(openai_ratelimit_headers(requests_remaining=58)))  # folded, one header
    assert gauges(reg, "openai", "__overflow__") == {("remaining", "requests"): 58, ("limit", "requests"): 60,
                                                  ("remaining", "tokens"): 900, ("limit", "tokens"): 1000}
