"""The LLM judge (seed 000's evaluate_factual_accuracy) and the hedging detector through the
real openai and anthropic SDKs against the local fake provider."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import llm_exporter
from llm_exporter import evaluation
from llm_exporter.fakeprovider import JUDGE_GARBAGE, Reply, RequestInfo, judge_reply, judge_score
from llm_exporter.testing import fresh_registry, sample_value

sys.path.insert(0, str(Path(__file__).resolve().parent))  # any pytest import mode
from sdk_harness import MODES, MSGS, helpers, registry, server  # noqa: E402,F401

ANSWER = "Your order ships tomorrow by express courier."
REFERENCE = "The order ships tomorrow."  # 4 words, 3 of them ("order", "ships", "tomorrow") in ANSWER
EXPECTED = 0.75
EVALUATED = dict(provider="openai", model="gpt-4.1-mini", feature="search", evaluator="factual_accuracy")


def v(reg, name, **labels):
    return sample_value(reg, name, labels)


# --- parsing the judge's answer ---------------------------------------------------------------


@pytest.mark.parametrize("answer, score", [("0.8", 0.8), (" 1 ", 1.0), ("0", 0.0), (".75", 0.75), ("0.8.", 0.8),
                                           ("1.0\n", 1.0)])
def test_a_number_in_0_1_is_a_score(answer, score):
    r = evaluation.parse_score(answer)
    assert (r.score, r.error, r.ok) == (score, None, True)


@pytest.mark.parametrize("answer, error", [("Mostly accurate.", "not_a_number"), ("", "not_a_number"),
                                           (None, "not_a_number"), ("0.8 because it is close", "not_a_number"),
                                           ("-0.2", "not_a_number"), ("8", "out_of_range"),
                                           ("1.5", "out_of_range"), ("nan", "not_a_number")])
def test_anything_else_is_no_score_never_a_made_up_one(answer, error):
    r = evaluation.parse_score(answer)
    assert (r.score, r.error, r.ok) == (None, error, False)


def test_prompt_is_seed_000s_and_cuts_long_texts():
    p = evaluation.prompt("a" * 1500, "b" * 1500)
    assert p.startswith("Compare the response to the ground truth and rate factual accuracy from 0 to 1.\n"
                        "Only respond with a number.\n")
    assert "Response: " + "a" * 1000 + "\n" in p and "Ground Truth: " + "b" * 1000 + "\n" in p
    assert p.endswith("Accuracy (0-1):")


# --- the fake provider plays the judge -------------------------------------------------------------


def _req(text: str) -> RequestInfo:
    return RequestInfo("POST", "/v1/chat/completions", {}, {"model": "gpt-4o-mini",
                       "messages": [{"role": "user", "content": text}]}, "openai", "chat", "gpt-4o-mini",
                       False, False, 0, 0)


def test_fake_judge_scores_word_overlap_and_answers_garbage_on_demand():
    req = _req(evaluation.prompt(ANSWER, REFERENCE))
    assert judge_score(req) == EXPECTED
    assert judge_reply(req).text == "0.75"
    assert judge_reply(req, garbage=True).text == JUDGE_GARBAGE
    assert judge_score(_req("Summarise this order: 1 x desk")) is None
    assert judge_reply(_req("hello")) is None


# --- the judge through the SDKs -------------------------------------------------------------------

oa = helpers("openai", "chat")
an = helpers("anthropic", "messages")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", MODES)
def test_judge_scores_a_response_and_its_call_is_recorded_under_eval_judge(provider, mode, server, registry):
    h = oa if provider == "openai" else an
    judge_model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
    fn = evaluation.ajudge_factual_accuracy if mode == "async" else evaluation.judge_factual_accuracy
    results = []

    async def body(c) -> None:
        with llm_exporter.feature("search"):  # the evaluated answer's feature, read before the judge call
            results.append(await c(fn, c.client, ANSWER, REFERENCE, judge_model=judge_model, provider="openai",
                                   model="gpt-4.1-mini"))

    h.run(mode, server, body)
    assert results == [evaluation.JudgeResult(EXPECTED, "0.75", None)]
    assert v(registry, "llm_eval_score_count", **EVALUATED) == 1
    assert v(registry, "llm_eval_score_sum", **EVALUATED) == EXPECTED
    assert v(registry, "llm_eval_score_bucket", **EVALUATED, le="0.75") == 1
    assert v(registry, "llm_eval_score_bucket", **EVALUATED, le="0.7") == 0
    # the judge call itself: one instrumented call with its own feature, tokens and cost
    h.assert_one(registry, judge_model, "stop", feature="eval-judge")
    lab = h.L(judge_model, feature="eval-judge")
    assert v(registry, "llm_cost_usd_total", **lab) > 0
    assert v(registry, "llm_requests_total", **h.L(judge_model, feature="search"), finish_reason="stop") is None
    sent = server.requests[-1]
    assert sent.model == judge_model and "Ground Truth: " + REFERENCE in sent.last_user_text()
    assert sent.body["max_tokens"] == 8


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("mode", MODES)
def test_a_garbage_answer_is_no_score_and_counted(provider, mode, server, registry):
    h = oa if provider == "openai" else an
    judge_model = "gpt-4o-mini" if provider == "openai" else "claude-haiku-4-5"
    fn = evaluation.ajudge_factual_accuracy if mode == "async" else evaluation.judge_factual_accuracy
    server.policy = lambda req: judge_reply(req, garbage=True)
    results = []

    async def body(c) -> None:
        results.append(await c(fn, c.client, ANSWER, REFERENCE, judge_model=judge_model, provider="openai",
                               model="gpt-4.1-mini", feature="search"))
        server.enqueue(Reply(text="7"))
        results.append(await c(fn, c.client, ANSWER, REFERENCE, judge_model=judge_model, provider="openai",
                               model="gpt-4.1-mini", feature="search"))

    try:
        h.run(mode, server, body)
    finally:
        server.policy = None
    assert results == [evaluation.JudgeResult(None, JUDGE_GARBAGE, "not_a_number"),
                       evaluation.JudgeResult(None, "7", "out_of_range")]
    assert v(registry, "llm_eval_failures_total", evaluator="factual_accuracy", reason="not_a_number") == 1
    assert v(registry, "llm_eval_failures_total", evaluator="factual_accuracy", reason="out_of_range") == 1
    assert v(registry, "llm_eval_score_count", **EVALUATED) is None  # no 0.5 made up
    assert v(registry, "llm_requests_total", **h.L(judge_model, feature="eval-judge"), finish_reason="stop") == 2


def test_a_failing_judge_call_is_counted_and_raises(server, registry):
    import openai

    server.enqueue(Reply(status=400, error_message="bad model"))
    client = openai.OpenAI(base_url=server.openai_base_url, api_key="test", max_retries=0)
    with pytest.raises(openai.BadRequestError):
        evaluation.judge_factual_accuracy(client, ANSWER, REFERENCE, judge_model="gpt-4o-mini",
                                          provider="openai", model="gpt-4.1-mini", feature="search")
    assert v(registry, "llm_eval_failures_total", evaluator="factual_accuracy", reason="judge_error") == 1
    assert v(registry, "llm_errors_total", **oa.L("gpt-4o-mini", feature="eval-judge"), error_type="bad_request") == 1
    assert llm_exporter.instrumentation.is_instrumented(client)  # the helper instrumented the client
    client.close()


def test_a_sync_helper_refuses_an_async_client_and_vice_versa(server, registry):
    import asyncio

    import anthropic

    aclient = anthropic.AsyncAnthropic(base_url=server.anthropic_base_url, api_key="test")
    with pytest.raises(TypeError, match="use ajudge_factual_accuracy"):
        evaluation.judge_factual_accuracy(aclient, ANSWER, REFERENCE, judge_model="claude-haiku-4-5",
                                          provider="openai", model="gpt-4.1-mini")
    client = anthropic.Anthropic(base_url=server.anthropic_base_url, api_key="test")
    with pytest.raises(TypeError, match="use judge_factual_accuracy"):
        asyncio.run(evaluation.ajudge_factual_accuracy(client, ANSWER, REFERENCE, judge_model="claude-haiku-4-5",
                                                       provider="openai", model="gpt-4.1-mini"))
    assert server.requests == []
    assert v(registry, "llm_eval_failures_total", evaluator="factual_accuracy", reason="judge_error") is None


# --- hedging through the SDKs ------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_hedging_in_sdk_responses_non_stream(mode, server):
    reg = fresh_registry(hedging_detector=True)
    server.reset()

    async def oa_body(c) -> None:
        for text in ("I think the refund was approved.", "The refund was approved."):
            server.enqueue(Reply(text=text))
            await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS)
        server.enqueue(Reply(text="It is probably in transit."))
        await c(c.client.responses.create, model="gpt-4o-mini", input="where is it?")

    async def an_body(c) -> None:
        for text in ("As far as I know, it shipped.", "It shipped."):
            server.enqueue(Reply(text=text))
            await c(c.client.messages.create, model="claude-haiku-4-5", max_tokens=50, messages=MSGS)

    oa.run(mode, server, oa_body)
    an.run(mode, server, an_body)
    assert v(reg, "llm_hedged_responses_total", **oa.L("gpt-4o-mini")) == 1
    assert v(reg, "llm_hedged_responses_total", **oa.L("gpt-4o-mini", "responses")) == 1
    assert v(reg, "llm_hedged_responses_total", **an.L("claude-haiku-4-5")) == 1
    assert v(reg, "llm_requests_total", **an.L("claude-haiku-4-5"), finish_reason="stop") == 2


@pytest.mark.parametrize("mode", MODES)
def test_hedging_in_sdk_streams_with_the_refusal_detector_on(mode, server):
    """Stream readers collect text while a text detector is on; both detectors see it."""
    reg = fresh_registry(hedging_detector=True, refusal_detector=True)
    server.reset()

    async def oa_body(c) -> None:
        for text in ("I believe it shipped yesterday.", "It shipped yesterday."):
            server.enqueue(Reply(text=text, chunk_delay_s=0.001))
            await c.drain(await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS,
                                  stream=True))

    async def an_body(c) -> None:
        server.enqueue(Reply(text="I'm not sure, it might be lost.", chunk_delay_s=0.001))
        async with c.enter(c.client.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MSGS)) as s:
            await c.drain(s)

    oa.run(mode, server, oa_body)
    an.run(mode, server, an_body)
    assert v(reg, "llm_hedged_responses_total", **oa.L("gpt-4o-mini")) == 1
    assert v(reg, "llm_hedged_responses_total", **an.L("claude-haiku-4-5")) == 1
    assert v(reg, "llm_refusals_total", **oa.L("gpt-4o-mini")) == 0  # detector on: at 0, none refused


def test_hedging_in_sdk_streams_with_only_the_hedging_detector_on(server):
    reg = fresh_registry(hedging_detector=True)
    server.reset()

    async def body(c) -> None:
        server.enqueue(Reply(text="I believe it shipped yesterday.", chunk_delay_s=0.001))
        await c.drain(await c(c.client.chat.completions.create, model="gpt-4o-mini", messages=MSGS, stream=True))

    oa.run("sync", server, body)
    assert v(reg, "llm_hedged_responses_total", **oa.L("gpt-4o-mini")) == 1
