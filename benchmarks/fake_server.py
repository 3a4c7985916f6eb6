"""The local provider-protocol server (``llm_exporter.fakeprovider``) in its own process.

A separate process keeps the server's work out of the measured client's GIL and
CPU time. Prints ``PORT <n>`` once listening on 127.0.0.1; stops when its stdin
closes (so it never outlives the benchmark).
"""

from __future__ import annotations

import sys

#: ~40 words: a short but typical answer; streamed as one word per delta.
TEXT = ("Sure. Here is a concise answer to your question about the quarterly report: revenue grew "
        "twelve percent, costs were flat, and the main risk is the delayed product launch in the "
        "second half, which we should review with the team next week.")


def _no_nagle() -> None:
    """TCP_NODELAY on the server's sockets.

    Without it a non-streamed reply (status line + headers, then the body, in
    separate writes) waits ~40 ms for the client's delayed ACK (Nagle), which
    would swamp every client-side cost measured here. stdlib handlers have a
    switch for it; set it on the fake provider's handler class in this process
    only (suggested upstream: set it in the fake provider itself).
    """
    from llm_exporter.fakeprovider import server

    handler = getattr(server, "_Handler", None)
    if handler is not None:
        handler.disable_nagle_algorithm = True


def policy(req: object) -> object:
    from llm_exporter.fakeprovider import Reply, anthropic_ratelimit_headers, openai_ratelimit_headers

    # The rate-limit headers both APIs send with every response (every instrumentation that
    # reads them pays for it on each call), with a remaining count that moves like a real one.
    n = getattr(req, "index", 0)
    if getattr(req, "provider", "") == "anthropic":
        headers = anthropic_ratelimit_headers(requests=(4000, 3999 - n % 4000), tokens=(2_000_000, 1_998_000),
                                              input_tokens=(1_600_000, 1_598_800),
                                              output_tokens=(400_000, 399_700))
    else:
        headers = openai_ratelimit_headers(requests_limit=10_000, requests_remaining=9_999 - n % 10_000,
                                           tokens_limit=10_000_000, tokens_remaining=9_998_000)
    # usage with a cached prefix, so the token split has work to do
    return Reply(text=TEXT, prompt_tokens=1200, cached_tokens=200, cache_write_tokens=0, headers=headers)


def main() -> None:
    from llm_exporter.fakeprovider import FakeProvider

    _no_nagle()

    with FakeProvider(policy=policy, host="127.0.0.1", port=0) as server:
        print(f"PORT {server.port}", flush=True)
        sys.stdin.read()  # until the parent closes the pipe (or dies)


if __name__ == "__main__":
    main()
