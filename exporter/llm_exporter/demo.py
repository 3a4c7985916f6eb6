"""The demo: an example LLM-powered app, instrumented, with switchable failure scenarios.

The app is what a user's service looks like: a few features calling the real ``openai``
and ``anthropic`` SDK clients, instrumented with ``llm_exporter.instrument(...)``. By
default the clients talk to the local fake provider (``llm_exporter.fakeprovider``) whose
per-request policy here plays a provider having a good or a bad day (the *scenario*). With
``real=True`` the same features call the real APIs (keys from the environment).

Besides ordinary calls, every scenario has the rare outcomes a dashboard should show
within the demo's first five minutes: refusing answers (the demo turns the refusal detector
on), user ratings (``record_feedback``), a sparse per-model schedule of content-filter
finishes, and during the first requests a canary on a model the price table cannot know.
In the normal scenario none of them fires an alert.

One HTTP port serves ``/metrics`` and the scenario switch::

    curl localhost:8000/scenario                      # current and available scenarios
    curl -X POST localhost:8000/scenario/error-burst  # switch at run time
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import sys
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import prometheus_client

log = logging.getLogger(__name__)

DEFAULT_PORT = 8000
DEFAULT_RPS = 2.0

# --- scenarios (what the fake provider does) ----------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """How the provider behaves. Probabilities are per HTTP attempt (the SDKs retry once)."""

    name: str
    description: str
    alert: str  # the alert this scenario is meant to fire ("" for none)
    latency: tuple[float, float] = (0.3, 1.2)  # non-stream wait / stream time to first token, s
    decode_s_per_token: float = 0.006  # stream pacing
    p_rate_limit: float = 0.01  # 429 with retry-after
    p_server_error: float = 0.003  # 500 / 503 / 529 (Anthropic overloaded)
    p_timeout: float = 0.002  # answer after the client's timeout
    p_truncation: float = 0.015  # finish_reason length / max_tokens
    # random finish_reason content_filter (Anthropic: refusal), on top of the demo's sparse
    # schedule (_content_filter_due): the schedule alone stays under LLMContentFilterSpike
    p_content_filter: float = 0.0
    p_cache_hit: float = 0.5  # share of calls whose prompt prefix is cached
    token_factor: float = 1.0  # prompt size multiplier (a prompt regression)
    #: request model -> model the app calls instead (the app side of a scenario)
    model_overrides: dict[str, str] = field(default_factory=dict)
    p_refusal: float = 0.02  # answers that refuse ("I cannot ..."): the refusal detector flags them


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("normal", "Healthy traffic: rare 429s (retried), rare truncation, filtering and refusals.", ""),
        Scenario(
            "latency-spike", "The provider slows down: most calls take 6-12 s.", "LLMHighLatency",
            latency=(6.0, 12.0),
        ),
        Scenario(
            # per attempt 85 % fail, so ~72 % of calls fail after the SDK's one retry: the 1h/5m
            # burn-rate page needs > 10 % over the last hour as well as the last 5 minutes
            "error-burst", "A provider incident: most calls fail with 500/503/529 or 429, retries too.",
            "LLMHighErrorRate", p_server_error=0.7, p_rate_limit=0.15,
        ),
        Scenario(
            "cost-spike",
            "A bad deploy: whole ticket histories (~100k tokens) go to the biggest models, cache misses.",
            "LLMCostSpike", token_factor=60.0, p_cache_hit=0.02,
            model_overrides={"claude-haiku-4-5": "claude-opus-4-1", "gpt-4o-mini": "gpt-4.1"},
        ),
        Scenario(
            "truncation", "max_tokens too small after a deploy: many answers cut off.",
            "LLMTruncationRateHigh", p_truncation=0.3,
        ),
    )
}


class ScenarioState:
    """The current scenario; switched from the CLI flag, the HTTP endpoint or code."""

    def __init__(self, name: str = "normal") -> None:
        self._lock = threading.Lock()
        self._current = _lookup(name)
        self._since = time.time()
        self._gauge: prometheus_client.Gauge | None = None

    @property
    def current(self) -> Scenario:
        with self._lock:
            return self._current

    @property
    def since(self) -> float:
        with self._lock:
            return self._since

    def set(self, name: str) -> Scenario:
        scenario = _lookup(name)
        with self._lock:
            self._current, self._since = scenario, time.time()
        self._export()
        log.warning("demo scenario -> %s: %s", scenario.name, scenario.description)
        return scenario

    def export_to(self, registry: prometheus_client.CollectorRegistry) -> None:
        # demo_scenario{scenario=...} 1 marks when a scenario ran (not an llm_* metric)
        gauge = _SCENARIO_GAUGES.get(id(registry))
        if gauge is None:
            gauge = prometheus_client.Gauge(
                "demo_scenario", "Scenario the llm-exporter demo is playing (1 = current).", ["scenario"],
                registry=registry,
            )
            _SCENARIO_GAUGES[id(registry)] = gauge
        self._gauge = gauge
        self._export()

    def _export(self) -> None:
        if self._gauge is not None:
            current = self.current.name
            for name in SCENARIOS:
                self._gauge.labels(scenario=name).set(1 if name == current else 0)


#: one demo_scenario gauge per registry (a second Demo in the process reuses it)
_SCENARIO_GAUGES: dict[int, prometheus_client.Gauge] = {}


def _lookup(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose one of {', '.join(SCENARIOS)}") from None


# --- the fake provider's policy -----------------------------------------------------------

#: Rate-limit budgets per model (per minute), roughly a mid usage tier.
_RPM_LIMIT = 5000
_TPM_LIMIT = 4_000_000

#: (prompt tokens range, output tokens range) by operation.
_SIZES: dict[str, tuple[tuple[int, int], tuple[int, int]]] = {
    "chat": ((600, 2400), (60, 260)),
    "messages": ((800, 3000), (80, 320)),
    "responses": ((1200, 4000), (120, 400)),
    "embeddings": ((20, 120), (0, 0)),
}

_REASONING_MODELS = ("o3", "o4-mini", "o1", "gpt-5")
_MAX_PROMPT = 190_000  # stay inside every demo model's context window


class DemoPolicy:
    """Decides each fake-provider answer from the current scenario (seeded, thread-safe)."""

    def __init__(self, state: ScenarioState, seed: int | None = None, time_scale: float = 1.0,
                 client_timeout: float = 20.0) -> None:
        self.state = state
        self.seed = seed
        self.time_scale = time_scale
        self.client_timeout = client_timeout
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._count = 0  # own sequence: the demo clears the provider's request log (and its index)
        self._windows: dict[tuple[str, str], deque[tuple[float, int]]] = {}
        self._answers: dict[tuple[str, str], int] = {}  # generated answers per (provider, model)

    def _random(self) -> random.Random:
        # seeded: the n-th answer depends only on (seed, n); sequential runs are reproducible
        with self._lock:
            n, self._count = self._count, self._count + 1
            if self.seed is not None:
                return random.Random(f"{self.seed}:{n}")
            return random.Random(self._rng.getrandbits(64))

    def __call__(self, req: Any) -> Any:
        from .fakeprovider import Reply

        sc = self.state.current
        rng = self._random()
        ts = self.time_scale
        body = req.body if isinstance(req.body, dict) else {}
        # errors first: they are per attempt, so the SDK's retry often succeeds
        roll = rng.random()
        if roll < sc.p_server_error:
            status = rng.choice([500, 503, 529] if req.provider == "anthropic" else [500, 502, 503])
            headers = {**self._ratelimit_headers(req, 0), "retry-after-ms": _ms(0.2 * ts)}
            return Reply(status=status, headers=headers, delay_s=rng.uniform(0.05, 0.3) * ts)
        roll -= sc.p_server_error
        if roll < sc.p_rate_limit:
            headers = {**self._ratelimit_headers(req, 0), "retry-after-ms": _ms(0.5 * ts)}
            return Reply(status=429, headers=headers, delay_s=0.02 * ts)
        roll -= sc.p_rate_limit
        if roll < sc.p_timeout:
            return Reply(delay_s=self.client_timeout * 1.5,  # client_timeout is already scaled
                         headers=self._ratelimit_headers(req, 0))
        judge = _judge_answer(req, rng, ts)
        if judge is not None:
            return judge

        (p_lo, p_hi), (o_lo, o_hi) = _SIZES.get(req.operation, _SIZES["chat"])
        prompt = rng.randint(p_lo, p_hi)
        if req.operation == "embeddings":
            return Reply(prompt_tokens=prompt, delay_s=rng.uniform(0.05, 0.2) * ts,
                         headers=self._ratelimit_headers(req, prompt))
        prompt = min(_MAX_PROMPT, int(prompt * sc.token_factor))
        output = rng.randint(o_lo, o_hi)
        reasoning = 0
        reasoning_text = None
        model = req.model or ""
        if model.startswith(_REASONING_MODELS) or "thinking" in body:
            reasoning = rng.randint(200, 1800)
            reasoning_text = "Let me check the order history and the policy before answering."
        finish = None
        roll = rng.random()
        if roll < sc.p_truncation:
            # the answer stops at max_tokens (which also bounds the reasoning)
            budget = _max_output(body) or (o_hi + reasoning)
            reasoning = min(reasoning, budget // 2)
            finish, output = "length", max(1, budget - reasoning)
        elif roll < sc.p_truncation + sc.p_content_filter:
            finish, output = "content_filter", rng.randint(1, 12)
        if self._content_filter_due(req) and finish != "content_filter":
            finish, output = "content_filter", rng.randint(1, 12)
        cached = cache_write = 0
        if rng.random() < sc.p_cache_hit:
            cached = int(prompt * rng.uniform(0.5, 0.9)) // 64 * 64  # providers cache in blocks
        elif req.provider == "anthropic" and rng.random() < 0.2:
            cache_write = int(prompt * 0.6)
        wait = rng.uniform(*sc.latency) * ts
        # decode time: reasoning is paced faster and capped so healthy p99 stays well under 5 s
        decode = sc.decode_s_per_token * ts * min(300, output + reasoning // 5)
        words = 24
        reply = Reply(
            text=_hedged(_answer_text(rng, words), req.model),
            finish_reason=finish,
            prompt_tokens=prompt,
            completion_tokens=output + reasoning,
            cached_tokens=cached,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning if req.provider == "openai" else 0,
            reasoning_text=reasoning_text,
            headers=self._ratelimit_headers(req, prompt + output + reasoning),
        )
        reply = self._maybe_refuse(rng, sc, reply, finish, reasoning)
        if req.stream:
            # time to first token, then the decode time of the output spread over the deltas
            deltas = words + (len(reasoning_text.split()) if reasoning_text else 0)
            return replace(reply, first_delta_delay_s=wait, chunk_delay_s=decode / deltas)
        return replace(reply, delay_s=wait + decode)

    # Rare outcomes, so that every dashboard panel has something to show within the demo's
    # first five minutes, yet no alert fires in the normal scenario.

    def _content_filter_due(self, req: Any) -> bool:
        """Whether this answer is content-filtered by the schedule: per model, answers 25
        and 50 (two, so that Prometheus sees the series increase), then every 2500th. At the
        default 2 req/s the busiest model gives ~2200 answers an hour: at most 2 filtered
        calls in any hour per call path, under LLMContentFilterSpike's "more than 3"."""
        key = (req.provider, req.model or "")
        with self._lock:
            n = self._answers[key] = self._answers.get(key, 0) + 1
        return content_filter_due(n)

    @staticmethod
    def _maybe_refuse(rng: random.Random, sc: Scenario, reply: Any, finish: str | None, reasoning: int) -> Any:
        """A share (``p_refusal``) of normal answers refuse; drawn after every other choice of
        the answer, so the rest of the seeded traffic is the same with or without refusals."""
        if finish is not None or rng.random() >= sc.p_refusal:
            return reply
        return replace(reply, text=rng.choice(REFUSALS), completion_tokens=rng.randint(12, 40) + reasoning)

    def _ratelimit_headers(self, req: Any, tokens: int) -> dict[str, str]:
        from .fakeprovider import anthropic_ratelimit_headers, openai_ratelimit_headers

        now = time.monotonic()
        key = (req.provider, req.model or "")
        with self._lock:
            window = self._windows.setdefault(key, deque())
            while window and window[0][0] < now - 60:
                window.popleft()
            window.append((now, tokens))  # one entry per request, as the provider counts them
            used_req = len(window)
            used_tok = sum(t for _, t in window)
        rem_req, rem_tok = max(0, _RPM_LIMIT - used_req), max(0, _TPM_LIMIT - used_tok)
        if req.provider == "anthropic":
            return anthropic_ratelimit_headers(requests=(_RPM_LIMIT, rem_req), tokens=(_TPM_LIMIT, rem_tok))
        return openai_ratelimit_headers(_RPM_LIMIT, rem_req, _TPM_LIMIT, rem_tok)


#: Refusals as a support assistant words them; each matches a default refusal-detector pattern.
REFUSALS: tuple[str, ...] = (
    "I cannot help with that request.",
    "I'm unable to share details about another customer's order.",
    "I apologize, but I can't process refunds for orders older than 30 days.",
)

#: Per-model answer numbers that the schedule content-filters (see DemoPolicy._content_filter_due).
CONTENT_FILTER_FIRST: tuple[int, ...] = (25, 50)
CONTENT_FILTER_EVERY = 2500


def content_filter_due(n: int) -> bool:
    """Whether a model's ``n``-th answer (1-based) is content-filtered by the demo's schedule."""
    return n in CONTENT_FILTER_FIRST or n % CONTENT_FILTER_EVERY == 0


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


def _max_output(body: dict) -> int | None:
    for key in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        if isinstance(body.get(key), int):
            return body[key]
    return None


_WORDS = ("your order ships tomorrow the refund was approved we found three matching articles "
          "the ticket is routed to billing thanks for your patience here is a short summary").split()


def _answer_text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + "."


# --- quality signals: hedged answers and a judge (seed 000's QualityMonitor) --------------------

#: Share of answers that open with a hedging phrase, by request model (others: _HEDGE_DEFAULT),
#: so the "Hedging rate by model" panel has something to compare.
_HEDGE_SHARE = {"gpt-4o-mini": 0.2, "gpt-4.1-mini": 0.25, "claude-haiku-4-5": 0.15, "claude-sonnet-4-6": 0.05}
_HEDGE_DEFAULT = 0.1
_HEDGES = ("I think", "I believe", "Probably", "As far as I know,", "I'm not sure, but")
#: Share of judge answers that are not a number (counted as unscored evaluations).
_JUDGE_GARBAGE_SHARE = 0.03


def _hedged(text: str, model: str | None) -> str:
    """``text``, opened with a hedging phrase for a model's share of answers. Decided by a hash
    of the text, not the policy's random stream, so seeded traffic stays what it was."""
    h = zlib.crc32(text.encode())
    if (h % 1000) / 1000 >= _HEDGE_SHARE.get(model or "", _HEDGE_DEFAULT):
        return text
    return f"{_HEDGES[h % len(_HEDGES)]} {text[0].lower()}{text[1:]}"


def _judge_answer(req: Any, rng: random.Random, ts: float) -> Any:
    """A judge prompt gets the fake judge's score (word overlap with the ground truth), a few
    tokens long; now and then an answer that is not a number."""
    from .fakeprovider import judge_reply

    reply = judge_reply(req, garbage=rng.random() < _JUDGE_GARBAGE_SHARE)
    if reply is None:
        return None
    return replace(reply, delay_s=rng.uniform(0.2, 0.6) * ts)


#: (question, ground truth) pairs the demo's evaluation job asks; the ground truths use the
#: words of the fake answers, so the judge's overlap scores spread over 0..1.
GOLDEN_SET: tuple[tuple[str, str], ...] = (
    ("When will my order ship?", "Your order ships tomorrow."),
    ("Was my refund approved?", "The refund was approved."),
    ("Where did my ticket go?", "The ticket is routed to billing."),
    ("Did you find help articles?", "We found three matching articles."),
)
#: Evaluated (client attribute, model role, feature) pairs, taken in turn; the judge model.
_EVALUATED = (("openai", "answer", "search"), ("anthropic", "triage", "support_triage"))
JUDGE_MODEL = "gpt-4o-mini"


class Evaluations:
    """The app's evaluation job: asks a golden question, has a judge model score the answer
    against the ground truth (``evaluation.judge_factual_accuracy``: feature ``eval-judge``)."""

    def __init__(self, app: DemoApp, interval_s: float = 3.0, seed: int | None = None) -> None:
        self.app = app
        self.interval_s = interval_s
        self._rng = random.Random(seed)
        self._n = 0
        self.results: Counter[str] = Counter()

    def run_one(self) -> Any:
        """One evaluation; returns the ``JudgeResult`` (SDK errors propagate)."""
        from .context import feature
        from .evaluation import judge_factual_accuracy

        attr, role, feature_name = _EVALUATED[self._n % len(_EVALUATED)]
        self._n += 1
        question, truth = self._rng.choice(GOLDEN_SET)
        model = self.app.model(role)
        with feature(feature_name):
            if attr == "openai":
                resp = self.app.openai.chat.completions.create(
                    model=model, max_tokens=200, messages=[{"role": "user", "content": question}])
                answer = resp.choices[0].message.content or ""
            else:
                resp = self.app.anthropic.messages.create(
                    model=model, max_tokens=200, messages=[{"role": "user", "content": question}])
                answer = "".join(b.text for b in resp.content if b.type == "text")
            result = judge_factual_accuracy(self.app.openai, answer, truth, judge_model=JUDGE_MODEL,
                                            provider=attr, model=model)
        self.results["scored" if result.ok else "unscored"] += 1
        return result

    def loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            try:
                self.run_one()
            except Exception as exc:  # noqa: BLE001 - provider errors: the next round tries again
                self.results[type(exc).__name__] += 1


def enable_quality_signals() -> None:
    """The opt-in hedging detector, on for the demo (``configure`` keeps the other settings)."""
    from .config import configure

    configure(hedging_detector=True)


# --- the app: features calling the SDKs ---------------------------------------------------

FEATURES: tuple[str, ...] = ("order_summary", "support_triage", "search", "code_review", "draft_reply")
#: Share of traffic per feature.
_FEATURE_WEIGHTS: tuple[float, ...] = (0.3, 0.25, 0.25, 0.1, 0.1)
#: Request models per feature in fake mode, and the cheaper choice used with --real.
MODELS: dict[str, dict[str, str]] = {
    "fake": {"order": "gpt-4o-mini", "triage": "claude-haiku-4-5", "embed": "text-embedding-3-small",
             "answer": "gpt-4.1-mini", "reason": "o4-mini", "draft": "claude-sonnet-4-6"},
    "real": {"order": "gpt-4o-mini", "triage": "claude-haiku-4-5", "embed": "text-embedding-3-small",
             "answer": "gpt-4o-mini", "reason": "o4-mini", "draft": "claude-haiku-4-5"},
}
_PROVIDER_OF = {"order_summary": "openai", "support_triage": "anthropic", "search": "openai",
                "code_review": "openai", "draft_reply": "anthropic"}

_ORDERS = ["2 x espresso beans, 1 x grinder, express shipping", "1 x standing desk, assembly",
           "3 x notebooks, 1 x fountain pen", "1 x laptop sleeve, gift wrap"]
_TICKETS = ["My package never arrived and tracking has not moved in a week.",
            "I was charged twice for the same order.", "How do I change my delivery address?",
            "The app crashes when I open my order history."]
_QUERIES = ["return policy for opened items", "warranty for grinders", "track my order", "bulk discount"]
_SYSTEM = ("You are the assistant of an online shop. Be brief, factual and polite. "
           "Policies: returns within 30 days; refunds to the original payment method.")


#: Share of answered user requests the user rates, and how (positive, neutral, negative).
FEEDBACK_SHARE = 0.25
FEEDBACK_RATINGS: tuple[str, ...] = ("positive", "neutral", "negative")
FEEDBACK_WEIGHTS: tuple[float, ...] = (0.7, 0.2, 0.1)
#: The model whose answer the user of a feature sees (search: the chat answer, not the embedding).
ANSWER_ROLE: dict[str, str] = {"order_summary": "order", "support_triage": "triage", "search": "answer",
                               "code_review": "reason", "draft_reply": "draft"}

#: The canary: a fine-tuned model (its price is the customer's own, not in any table) that
#: gets one order summary in CANARY_EVERY during the first CANARY_REQUESTS user requests
#: (400: about 3 minutes at the default 2 req/s). Its calls are unpriced; it stops long
#: before LLMUnpricedModel's 15 minutes.
CANARY_MODEL = "ft:gpt-4o-mini-2024-07-18:acme-shop:order-summary:Cq7d2Lx9"
CANARY_REQUESTS = 400
CANARY_EVERY = 8


class DemoApp:
    """The example app: one instrumented OpenAI client and one Anthropic client."""

    def __init__(self, openai_client: Any = None, anthropic_client: Any = None, real: bool = False,
                 state: ScenarioState | None = None) -> None:
        self.openai = openai_client
        self.anthropic = anthropic_client
        self.real = real
        self.state = state
        self._models = MODELS["real" if real else "fake"]
        self.features = [f for f in FEATURES if self._client_for(f) is not None]
        if not self.features:
            raise ValueError("no provider client: set OPENAI_API_KEY and/or ANTHROPIC_API_KEY")
        self.weights = [_FEATURE_WEIGHTS[FEATURES.index(f)] for f in self.features]
        self._local = threading.local()  # per-request model choices (the canary)
        self._counts_lock = threading.Lock()
        self._started = 0  # user requests started
        self._order_summaries = 0

    def _client_for(self, feature_name: str) -> Any:
        return self.openai if _PROVIDER_OF[feature_name] == "openai" else self.anthropic

    def pick(self, rng: random.Random) -> str:
        return rng.choices(self.features, self.weights)[0]

    def run(self, feature_name: str, rng: random.Random) -> None:
        """One user request of ``feature_name``; SDK errors propagate (the caller counts them)."""
        from .context import feature

        canary = self._canary_model(feature_name)
        self._local.models = {ANSWER_ROLE[feature_name]: canary} if canary else {}
        try:
            with feature(feature_name):
                getattr(self, feature_name)(rng)
            self._user_feedback(feature_name, rng)
        finally:
            self._local.models = {}

    def model(self, role: str) -> str:
        chosen = getattr(self._local, "models", None)
        if chosen and role in chosen:
            return chosen[role]
        name = self._models[role]
        if self.state is not None:
            name = self.state.current.model_overrides.get(name, name)
        return name

    # The app's rare events: user ratings, and a canary on a model the price table lacks.

    def _user_feedback(self, feature_name: str, rng: random.Random) -> None:
        """Some users rate the answer they got (``record_feedback``), like a thumbs up/down
        widget would. Drawn after the call, so the calls are the same with or without it."""
        from .quality import record_feedback

        if rng.random() < FEEDBACK_SHARE:
            rating = rng.choices(FEEDBACK_RATINGS, FEEDBACK_WEIGHTS)[0]
            record_feedback(feature_name, self.model(ANSWER_ROLE[feature_name]), rating)

    def _canary_model(self, feature_name: str) -> str | None:
        """The canary: during the first ``CANARY_REQUESTS`` user requests, every
        ``CANARY_EVERY``-th order summary goes to a fine-tuned model that no price table
        can know (fake provider only: the real API would answer 404)."""
        with self._counts_lock:
            started, self._started = self._started, self._started + 1
            if feature_name != "order_summary":
                return None
            n, self._order_summaries = self._order_summaries, self._order_summaries + 1
        if self.real or started >= CANARY_REQUESTS or n % CANARY_EVERY != 1:
            return None
        return CANARY_MODEL

    def _max(self, normal: int, real_cap: int = 120) -> int:
        """max_tokens: small with real providers (they cost money); tiny for their truncation scenario."""
        if not self.real:
            return normal
        if self.state is not None and self.state.current.name == "truncation":
            return 16
        return min(normal, real_cap)

    # Each feature uses a different API shape, as real apps do.

    def order_summary(self, rng: random.Random) -> None:
        """OpenAI chat completion, not streamed."""
        self.openai.chat.completions.create(
            model=self.model("order"), max_tokens=self._max(300),
            messages=[{"role": "system", "content": _SYSTEM},
                      {"role": "user", "content": "Summarise this order for the customer: " + rng.choice(_ORDERS)}],
        )

    def support_triage(self, rng: random.Random) -> None:
        """Anthropic ``messages.stream`` helper, streamed."""
        with self.anthropic.messages.stream(
            model=self.model("triage"), max_tokens=self._max(400), system=_SYSTEM,
            messages=[{"role": "user", "content": "Classify and answer this ticket: " + rng.choice(_TICKETS)}],
        ) as stream:
            for _ in stream.text_stream:
                pass

    def search(self, rng: random.Random) -> None:
        """OpenAI embeddings, then a streamed chat answer with usage in the last chunk."""
        query = rng.choice(_QUERIES)
        self.openai.embeddings.create(model=self.model("embed"), input=query)
        stream = self.openai.chat.completions.create(
            model=self.model("answer"), max_tokens=self._max(250), stream=True,
            stream_options={"include_usage": True},
            messages=[{"role": "system", "content": _SYSTEM},
                      {"role": "user", "content": "Answer from the help centre: " + query}],
        )
        for _ in stream:
            pass

    def code_review(self, rng: random.Random) -> None:
        """OpenAI Responses API with a reasoning model."""
        self.openai.responses.create(
            model=self.model("reason"), max_output_tokens=self._max(2000, real_cap=600),
            reasoning={"effort": "low"},
            input="Review this change to the checkout code: " + rng.choice(_ORDERS),
        )

    def draft_reply(self, rng: random.Random) -> None:
        """Anthropic ``messages.create(stream=True)``; extended thinking in fake mode."""
        extra: dict[str, Any] = {}
        if not self.real:
            extra["thinking"] = {"type": "enabled", "budget_tokens": 1024}
        stream = self.anthropic.messages.create(
            model=self.model("draft"), max_tokens=self._max(2048), stream=True,
            system=_SYSTEM,
            messages=[{"role": "user", "content": "Draft a reply to: " + rng.choice(_TICKETS)}],
            **extra,
        )
        for _ in stream:
            pass


def make_clients(base_openai: str | None, base_anthropic: str | None, timeout: float,
                 real: bool = False) -> tuple[Any, Any]:
    """Instrumented SDK clients: against the fake provider, or the real APIs with env keys."""
    from anthropic import Anthropic
    from openai import OpenAI

    from .instrumentation import instrument

    if real:
        oa = instrument(OpenAI(timeout=timeout, max_retries=1)) if os.environ.get("OPENAI_API_KEY") else None
        an = (instrument(Anthropic(timeout=timeout, max_retries=1))
              if os.environ.get("ANTHROPIC_API_KEY") else None)
        return oa, an
    oa = OpenAI(base_url=base_openai, api_key="demo-key", timeout=timeout, max_retries=1)
    an = Anthropic(base_url=base_anthropic, api_key="demo-key", timeout=timeout, max_retries=1)
    return instrument(oa), instrument(an)


# --- traffic ------------------------------------------------------------------------------


class Traffic:
    """Issues requests at a bounded rate from a thread pool; counts outcomes for the log."""

    def __init__(self, app: DemoApp, rps: float, seed: int | None = None, max_in_flight: int = 48) -> None:
        if rps <= 0:
            raise ValueError("rps must be > 0")
        self.app = app
        self.rps = rps
        self.seed = seed
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(max_workers=max_in_flight, thread_name_prefix="demo-request")
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outcomes: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._count = 0

    def run_one(self, index: int | None = None) -> str:
        """One request, in the calling thread; returns "ok" or the exception's class name."""
        with self._lock:
            i = self._count if index is None else index
            self._count += 1
            rng = random.Random(f"{self.seed}:{i}") if self.seed is not None else random.Random(
                self._rng.getrandbits(64))
        name = self.app.pick(rng)
        try:
            self.app.run(name, rng)
            outcome = "ok"
        except Exception as exc:  # noqa: BLE001 - the demo app survives provider errors, as a real one must
            outcome = type(exc).__name__
        with self._lock:
            self.outcomes[outcome] += 1
        return outcome

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, name="demo-traffic", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        interval = 1.0 / self.rps
        next_at = time.monotonic()
        while not self._stop.is_set():
            # drop a tick instead of queueing when every worker is busy (bounded load)
            if self._slots.acquire(blocking=False):
                try:
                    self._pool.submit(self._guarded)
                except RuntimeError:  # pool shut down
                    self._slots.release()
                    return
            else:
                with self._lock:
                    self.outcomes["dropped"] += 1
            next_at += interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _guarded(self) -> None:
        try:
            self.run_one()
        finally:
            self._slots.release()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def join(self) -> None:
        """Wait for in-flight requests (after ``stop``)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.outcomes)


# --- HTTP: /metrics and the scenario switch ------------------------------------------------


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("demo http: " + format, *args)


def control_app(state: ScenarioState, registry: prometheus_client.CollectorRegistry,
                allow: Iterable[str] = tuple(SCENARIOS)) -> Callable:
    """WSGI app: /metrics, GET /scenario, POST /scenario/<name>, /healthz."""
    from .exposition import make_wsgi_app

    metrics_app = make_wsgi_app(registry)
    allowed = tuple(allow)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        path = environ.get("PATH_INFO", "/")
        method = environ.get("REQUEST_METHOD", "GET")

        def send(status: str, data: Any) -> list[bytes]:
            body = (json.dumps(data, indent=1) + "\n").encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]

        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            return send("200 OK", {"status": "ok"})
        if path in ("/", "/scenario") and method == "GET":
            return send("200 OK", {
                "scenario": state.current.name, "since": state.since,
                "scenarios": {s.name: {"description": s.description, "alert": s.alert}
                              for s in SCENARIOS.values() if s.name in allowed},
                "switch": "POST /scenario/<name>",
            })
        if path.startswith("/scenario/"):
            if method != "POST":
                return send("405 Method Not Allowed", {"error": "use POST"})
            name = path[len("/scenario/"):].strip("/")
            if name not in allowed:
                return send("404 Not Found", {"error": f"unknown or unavailable scenario {name!r}",
                                              "scenarios": list(allowed)})
            state.set(name)
            return send("200 OK", {"scenario": name})
        return send("404 Not Found", {"error": "not found"})

    return app


# --- putting it together -------------------------------------------------------------------


@dataclass
class DemoConfig:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    scenario: str = "normal"
    rps: float = DEFAULT_RPS
    seed: int | None = None
    real: bool = False
    time_scale: float = 1.0  # multiplies every fake delay (tests use small values)
    client_timeout: float = 20.0  # the SDK clients' timeout (fake mode: x time_scale, at least 1 s)
    status_every: float = 30.0  # seconds between status lines on stderr (0: never)


class Demo:
    """The running demo: fake provider + instrumented app + traffic + HTTP endpoint."""

    def __init__(self, config: DemoConfig, registry: prometheus_client.CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.state = ScenarioState(config.scenario)
        self.provider: Any = None
        self.app: DemoApp | None = None
        self.traffic: Traffic | None = None
        self._httpd: _ThreadingWSGIServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "demo not started"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def build(self) -> DemoApp:
        """Fake provider (unless real) and the instrumented app, without traffic or HTTP."""
        from .config import configure

        cfg = self.config
        # the demo's answers include refusals and hedged answers: detect both
        registry = {} if self.registry is prometheus_client.REGISTRY else {"registry": self.registry}
        configure(refusal_detector=True, **registry)
        enable_quality_signals()
        if cfg.real:
            if cfg.scenario not in ("normal", "truncation"):
                raise ValueError("with --real only the normal and truncation scenarios apply")
            oa, an = make_clients(None, None, cfg.client_timeout, real=True)
            self.app = DemoApp(oa, an, real=True, state=self.state)
            return self.app
        from .fakeprovider import FakeProvider

        # scaled down for tests, but never below what a local HTTP round trip needs
        timeout = max(cfg.client_timeout * cfg.time_scale, 1.0)
        policy = DemoPolicy(self.state, seed=cfg.seed, time_scale=cfg.time_scale, client_timeout=timeout)
        self.provider = FakeProvider(policy=policy).start()
        oa, an = make_clients(self.provider.openai_base_url, self.provider.anthropic_base_url, timeout)
        self.app = DemoApp(oa, an, state=self.state)
        return self.app

    def start(self, traffic: bool = True) -> Demo:
        cfg = self.config
        app = self.build()
        self.state.export_to(self.registry)
        allowed = ("normal", "truncation") if cfg.real else tuple(SCENARIOS)
        self._httpd = make_server(cfg.host, cfg.port, control_app(self.state, self.registry, allowed),
                                  server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
        self._spawn(self._httpd.serve_forever, "demo-http")
        if traffic:
            self.traffic = Traffic(app, cfg.rps, seed=cfg.seed).start()
            self._spawn(self._housekeeping, "demo-status")
            if not cfg.real:  # the judge's calls would cost money against real providers
                self.start_evaluations()
        return self

    def start_evaluations(self, interval_s: float = 3.0) -> None:
        """The evaluation job (judge scores) in its own thread, until ``stop``."""
        job = Evaluations(self.app, interval_s=interval_s, seed=self.config.seed)
        self._spawn(lambda: job.loop(self._stop), "demo-evaluations")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def _housekeeping(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(5.0):
            every = self.config.status_every
            if every and time.monotonic() - last >= every and self.traffic is not None:
                last = time.monotonic()
                counts = self.traffic.snapshot()
                summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1]))
                print(f"[demo] scenario={self.state.current.name} requests: {summary}", file=sys.stderr,
                      flush=True)

    def stop(self) -> None:
        self._stop.set()
        if self.traffic is not None:
            self.traffic.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self.provider is not None:
            self.provider.stop()  # in-flight calls fail fast once its connections close
        if self.traffic is not None:
            self.traffic.join()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> Demo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(config: DemoConfig, stop: threading.Event | None = None) -> None:
    """Run the demo until ``stop`` is set, Ctrl-C or SIGTERM (``docker stop``)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    demo = Demo(config).start()
    print(describe(demo), flush=True)
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        demo.stop()


def describe(demo: Demo) -> str:
    mode = "real providers" if demo.config.real else f"local fake provider at {demo.provider.url}"
    host = "localhost" if demo.config.host in ("0.0.0.0", "::") else demo.config.host
    base = f"http://{host}:{demo.port}"
    return "\n".join([
        f"llm-exporter demo: {demo.config.rps:g} req/s against the {mode}",
        f"  metrics:   {base}/metrics",
        f"  scenario:  {demo.state.current.name}  (list: curl {base}/scenario)",
        f"  switch:    curl -X POST {base}/scenario/<{'|'.join(SCENARIOS)}>",
    ])
