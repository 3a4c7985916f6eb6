"""classify_error against real openai / anthropic / httpx exception objects."""

import asyncio

import anthropic
import httpx
try:  # the HTTP library the installed SDKs build on (httpx2 from openai 3 / anthropic 1 on)
    import httpx2
except ImportError:
    import httpx as httpx2
import openai
import pytest

from llm_exporter import contract
from llm_exporter.errors import classify_error

OA_REQ = httpx.Request("POST", "http://llm.test/v1/chat/completions")
AN_REQ = httpx2.Request("POST", "http://llm.test/v1/messages")


def oa(cls, status, body=None, message="boom"):
    return cls(message, response=httpx.Response(status, request=OA_REQ), body=body)


#: anthropic >= 0.4x has a class for 529; earlier ones raise the plain status error
OverloadedError = getattr(anthropic, "OverloadedError", anthropic.APIStatusError)


def an(cls, status, body=None, message="boom"):
    return cls(message, response=httpx2.Response(status, request=AN_REQ), body=body)


CASES = [
    (oa(openai.RateLimitError, 429), "rate_limit"),
    (openai.APITimeoutError(request=OA_REQ), "timeout"),
    (openai.APIConnectionError(request=OA_REQ), "connection"),
    (oa(openai.AuthenticationError, 401), "authentication"),
    (oa(openai.PermissionDeniedError, 403), "permission"),
    (oa(openai.BadRequestError, 400), "bad_request"),
    (oa(openai.NotFoundError, 404), "not_found"),
    (oa(openai.InternalServerError, 500), "server_error"),
    (oa(openai.InternalServerError, 503), "overloaded"),
    (oa(openai.BadRequestError, 400, body={"code": "context_length_exceeded", "message": "too long"},
        message="This model's maximum context length is 128000 tokens"), "context_length"),
    (oa(openai.BadRequestError, 400, body={"code": "content_filter", "message": "filtered"}), "content_filter"),
    (oa(openai.APIStatusError, 429), "rate_limit"),
    (oa(openai.APIStatusError, 502), "server_error"),
    (an(anthropic.RateLimitError, 429), "rate_limit"),
    (anthropic.APITimeoutError(request=AN_REQ), "timeout"),
    (anthropic.APIConnectionError(request=AN_REQ), "connection"),
    (an(anthropic.AuthenticationError, 401), "authentication"),
    (an(anthropic.PermissionDeniedError, 403), "permission"),
    (an(anthropic.NotFoundError, 404), "not_found"),
    (an(anthropic.InternalServerError, 500), "server_error"),
    (an(OverloadedError, 529), "overloaded"),
    (an(anthropic.BadRequestError, 400,
        body={"type": "error", "error": {"type": "invalid_request_error",
                                          "message": "prompt is too long: 210000 tokens > 200000 maximum"}}),
     "context_length"),
    # Anthropic reports overload mid-stream as an error event on a 200 response
    (an(anthropic.APIStatusError, 200, body={"type": "error", "error": {"type": "overloaded_error"}}), "overloaded"),
    (httpx.ReadTimeout("slow", request=OA_REQ), "timeout"),
    (httpx.ConnectError("refused", request=OA_REQ), "connection"),
    (TimeoutError(), "timeout"),
    (asyncio.TimeoutError(), "timeout"),
    (ConnectionResetError(), "connection"),
    (asyncio.CancelledError(), "cancelled"),
    (KeyboardInterrupt(), "cancelled"),
    (GeneratorExit(), "cancelled"),
    (ValueError("nope"), "other"),
    ("rate_limit", "rate_limit"),
    ("Overloaded", "overloaded"),
    ("martian", "other"),
]


@pytest.mark.parametrize("error, expected", CASES, ids=[f"{type(e).__name__}-{x}" for e, x in CASES])
def test_classify_error(error, expected):
    assert classify_error(error) == expected
    assert expected in contract.ERROR_TYPES


def test_classify_never_raises_on_hostile_objects():
    class Hostile(Exception):
        @property
        def status_code(self):
            raise RuntimeError("gotcha")

        def __str__(self):
            raise RuntimeError("no str")

    assert classify_error(Hostile()) == "other"
