"""Price table: bundled coverage, alias/date resolution, user files, bad files."""

import re
import typing
from pathlib import Path

import pytest

from llm_exporter import pricing, record_call
from llm_exporter.normalise import TokenParts
from llm_exporter.pricing import PricingError, load
from llm_exporter.testing import fresh_registry

SEEDS = Path("/work/shared/seeds")


@pytest.fixture(scope="module")
def table():
    return load()


@pytest.mark.parametrize("model, base", [
    ("gpt-4o-2024-08-06", "gpt-4o"),
    ("gpt-4o-2024-11-20", "gpt-4o"),
    ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
    ("claude-opus-4-20250514", "claude-opus-4"),
    ("claude-opus-4-0", "claude-opus-4"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet"),
    ("gpt-4-0613", "gpt-4"),
    ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("gpt-4-turbo-preview", "gpt-4-turbo"),
    ("GPT-4o", "gpt-4o"),
    ("openai/gpt-4o", "gpt-4o"),
    ("gpt-5.2-pro-2025-12-11", "gpt-5.2-pro"),
])
def test_dated_and_aliased_ids_resolve(table, model, base):
    assert table.lookup(model) is not None, model
    assert table.lookup(model) == table.lookup(base)


def test_specific_snapshot_price_wins_over_suffix_rule(table):
    # gpt-4o-2024-05-13 kept its original $5/$15 price (seed 001's number)
    assert table.lookup("gpt-4o-2024-05-13").input == 5.0
    assert table.lookup("gpt-4o").input == 2.5


def test_unknown_models_are_unpriced(table):
    for model in ("my-finetune", "gpt-6-astra", "claude-mythos-5", "", None):
        assert table.lookup(model) is None


def test_every_model_the_seeds_name_is_priced(table):
    text = "\n".join(p.read_text() for p in SEEDS.glob("*.txt"))
    named = set(re.findall(r'"((?:gpt|claude)-[a-z0-9.\-]+)"', text))
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-6", "claude-haiku-4-5"} <= named
    assert sorted(m for m in named if table.lookup(m) is None) == []


def test_current_sdk_model_ids_are_priced_except_the_documented_unverified_ones(table):
    from anthropic.types import Model
    ChatModel = pytest.importorskip("openai.types.shared.chat_model").ChatModel

    def ids(alias):
        out = []
        for arg in typing.get_args(alias):
            out += ids(arg) if typing.get_args(arg) else ([arg] if isinstance(arg, str) else [])
        return out

    sdk = ids(ChatModel) + ids(Model)
    assert len(sdk) > 100
    # listed in the pricing.yaml header as not verified (no price invented for them)
    unverified = re.compile(r"^(gpt-5\.[3-9]|gpt-5\.1-mini|gpt-6|gpt-audio-mini|claude-opus-4-[6-9]"
                            r"|claude-(sonnet|haiku|opus)-5|claude-mythos|claude-fable)")
    unpriced = [m for m in sdk if table.lookup(m) is None]
    assert [m for m in unpriced if not unverified.match(m)] == []
    assert len(sdk) - len(unpriced) >= 75


def test_cost_formula():
    price = pricing.Price(input=2.0, output=8.0, cache_read=0.5, cache_write=2.5)
    parts = TokenParts(input=1_000_000, cache_read=2_000_000, cache_write=1_000_000, output=500_000, reasoning=500_000)
    assert price.cost(parts) == pytest.approx(2.0 + 1.0 + 2.5 + 8.0)


def test_user_file_overrides_and_extends(tmp_path, monkeypatch):
    f = tmp_path / "prices.yaml"
    f.write_text(
        "version: acme-7\n"
        "models:\n"
        "  gpt-4o: {input: 1.0, output: 2.0}\n"
        "  acme-llm: {input: 10, output: 20, cache_read: 1}\n"
        "aliases:\n"
        "  acme: acme-llm\n"
    )
    t = load(f)
    assert t.lookup("gpt-4o").input == 1.0 and t.lookup("gpt-4o").cache_read == 1.0  # missing cache -> input
    assert t.lookup("acme").output == 20 and t.lookup("acme").cache_write == 10
    assert t.lookup("claude-haiku-4-5").input == 1.0  # bundled entries stay
    assert t.version == "2025.12.1+acme-7"

    reg = fresh_registry(pricing=f)
    record_call(provider="acme", model="acme", duration_s=1, input_tokens=1_000_000)
    assert reg.get_sample_value("llm_cost_usd_total", dict(provider="acme", model="acme", feature="unknown",
                                                            operation="chat")) == 10.0
    assert reg.get_sample_value("llm_exporter_info", {"version": "0.1.0", "pricing_version": "2025.12.1+acme-7"}) == 1

    monkeypatch.setenv("LLM_EXPORTER_PRICING", str(f))
    from llm_exporter import config, metrics
    monkeypatch.setattr(metrics, "_active", None)  # first use reads the env var
    reg = fresh_registry()
    assert config.settings().pricing_path is None  # fresh_registry resets to bundled only
    config.configure(pricing=f)
    assert metrics.current().pricing.lookup("acme") is not None


@pytest.mark.parametrize("content, words", [
    ("models: [1, 2]", r"prices\.yaml: models: must be a mapping"),
    ("models:\n  gpt-x: {input: 1}", r"prices\.yaml: models\.gpt-x\.output: missing"),
    ("models:\n  gpt-x: {input: -1, output: 1}", r"models\.gpt-x\.input: must be a finite number >= 0"),
    ("models:\n  gpt-x: {input: cheap, output: 1}", r"models\.gpt-x\.input: must be a number"),
    ("models:\n  gpt-x: {input: 1, output: 1, cached: 1}", r"models\.gpt-x\.cached: unknown price key"),
    ("models:\n  gpt-x: 3", r"models\.gpt-x: must be a mapping"),
    ("modles: {}", r"prices\.yaml: modles: unknown key"),
    ("aliases:\n  foo: bar", r"aliases\.foo: target 'bar' is not a model"),
    ("currency: EUR", r"currency: only USD"),
    ("models: {a: [", r"prices\.yaml: <yaml>: invalid YAML"),
    ("- 1\n- 2", r"<top level>: must be a mapping"),
])
def test_bad_pricing_file_errors_name_file_key_and_problem(tmp_path, content, words):
    f = tmp_path / "prices.yaml"
    f.write_text(content)
    with pytest.raises(PricingError, match=words):
        load(f)


def test_missing_pricing_file_fails_configure_and_keeps_state(tmp_path):
    reg = fresh_registry()
    with pytest.raises(PricingError, match=r"nope\.yaml: <file>: not found"):
        fresh_registry(pricing=tmp_path / "nope.yaml")
    record_call(provider="openai", model="gpt-4o", duration_s=1)  # still recording into reg
    assert reg.get_sample_value("llm_requests_total", dict(provider="openai", model="gpt-4o", feature="unknown",
                                                           operation="chat", finish_reason="stop")) == 1


def test_bundled_table_is_valid_and_dated():
    t = load()
    assert t.version == "2025.12.1" and re.fullmatch(r"\d{4}-\d{2}-\d{2}", t.as_of)
    assert len(t.models) >= 50
