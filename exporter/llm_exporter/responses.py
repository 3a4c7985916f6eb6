"""Duck-typed reading of provider response and usage objects (no SDK imports).

Understands OpenAI ``ChatCompletion`` / ``CompletionUsage``, OpenAI Responses
``Response`` / ``ResponseUsage``, Anthropic ``Message`` / ``Usage`` /
``MessageDeltaUsage``, and the same shapes as plain dicts (``model_dump()``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .normalise import soft_count


def get(obj: Any, name: str) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` otherwise; None when absent or failing."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _has(obj: Any, name: str) -> bool:
    if isinstance(obj, dict):
        return name in obj
    try:
        return hasattr(obj, name)
    except Exception:
        return False


class Usage(NamedTuple):
    """Token counts in the semantics of the object they came from (None = not reported)."""

    input_tokens: int | None
    output_tokens: int | None
    cache_read_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    #: True: input excludes cache (Anthropic); False: input includes cache (OpenAI);
    #: None: the object does not say (no cache fields).
    additive: bool | None


def read_usage(usage: Any) -> Usage | None:
    """Token counts from a usage object or dict; None if it is not one."""
    if usage is None:
        return None
    if _has(usage, "prompt_tokens") or _has(usage, "completion_tokens"):  # OpenAI chat/completions
        prompt = get(usage, "prompt_tokens_details")
        completion = get(usage, "completion_tokens_details")
        return Usage(
            soft_count(get(usage, "prompt_tokens")),
            soft_count(get(usage, "completion_tokens")),
            soft_count(get(prompt, "cached_tokens")),
            soft_count(get(prompt, "cache_write_tokens")),
            soft_count(get(completion, "reasoning_tokens")),
            False,
        )
    if _has(usage, "cache_read_input_tokens") or _has(usage, "cache_creation_input_tokens"):  # Anthropic
        return Usage(
            soft_count(get(usage, "input_tokens")),
            soft_count(get(usage, "output_tokens")),
            soft_count(get(usage, "cache_read_input_tokens")),
            soft_count(get(usage, "cache_creation_input_tokens")),
            soft_count(get(get(usage, "output_tokens_details"), "thinking_tokens")),
            True,
        )
    if _has(usage, "input_tokens") or _has(usage, "output_tokens"):
        in_details = get(usage, "input_tokens_details")
        out_details = get(usage, "output_tokens_details")
        responses_shape = in_details is not None or get(out_details, "reasoning_tokens") is not None
        reasoning = get(out_details, "reasoning_tokens")
        if reasoning is None:
            reasoning = get(out_details, "thinking_tokens")
        return Usage(
            soft_count(get(usage, "input_tokens")),
            soft_count(get(usage, "output_tokens")),
            soft_count(get(in_details, "cached_tokens")),
            soft_count(get(in_details, "cache_write_tokens")),
            soft_count(reasoning),
            False if responses_shape else None,
        )
    return None


def model_of(response: Any) -> str | None:
    model = get(response, "model")
    return model if isinstance(model, str) and model else None


def finish_reason_of(response: Any) -> str | None:
    """The raw finish/stop reason of a response (normalise it with ``normalise.finish_reason``)."""
    choices = get(response, "choices")
    if choices:
        try:
            for choice in choices:
                reason = get(choice, "finish_reason")
                if isinstance(reason, str):
                    return reason
        except TypeError:
            pass
        return None
    stop = get(response, "stop_reason")  # Anthropic
    if isinstance(stop, str):
        return stop
    status = get(response, "status")  # OpenAI Responses
    if isinstance(status, str):
        if status == "completed":
            return "tool_calls" if _has_tool_call(response) else "stop"
        if status == "incomplete":
            reason = get(get(response, "incomplete_details"), "reason")
            return reason if isinstance(reason, str) else "length"
        if status in ("failed", "cancelled"):
            return "error" if status == "failed" else "cancelled"
    return None


def _items(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def _has_tool_call(response: Any) -> bool:
    for item in _items(get(response, "output")):
        kind = get(item, "type")
        if isinstance(kind, str) and kind.endswith("_call") and kind in (
            "function_call", "custom_tool_call", "mcp_call", "computer_call", "local_shell_call", "shell_call",
            "apply_patch_call",
        ):
            return True
    return False


def text_of(response: Any) -> tuple[str, bool]:
    """(visible text, explicit refusal) of a response, for the refusal detector.

    Explicit refusals: OpenAI ``message.refusal`` / Responses ``refusal`` parts,
    Anthropic ``stop_reason == "refusal"``.
    """
    parts: list[str] = []
    refused = False
    choices = get(response, "choices")
    if choices:
        for choice in _items(choices):
            message = get(choice, "message")
            content = get(message, "content")
            if isinstance(content, str):
                parts.append(content)
            if get(message, "refusal"):
                refused = True
        return "\n".join(parts), refused
    if get(response, "stop_reason") == "refusal":
        refused = True
    output = get(response, "output")
    if output is not None:  # Responses
        for item in _items(output):
            if get(item, "type") != "message":
                continue
            for part in _items(get(item, "content")):
                kind = get(part, "type")
                if kind == "output_text" and isinstance(get(part, "text"), str):
                    parts.append(get(part, "text"))
                elif kind == "refusal":
                    refused = True
        return "\n".join(parts), refused
    for block in _items(get(response, "content")):  # Anthropic
        if get(block, "type") == "text" and isinstance(get(block, "text"), str):
            parts.append(get(block, "text"))
    return "\n".join(parts), refused
