"""Duck-typed reading of provider response and usage objects (no SDK imports).

Understands OpenAI ``ChatCompletion`` / ``CompletionUsage``, OpenAI Responses
``Response`` / ``ResponseUsage``, Anthropic ``Message`` / ``Usage`` /
``MessageDeltaUsage``, and the same shapes as plain dicts (``model_dump()``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from .normalise import soft_count


#: type -> True for pydantic v2 models (the SDKs' response types), False otherwise
_model_types: dict[type, bool] = {}


def _is_model(tp: type) -> bool:
    try:
        return _model_types[tp]
    except KeyError:
        pass
    try:
        model = isinstance(getattr(tp, "model_fields", None), dict) and hasattr(tp, "model_extra")
    except Exception:
        model = False
    if len(_model_types) < 4096:  # types are few; still, no cache grows without end
        _model_types[tp] = model
    return model


class _Attrs:
    """Mapping-like view of a plain object's attributes (the slow, general case)."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return getattr(self._obj, name, default)
        except Exception:
            return default

    def __contains__(self, name: str) -> bool:
        try:
            return hasattr(self._obj, name)
        except Exception:
            return False


_EMPTY: dict[str, Any] = {}


def fields(obj: Any) -> Any:
    """A read-only mapping view of a response-like object: ``.get(name)`` and ``name in``.

    Dicts are their own view. A pydantic v2 model (every SDK response type) is viewed through
    its instance dicts: fields live in ``__dict__``, unknown JSON keys in ``model_extra``.
    Reading them there costs a dict lookup, where ``getattr`` on a missing optional field goes
    through the model's ``__getattr__`` and raises (~2 us), and most reads here probe
    optional fields. Anything else gets attribute access. None gives an empty view.
    """
    if obj is None:
        return _EMPTY
    if isinstance(obj, (dict, _Attrs)):
        return obj
    try:
        if _is_model(type(obj)):
            extra = obj.model_extra  # pydantic v2's public view of unknown JSON keys
            return {**obj.__dict__, **extra} if extra else obj.__dict__
    except Exception:
        pass
    return _Attrs(obj)


def get(obj: Any, name: str) -> Any:
    """``obj[name]`` for dicts, ``obj.name`` otherwise; None when absent or failing."""
    return fields(obj).get(name)


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


def _count(value: Any) -> int | None:
    # a plain non-negative int (the usual case) without soft_count's checks
    return value if type(value) is int and value >= 0 else soft_count(value)


def read_usage(usage: Any) -> Usage | None:
    """Token counts from a usage object or dict; None if it is not one."""
    if usage is None:
        return None
    u = fields(usage)
    if "prompt_tokens" in u or "completion_tokens" in u:  # OpenAI chat/completions
        prompt = fields(u.get("prompt_tokens_details"))
        return Usage(
            _count(u.get("prompt_tokens")),
            _count(u.get("completion_tokens")),
            _count(prompt.get("cached_tokens")),
            _count(prompt.get("cache_write_tokens")),
            _count(fields(u.get("completion_tokens_details")).get("reasoning_tokens")),
            False,
        )
    if "cache_read_input_tokens" in u or "cache_creation_input_tokens" in u:  # Anthropic
        return Usage(
            _count(u.get("input_tokens")),
            _count(u.get("output_tokens")),
            _count(u.get("cache_read_input_tokens")),
            _count(u.get("cache_creation_input_tokens")),
            _count(fields(u.get("output_tokens_details")).get("thinking_tokens")),
            True,
        )
    if "input_tokens" in u or "output_tokens" in u:
        in_details = u.get("input_tokens_details")
        out_details = fields(u.get("output_tokens_details"))
        reasoning = out_details.get("reasoning_tokens")
        responses_shape = in_details is not None or reasoning is not None
        if reasoning is None:
            reasoning = out_details.get("thinking_tokens")
        in_details = fields(in_details)
        return Usage(
            _count(u.get("input_tokens")),
            _count(u.get("output_tokens")),
            _count(in_details.get("cached_tokens")),
            _count(in_details.get("cache_write_tokens")),
            _count(reasoning),
            False if responses_shape else None,
        )
    return None


def finish_reason_of(response: Any) -> str | None:
    """The raw finish/stop reason of a response (normalise it with ``normalise.finish_reason``)."""
    r = fields(response)
    choices = r.get("choices")
    if choices:
        try:
            for choice in choices:
                reason = fields(choice).get("finish_reason")
                if isinstance(reason, str):
                    return reason
        except TypeError:
            pass
        return None
    stop = r.get("stop_reason")  # Anthropic
    if isinstance(stop, str):
        return stop
    status = r.get("status")  # OpenAI Responses
    if isinstance(status, str):
        if status == "completed":
            return "tool_calls" if _has_tool_call(r) else "stop"
        if status == "incomplete":
            reason = fields(r.get("incomplete_details")).get("reason")
            return reason if isinstance(reason, str) else "length"
        if status in ("failed", "cancelled"):
            return "error" if status == "failed" else "cancelled"
    return None


def _items(value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        return list(value)
    return []


def _has_tool_call(r: Any) -> bool:
    for item in _items(r.get("output")):
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
