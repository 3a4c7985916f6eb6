"""Anthropic wire format: messages (JSON and SSE), errors, rate-limit headers."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterator, Optional

from .reply import Reply, RequestInfo, Resolved, split_arguments

Event = tuple[bytes, bool]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_FINISH = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "content_filter": "refusal"}


def ratelimit_headers(
    requests: Optional[tuple[int, int]] = None,
    tokens: Optional[tuple[int, int]] = None,
    input_tokens: Optional[tuple[int, int]] = None,
    output_tokens: Optional[tuple[int, int]] = None,
) -> dict[str, str]:
    """``anthropic-ratelimit-*`` headers; each argument is ``(limit, remaining)``."""
    h: dict[str, str] = {}
    for name, pair in (("requests", requests), ("tokens", tokens), ("input-tokens", input_tokens),
                       ("output-tokens", output_tokens)):
        if pair is not None:
            h[f"anthropic-ratelimit-{name}-limit"] = str(pair[0])
            h[f"anthropic-ratelimit-{name}-remaining"] = str(pair[1])
            h[f"anthropic-ratelimit-{name}-reset"] = "2030-01-01T00:00:00Z"
    return h


def error_body(status: int, reply: Reply, req: Optional[RequestInfo] = None) -> dict[str, Any]:
    kind = reply.error_type or _ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": reply.error_message or f"Fake provider error (HTTP {status})"},
        "request_id": _id("req_", req),
    }


def _id(prefix: str, req: Optional[RequestInfo]) -> str:
    return prefix + hashlib.sha1(f"{req.index if req else 0}".encode()).hexdigest()[:24]


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def stop_reason(res: Resolved) -> str:
    fr = res.reply.finish_reason
    if fr:
        return _FINISH.get(fr, fr)
    return "tool_use" if res.reply.tool_calls else "end_turn"


def _usage(res: Resolved, output_tokens: int) -> dict[str, Any]:
    usage = {
        # Anthropic's input_tokens excludes cache reads and cache writes
        "input_tokens": res.prompt_tokens - res.cached_tokens - res.cache_write_tokens,
        "cache_creation_input_tokens": res.cache_write_tokens,
        "cache_read_input_tokens": res.cached_tokens,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if res.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": res.reasoning_tokens}
    return usage


def _tool_ids(res: Resolved, req: RequestInfo) -> list[str]:
    return [t.id or f"toolu_{req.index}_{i}" for i, t in enumerate(res.reply.tool_calls)]


def _blocks(res: Resolved, req: RequestInfo) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if res.reply.reasoning_text:
        blocks.append({"type": "thinking", "thinking": res.reply.reasoning_text, "signature": "sig-fake"})
    if res.text or not res.reply.tool_calls:
        blocks.append({"type": "text", "text": res.text})
    for tid, t in zip(_tool_ids(res, req), res.reply.tool_calls):
        blocks.append({"type": "tool_use", "id": tid, "name": t.name, "input": json.loads(t.arguments or "{}")})
    return blocks


def _message(res: Resolved, req: RequestInfo, content: list, stop: Optional[str], output_tokens: int) -> dict:
    return {
        "id": _id("msg_", req),
        "type": "message",
        "role": "assistant",
        "model": res.model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": _usage(res, output_tokens),
    }


def messages_json(res: Resolved, req: RequestInfo) -> dict[str, Any]:
    return _message(res, req, _blocks(res, req), stop_reason(res), res.completion_tokens)


def messages_stream(res: Resolved, req: RequestInfo) -> Iterator[Event]:
    # message_start carries input usage and a placeholder output count, as the API does
    yield _sse("message_start", {"type": "message_start", "message": _message(res, req, [], None, 1)}), False
    yield _sse("ping", {"type": "ping"}), False
    for index, block in enumerate(_blocks(res, req)):
        kind = block["type"]
        if kind == "thinking":
            start = {"type": "thinking", "thinking": "", "signature": ""}
            pieces = [("thinking_delta", "thinking", p) for p in res.reasoning_deltas]
            pieces.append(("signature_delta", "signature", block["signature"]))
        elif kind == "text":
            start = {"type": "text", "text": ""}
            pieces = [("text_delta", "text", p) for p in res.deltas]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            args = json.dumps(block["input"])
            pieces = [("input_json_delta", "partial_json", p) for p in split_arguments(args)]
        yield _sse("content_block_start", {"type": "content_block_start", "index": index,
                                           "content_block": start}), False
        for delta_type, field, value in pieces:
            is_delta = delta_type != "signature_delta"
            yield _sse("content_block_delta", {"type": "content_block_delta", "index": index,
                                               "delta": {"type": delta_type, field: value}}), is_delta
        yield _sse("content_block_stop", {"type": "content_block_stop", "index": index}), False
    if res.reply.stream_error_type:
        err = {"type": "error", "error": {"type": res.reply.stream_error_type, "message": "stream failed"}}
        yield _sse("error", err), False
        return
    yield _sse("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason(res), "stop_sequence": None},
        "usage": _delta_usage(res),
    }), False
    yield _sse("message_stop", {"type": "message_stop"}), False


def _delta_usage(res: Resolved) -> dict[str, Any]:
    usage: dict[str, Any] = {"output_tokens": res.completion_tokens}
    if res.reasoning_tokens:
        usage["output_tokens_details"] = {"thinking_tokens": res.reasoning_tokens}
    return usage
