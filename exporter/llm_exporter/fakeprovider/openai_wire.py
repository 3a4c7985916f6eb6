"""OpenAI wire format: chat completions, responses, embeddings (JSON and SSE), errors, rate-limit headers."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from typing import Any, Iterator, Optional

from .reply import Reply, RequestInfo, Resolved, split_arguments

#: (wire bytes, is_delta): deltas are what the server paces and counts for cuts.
Event = tuple[bytes, bool]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    408: "timeout",
    409: "conflict",
    422: "invalid_request_error",
    429: "requests",
    500: "server_error",
    502: "server_error",
    503: "server_error",
}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}


def ratelimit_headers(
    requests_limit: Optional[int] = None,
    requests_remaining: Optional[int] = None,
    tokens_limit: Optional[int] = None,
    tokens_remaining: Optional[int] = None,
) -> dict[str, str]:
    """``x-ratelimit-*`` headers as OpenAI sends them (resets fixed for determinism)."""
    h: dict[str, str] = {}
    if requests_limit is not None:
        h["x-ratelimit-limit-requests"] = str(requests_limit)
        h["x-ratelimit-reset-requests"] = "120ms"
    if requests_remaining is not None:
        h["x-ratelimit-remaining-requests"] = str(requests_remaining)
    if tokens_limit is not None:
        h["x-ratelimit-limit-tokens"] = str(tokens_limit)
        h["x-ratelimit-reset-tokens"] = "6ms"
    if tokens_remaining is not None:
        h["x-ratelimit-remaining-tokens"] = str(tokens_remaining)
    return h


def error_body(status: int, reply: Reply) -> dict[str, Any]:
    code = reply.error_code or _ERROR_CODES.get(status)
    return {
        "error": {
            "message": reply.error_message or f"Fake provider error (HTTP {status})",
            "type": reply.error_type or _ERROR_TYPES.get(status, "server_error"),
            "param": None,
            "code": code,
        }
    }


def _id(prefix: str, req: RequestInfo) -> str:
    return prefix + hashlib.sha1(f"{req.index}".encode()).hexdigest()[:24]


def _sse(data: Any, event: Optional[str] = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return (head + f"data: {payload}\n\n").encode()


# --- chat completions -------------------------------------------------------------


def _chat_finish(res: Resolved) -> str:
    if res.reply.finish_reason:
        return res.reply.finish_reason
    return "tool_calls" if res.reply.tool_calls else "stop"


def chat_usage(res: Resolved) -> dict[str, Any]:
    return {
        "prompt_tokens": res.prompt_tokens,
        "completion_tokens": res.completion_tokens,
        "total_tokens": res.prompt_tokens + res.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": res.cached_tokens,
            "cache_write_tokens": res.cache_write_tokens,
            "audio_tokens": 0,
        },
        "completion_tokens_details": {
            "reasoning_tokens": res.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_ids(res: Resolved, req: RequestInfo) -> list[str]:
    return [t.id or f"call_{req.index}_{i}" for i, t in enumerate(res.reply.tool_calls)]


def chat_json(res: Resolved, req: RequestInfo) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": res.text, "refusal": None, "annotations": []}
    if res.reply.tool_calls:
        message["content"] = res.text or None
        message["tool_calls"] = [
            {"id": tid, "type": "function", "function": {"name": t.name, "arguments": t.arguments}}
            for tid, t in zip(_tool_ids(res, req), res.reply.tool_calls)
        ]
    return {
        "id": _id("chatcmpl-", req),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": res.model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": _chat_finish(res)}],
        "usage": chat_usage(res),
    }


def chat_stream(res: Resolved, req: RequestInfo) -> Iterator[Event]:
    base = {
        "id": _id("chatcmpl-", req),
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": res.model,
        "system_fingerprint": "fp_fake",
        "service_tier": "default",
    }
    with_usage = req.include_usage

    def chunk(delta: dict[str, Any], finish: Optional[str] = None) -> bytes:
        data = dict(base, choices=[{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}])
        if with_usage:
            data["usage"] = None
        return _sse(data)

    # role-only first chunk: framing, not a delta
    yield chunk({"role": "assistant", "content": "", "refusal": None}), False
    for piece in res.deltas:
        yield chunk({"content": piece}), True
    for i, (tid, t) in enumerate(zip(_tool_ids(res, req), res.reply.tool_calls)):
        yield chunk({"tool_calls": [{"index": i, "id": tid, "type": "function",
                                     "function": {"name": t.name, "arguments": ""}}]}), True
        for part in split_arguments(t.arguments):
            yield chunk({"tool_calls": [{"index": i, "function": {"arguments": part}}]}), True
    if res.reply.stream_error_type:
        yield _sse({"error": {"message": "stream failed", "type": res.reply.stream_error_type,
                              "param": None, "code": None}}), False
        return
    yield chunk({}, _chat_finish(res)), False
    if with_usage:
        yield _sse(dict(base, choices=[], usage=chat_usage(res))), False
    yield _sse("[DONE]"), False


# --- responses -------------------------------------------------------------------


def responses_usage(res: Resolved) -> dict[str, Any]:
    return {
        "input_tokens": res.prompt_tokens,
        "input_tokens_details": {"cached_tokens": res.cached_tokens, "cache_write_tokens": res.cache_write_tokens},
        "output_tokens": res.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": res.reasoning_tokens},
        "total_tokens": res.prompt_tokens + res.completion_tokens,
    }


def _incomplete(res: Resolved) -> Optional[str]:
    fr = res.reply.finish_reason
    if fr in ("length", "max_output_tokens", "max_tokens"):
        return "max_output_tokens"
    if fr == "content_filter":
        return "content_filter"
    return None


def _response_obj(res: Resolved, req: RequestInfo, status: str, output: list, usage: Any) -> dict[str, Any]:
    body = req.body if isinstance(req.body, dict) else {}
    reason = _incomplete(res)
    return {
        "id": _id("resp_", req),
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "error": None,
        "incomplete_details": {"reason": reason} if reason and status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": res.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "metadata": {},
    }


def _final_status(res: Resolved) -> str:
    return "incomplete" if _incomplete(res) else "completed"


def _output_items(res: Resolved, req: RequestInfo) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    if res.reasoning_tokens or res.reasoning_deltas:
        items.append({"id": _id("rs_", req), "type": "reasoning", "summary": [], "status": None})
    if res.text:
        items.append({
            "id": _id("msg_", req), "type": "message", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": res.text, "annotations": [], "logprobs": []}],
        })
    for tid, t in zip(_tool_ids(res, req), res.reply.tool_calls):
        items.append({"id": "fc_" + tid, "type": "function_call", "status": "completed",
                      "call_id": tid, "name": t.name, "arguments": t.arguments})
    return items


def responses_json(res: Resolved, req: RequestInfo) -> dict[str, Any]:
    return _response_obj(res, req, _final_status(res), _output_items(res, req), responses_usage(res))


def responses_stream(res: Resolved, req: RequestInfo) -> Iterator[Event]:
    seq = iter(range(1_000_000))

    def ev(kind: str, **fields: Any) -> bytes:
        return _sse({"type": kind, "sequence_number": next(seq), **fields}, event=kind)

    yield ev("response.created", response=_response_obj(res, req, "in_progress", [], None)), False
    yield ev("response.in_progress", response=_response_obj(res, req, "in_progress", [], None)), False
    items = _output_items(res, req)
    for out_idx, item in enumerate(items):
        if item["type"] == "reasoning":
            yield ev("response.output_item.added", output_index=out_idx, item=item), False
            for piece in res.reasoning_deltas:
                yield ev("response.reasoning_summary_text.delta", item_id=item["id"], output_index=out_idx,
                         summary_index=0, delta=piece), True
            yield ev("response.output_item.done", output_index=out_idx, item=item), False
        elif item["type"] == "message":
            added = dict(item, status="in_progress", content=[])
            yield ev("response.output_item.added", output_index=out_idx, item=added), False
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield ev("response.content_part.added", item_id=item["id"], output_index=out_idx,
                     content_index=0, part=part), False
            for piece in res.deltas:
                yield ev("response.output_text.delta", item_id=item["id"], output_index=out_idx,
                         content_index=0, delta=piece, logprobs=[]), True
            yield ev("response.output_text.done", item_id=item["id"], output_index=out_idx,
                     content_index=0, text=res.text, logprobs=[]), False
            yield ev("response.content_part.done", item_id=item["id"], output_index=out_idx,
                     content_index=0, part=dict(part, text=res.text)), False
            yield ev("response.output_item.done", output_index=out_idx, item=item), False
        else:
            added = dict(item, status="in_progress", arguments="")
            yield ev("response.output_item.added", output_index=out_idx, item=added), False
            for piece in split_arguments(item["arguments"]):
                yield ev("response.function_call_arguments.delta", item_id=item["id"], output_index=out_idx,
                         delta=piece), True
            yield ev("response.function_call_arguments.done", item_id=item["id"], output_index=out_idx,
                     arguments=item["arguments"], name=item["name"]), False
            yield ev("response.output_item.done", output_index=out_idx, item=item), False
    if res.reply.stream_error_type:
        yield ev("error", code=res.reply.stream_error_type, message="stream failed", param=None), False
        return
    status = _final_status(res)
    final = _response_obj(res, req, status, items, responses_usage(res))
    yield ev("response." + status, response=final), False


# --- embeddings -------------------------------------------------------------------


def _vector(text: str, dims: int) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round((digest[i % len(digest)] - 128) / 128.0, 6) for i in range(dims)]


def embeddings_json(res: Resolved, req: RequestInfo) -> dict[str, Any]:
    body = req.body if isinstance(req.body, dict) else {}
    inputs = body.get("input", "")
    items = inputs if isinstance(inputs, list) else [inputs]
    as_b64 = body.get("encoding_format") == "base64"
    data = []
    for i, item in enumerate(items):
        vec = _vector(str(item), int(body.get("dimensions") or res.reply.embedding_dims))
        emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode() if as_b64 else vec
        data.append({"object": "embedding", "index": i, "embedding": emb})
    return {
        "object": "list",
        "data": data,
        "model": res.model,
        "usage": {"prompt_tokens": res.prompt_tokens, "total_tokens": res.prompt_tokens},
    }
