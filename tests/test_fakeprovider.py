"""The fake provider speaks each provider's wire format (checked with plain httpx, no SDK)."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from llm_exporter.fakeprovider import (
    FakeProvider,
    Reply,
    RequestInfo,
    ToolCall,
    anthropic_ratelimit_headers,
    openai_ratelimit_headers,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one two three"}]}


@pytest.fixture(scope="module")
def server():
    with FakeProvider() as s:
        yield s


@pytest.fixture
def http(server):
    server.reset()
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def sse(resp: httpx.Response) -> list[tuple[str | None, str]]:
    events, event = [], None
    for line in resp.text.split("\n"):
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, line[6:]))
            event = None
    return events


def test_chat_json_default_policy(http, server):
    r = http.post("/v1/chat/completions", json=CHAT, headers={"authorization": "Bearer k"})
    body = r.json()
    assert r.status_code == 200 and r.headers["x-request-id"]
    assert body["object"] == "chat.completion" and body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["choices"][0]["message"]["content"] == "You said: one two three. Here is a short answer."
    assert body["choices"][0]["finish_reason"] == "stop"
    # deterministic usage: prompt words + 3 per message + 3; completion = answer words
    assert body["usage"]["prompt_tokens"] == 3 + 3 + 3
    assert body["usage"]["completion_tokens"] == 10
    (req,) = server.requests
    assert isinstance(req, RequestInfo)
    assert (req.method, req.path, req.provider, req.operation, req.model) == (
        "POST", "/v1/chat/completions", "openai", "chat", "gpt-4o-mini")
    assert req.body == CHAT and req.headers["authorization"] == "Bearer k"


def test_chat_stream_sequence_with_and_without_usage(http, server):
    server.enqueue(Reply(text="a b", tool_calls=[ToolCall("f", '{"x": 1}')], prompt_tokens=9, completion_tokens=4))
    plain = [d for _, d in sse(http.post("/v1/chat/completions", json={**CHAT, "stream": True}))]
    assert plain[-1] == "[DONE]"
    chunks = [json.loads(d) for d in plain[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:3]] == ["a ", "b"]
    tool = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert tool[0]["function"] == {"name": "f", "arguments": ""}
    assert "".join(t["function"]["arguments"] for t in tool[1:]) == '{"x": 1}'
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert all("usage" not in c for c in chunks)

    server.enqueue(Reply(text="a b", prompt_tokens=9, completion_tokens=4, cached_tokens=2))
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    data = [d for _, d in sse(http.post("/v1/chat/completions", json=body))]
    usage_chunk = json.loads(data[-2])
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["prompt_tokens"] == 9
    assert usage_chunk["usage"]["prompt_tokens_details"]["cached_tokens"] == 2
    assert all(json.loads(d)["usage"] is None for d in data[:-2])


def test_responses_stream_events(http, server):
    server.enqueue(Reply(text="hi there", reasoning_text="think", prompt_tokens=10, cached_tokens=4,
                         completion_tokens=7, reasoning_tokens=3, model="gpt-5-2025-08-07"))
    events = sse(http.post("/v1/responses", json={"model": "gpt-5", "input": "q", "stream": True}))
    names = [e for e, _ in events]
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert "response.content_part.added" in names and names.count("response.output_text.delta") == 2
    assert names[-1] == "response.completed"
    seqs = [json.loads(d)["sequence_number"] for _, d in events]
    assert seqs == list(range(len(events)))
    final = json.loads(events[-1][1])["response"]
    assert final["model"] == "gpt-5-2025-08-07" and final["status"] == "completed"
    assert final["usage"]["input_tokens_details"]["cached_tokens"] == 4
    assert final["usage"]["output_tokens_details"]["reasoning_tokens"] == 3


def test_anthropic_stream_events(http, server):
    server.enqueue(Reply(text="x y", reasoning_text="hmm", prompt_tokens=20, cached_tokens=5,
                         cache_write_tokens=3, completion_tokens=6))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": CHAT["messages"], "stream": True}
    events = sse(http.post("/v1/messages", json=body))
    names = [e for e, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names[-2:] == ["message_delta", "message_stop"]
    start = json.loads(events[0][1])["message"]
    assert start["model"] == "claude-sonnet-4-5-20250929"
    assert start["usage"] == {"input_tokens": 12, "cache_creation_input_tokens": 3, "cache_read_input_tokens": 5,
                              "output_tokens": 1, "service_tier": "standard"}
    deltas = [json.loads(d)["delta"]["type"] for e, d in events if e == "content_block_delta"]
    assert deltas == ["thinking_delta", "signature_delta", "text_delta", "text_delta"]
    final = json.loads(events[-2][1])
    assert final["delta"]["stop_reason"] == "end_turn" and final["usage"] == {"output_tokens": 6}


def test_error_formats_and_headers(http, server):
    server.enqueue(
        Reply(status=429, retry_after=0.5, headers=openai_ratelimit_headers(60, 0, 1000, 10)),
        Reply(status=529, headers=anthropic_ratelimit_headers(requests=(50, 0))),
    )
    r = http.post("/v1/chat/completions", json=CHAT)
    assert r.status_code == 429 and r.headers["retry-after"] == "0.5"
    assert r.headers["x-ratelimit-remaining-requests"] == "0" and r.headers["x-ratelimit-limit-tokens"] == "1000"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    r = http.post("/v1/messages", json={"model": "claude-haiku-4-5", "messages": [], "max_tokens": 1})
    assert r.status_code == 529 and r.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "overloaded_error"
    assert http.post("/v1/nothing", json={}).status_code == 404


def test_queue_then_policy_then_default(server):
    calls: list[int] = []

    def policy(req: RequestInfo) -> Reply | None:
        calls.append(req.index)
        return Reply(status=503) if req.index == 1 else None

    server.reset()
    server.policy = policy
    try:
        server.enqueue(Reply(status=400))
        with httpx.Client(base_url=server.url) as http:
            statuses = [http.post("/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
        assert statuses == [400, 503, 200]
        assert calls == [1, 2]  # the queued reply came first
        server.policy = lambda req: 1 / 0  # a broken policy answers 500, the server lives on
        with httpx.Client(base_url=server.url) as http:
            assert http.post("/v1/chat/completions", json=CHAT).status_code == 500
            assert http.get("/health").status_code == 200
    finally:
        server.policy = None


def test_cut_stream_is_an_incomplete_body(http, server):
    server.enqueue(Reply(text="a b c d", cut_after_deltas=1))
    with pytest.raises(httpx.RemoteProtocolError):
        http.post("/v1/chat/completions", json={**CHAT, "stream": True})


def test_stop_closes_port_and_threads():
    before = threading.active_count()
    server = FakeProvider().start()
    port = server.port
    with httpx.Client(base_url=server.url) as http:  # a keep-alive connection held open during stop()
        server.enqueue(Reply(delay_s=30))
        with pytest.raises(httpx.HTTPError):
            http.post("/v1/chat/completions", json=CHAT, timeout=0.2)
        server.stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    for _ in range(50):
        if threading.active_count() <= before:
            break
        threading.Event().wait(0.02)
    assert threading.active_count() <= before
