"""What the fake provider answers: the request as seen, the scripted reply, the default policy."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

# A request as the server received it (also what a policy decides on).


@dataclass
class RequestInfo:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON body, or None
    provider: str  # "openai" | "anthropic" | "unknown"
    operation: str  # "chat" | "responses" | "embeddings" | "messages" | "unknown"
    model: Optional[str]
    stream: bool
    include_usage: bool  # OpenAI chat: stream_options.include_usage
    index: int  # 0-based sequence number of this request on the server
    retry_count: int  # the SDKs' x-stainless-retry-count header (0 on first attempt)

    def prompt_text(self) -> str:
        """All text the caller sent (messages, input, system), for echo-ish replies and token counts."""
        return " ".join(_texts(self.body)) if isinstance(self.body, dict) else ""

    def last_user_text(self) -> str:
        body = self.body if isinstance(self.body, dict) else {}
        messages = body.get("messages")
        if isinstance(messages, list):
            for m in reversed(messages):
                if isinstance(m, dict) and m.get("role") == "user":
                    return " ".join(_texts(m.get("content")))
        inp = body.get("input")
        if inp is not None:
            return " ".join(_texts(inp))
        return ""


def _texts(obj: Any) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, list):
        return [t for item in obj for t in _texts(item)]
    if isinstance(obj, dict):
        out: list[str] = []
        for key in ("system", "instructions", "messages", "input", "content", "text"):
            if key in obj:
                out.extend(_texts(obj[key]))
        return out
    return []


@dataclass
class ToolCall:
    name: str
    arguments: str = "{}"  # JSON text, streamed in pieces
    id: Optional[str] = None


@dataclass
class Reply:
    """One scripted answer. ``None`` fields take realistic defaults derived from the request.

    Token numbers use OpenAI semantics: ``prompt_tokens`` is all input including cached and
    cache-write tokens, ``completion_tokens`` all output including reasoning tokens. The
    Anthropic renderer splits them (input_tokens excludes cache read and cache creation).
    """

    status: int = 200
    text: Optional[str] = None
    model: Optional[str] = None  # model id in the response (default: dated id for the request model)
    finish_reason: Optional[str] = None  # provider's raw value ("stop", "length", "end_turn", "max_tokens", ...)
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_text: Optional[str] = None  # Anthropic thinking block / Responses reasoning summary
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (rate limits, ...)
    retry_after: Optional[float] = None  # sets retry-after (seconds)
    error_type: Optional[str] = None  # provider error type; default from status
    error_message: Optional[str] = None
    error_code: Optional[str] = None  # OpenAI error.code, e.g. "context_length_exceeded"
    delay_s: float = 0.0  # before the status line
    first_delta_delay_s: float = 0.0  # streams: after the framing events, before the first delta
    chunk_delay_s: float = 0.0  # streams: between deltas
    words_per_delta: int = 1
    cut_after_deltas: Optional[int] = None  # streams: close the connection after this many deltas
    stream_error_type: Optional[str] = None  # streams: send an error event instead of finishing
    bad_json_after_deltas: Optional[int] = None  # streams: after this many deltas, an event that is not JSON
    embedding_dims: int = 8


Policy = Callable[[RequestInfo], Reply]

# --- default, realistic behaviour ------------------------------------------------

#: Request model -> the dated id the API returns for it (a few current ones; others echo back).
DATED_MODEL_IDS: dict[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-4.1-mini": "gpt-4.1-mini-2025-04-14",
    "gpt-4.1-nano": "gpt-4.1-nano-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "gpt-5-mini": "gpt-5-mini-2025-08-07",
    "gpt-5-nano": "gpt-5-nano-2025-08-07",
    "o3": "o3-2025-04-16",
    "o4-mini": "o4-mini-2025-04-16",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}


def response_model_id(request_model: Optional[str]) -> str:
    if not request_model:
        return "unknown"
    return DATED_MODEL_IDS.get(request_model, request_model)


_WORD = re.compile(r"\S+")


def count_words(text: str) -> int:
    return len(_WORD.findall(text))


# --- a judge (seed 000's factual-accuracy prompt, as llm_exporter.evaluation sends it) ---

_JUDGE_PROMPT = re.compile(
    r"Only respond with a number\.\s*Response:(?P<response>.*?)\n\s*Ground Truth:(?P<reference>.*?)\n\s*"
    r"Accuracy \(0-1\):\s*$", re.S)
_CONTENT_WORD = re.compile(r"[a-z0-9]+")

#: What a judge answers when asked for garbage (``judge_reply(req, garbage=True)``): no number.
JUDGE_GARBAGE = "The response is mostly accurate, with a minor omission."


def judge_score(req: RequestInfo) -> Optional[float]:
    """For a judge prompt: the share of the ground truth's words found in the response
    (deterministic, so tests know the score); None for any other request."""
    m = _JUDGE_PROMPT.search(req.last_user_text())
    if m is None:
        return None
    reference = set(_CONTENT_WORD.findall(m.group("reference").lower()))
    if not reference:
        return 0.0
    found = reference & set(_CONTENT_WORD.findall(m.group("response").lower()))
    return round(len(found) / len(reference), 2)


def judge_reply(req: RequestInfo, garbage: bool = False) -> Optional[Reply]:
    """A judge's answer to a judge prompt: its score as a number, or ``JUDGE_GARBAGE`` on
    demand; None if ``req`` is not a judge prompt."""
    score = judge_score(req)
    if score is None:
        return None
    return Reply(text=JUDGE_GARBAGE if garbage else f"{score:g}")


def default_text(req: RequestInfo) -> str:
    """Deterministic echo-ish answer; a judge prompt gets its score (``judge_score``)."""
    score = judge_score(req)
    if score is not None:
        return f"{score:g}"
    words = _WORD.findall(req.last_user_text())[:12]
    if not words:
        return "Hello! How can I help you today?"
    return "You said: " + " ".join(words) + ". Here is a short answer."


def default_prompt_tokens(req: RequestInfo) -> int:
    if req.operation == "embeddings":
        return max(1, count_words(req.prompt_text()))
    body = req.body if isinstance(req.body, dict) else {}
    n_msgs = len(body["messages"]) if isinstance(body.get("messages"), list) else 1
    return count_words(req.prompt_text()) + 3 * n_msgs + 3


def default_policy(req: RequestInfo) -> Reply:
    """A healthy provider: 200, echo-ish text, word-count usage (filled in by ``resolve``)."""
    return Reply()


# --- a reply with every default filled in ------------------------------------------------


@dataclass
class Resolved:
    reply: Reply
    text: str
    deltas: list[str]
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    reasoning_deltas: list[str]


def resolve(reply: Reply, req: RequestInfo) -> Resolved:
    text = reply.text if reply.text is not None else default_text(req)
    n = max(1, reply.words_per_delta)
    words = re.findall(r"\S+\s*", text)
    deltas = ["".join(words[i : i + n]) for i in range(0, len(words), n)] if words else []
    reasoning_words = re.findall(r"\S+\s*", reply.reasoning_text or "")
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else default_prompt_tokens(req)
    prompt = max(prompt, reply.cached_tokens + reply.cache_write_tokens)
    completion = reply.completion_tokens
    if completion is None:
        completion = count_words(text) + reply.reasoning_tokens + sum(
            count_words(t.arguments) + 1 for t in reply.tool_calls
        )
    return Resolved(
        reply=reply,
        text=text,
        deltas=deltas,
        model=reply.model or response_model_id(req.model),
        prompt_tokens=prompt,
        completion_tokens=completion,
        cached_tokens=reply.cached_tokens,
        cache_write_tokens=reply.cache_write_tokens,
        reasoning_tokens=reply.reasoning_tokens,
        reasoning_deltas=reasoning_words,
    )


def split_arguments(arguments: str, parts: int = 3) -> list[str]:
    """Tool-call JSON arguments in a few pieces, as the APIs stream them."""
    if not arguments:
        return [""]
    size = max(1, -(-len(arguments) // parts))
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]
