"""A local HTTP server that speaks the OpenAI and Anthropic wire protocols.

Used by the instrumentation tests (real SDK clients over HTTP) and as the demo app's
backend. Scripted replies (``enqueue``) or a policy callable decide each answer::

    from llm_exporter.fakeprovider import FakeProvider, Reply
    with FakeProvider() as server:
        server.enqueue(Reply(status=429, retry_after=0), Reply(text="hi"))
        client = OpenAI(base_url=server.openai_base_url, api_key="test")

A judge prompt (``llm_exporter.evaluation``'s) is answered with a score by default
(``judge_score``); ``judge_reply(req, garbage=True)`` answers it with no number.

``python -m llm_exporter.fakeprovider --port 8900`` runs it standalone.
"""

from __future__ import annotations

from . import anthropic_wire, openai_wire
from .reply import (
    DATED_MODEL_IDS,
    JUDGE_GARBAGE,
    Policy,
    Reply,
    RequestInfo,
    ToolCall,
    default_policy,
    judge_reply,
    judge_score,
    response_model_id,
)
from .server import FakeProvider

openai_ratelimit_headers = openai_wire.ratelimit_headers
anthropic_ratelimit_headers = anthropic_wire.ratelimit_headers

__all__ = [
    "DATED_MODEL_IDS",
    "FakeProvider",
    "JUDGE_GARBAGE",
    "Policy",
    "Reply",
    "RequestInfo",
    "ToolCall",
    "anthropic_ratelimit_headers",
    "default_policy",
    "judge_reply",
    "judge_score",
    "openai_ratelimit_headers",
    "response_model_id",
]
