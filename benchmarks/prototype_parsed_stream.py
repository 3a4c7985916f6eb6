"""Prototype (benchmark only): a stream read from the SDK's parsed events instead of its bytes.

The exporter taps a sync stream's bytes in the call and parses the SSE events again in the
batch of finished calls (``instrumentation._tap``, ``_observe``, ``_events``), although the SDK
has parsed every event already. This prototype reads the events the SDK yields instead: the
SDK ``Stream``'s event iterator is wrapped by a generator that notes the first token's time,
the model, the usage and the stop reason as the events pass (one type check per event), and
the call is finished with the batch from those notes. It covers a plain Anthropic
``messages.create(stream=True)`` read to its end, enough to measure; early closes, error
events, refusal text, the other APIs and the stream helpers are not handled.

The exporter has read sync ``create(stream=True)`` streams this way since the tenth round
(``instrumentation._parsed``, with all of the above); the prototype stays as the yardstick of the
least such a reader can cost.

Run: ``python -m benchmarks.prototype_parsed_stream [REPEATS] [ROUNDS]`` (default 3 x 300,
about 15 s). Plain, ours (as shipped) and the prototype run call by call in the
same rounds (``harness.grouped``); it prints each one's added client CPU per call against
plain, the median (what a call waits for) and the mean (all its CPU, the batches included),
and checks that the prototype recorded the same as ours. Not used by the exporter; it reaches
into SDK and exporter internals (``Stream._iterator``, ``CallState``).
"""

from __future__ import annotations

import statistics
import sys
from functools import partial
from time import perf_counter
from typing import Any, Callable, Iterator

from benchmarks import harness as H
from benchmarks.bench_instrument import anthropic_call, start_server, stop_server

MODEL = "claude-haiku-4-5"


def _finish(state: Any, first: Any, stopped: float, model: Any, usage_in: Any, stop: Any, usage_out: Any) -> None:
    """With the batch: the call was opened by then (queued first)."""
    call = state.call
    call.stop(stopped)
    state.count_retries()
    state.record_headers()
    if first is not None:
        call.first_token(first)
    if model:
        call.set_response_model(model)
    if usage_in is not None:
        call.record_usage(usage_in)
    if stop:
        call.set_finish_reason(stop)
    if usage_out is not None:
        call.record_usage(usage_out)
    call.finish()


def _events(events: Iterator[Any], state: Any) -> Iterator[Any]:
    first = model = usage_in = stop = usage_out = None
    for event in events:
        kind = event.type
        if kind == "content_block_delta":
            if first is None:
                first = perf_counter()
        elif kind == "message_start":
            message = event.message
            model, usage_in = message.model, message.usage
        elif kind == "message_delta":
            stop, usage_out = event.delta.stop_reason, event.usage
        yield event
    state.defer(partial(_finish, state, first, perf_counter(), model, usage_in, stop, usage_out))


def parsed_create(client: Any) -> Callable[..., Any]:
    """``messages.create`` for an instrumented client, streams read from the parsed events."""
    from llm_exporter.instrumentation._state import CallState, _active

    original = client.messages.create.__llm_exporter_wrapped__

    def create(*args: Any, **kwargs: Any) -> Any:
        state = CallState("anthropic", kwargs, None, "messages")
        state.stream = False  # in the call, the response hook keeps the headers only (no tap)
        token = _active.set(state)
        try:
            result = original(*args, **kwargs)
        finally:
            _active.reset(token)
        state.stream = True  # opened with the batch, as a stream
        result._iterator = _events(result._iterator, state)
        return result

    return create


def main(argv: list[str]) -> None:
    from anthropic import Anthropic
    from prometheus_client import CollectorRegistry

    import llm_exporter
    from llm_exporter.config import configure

    repeats = int(argv[0]) if argv else 3
    rounds = int(argv[1]) if len(argv) > 1 else 300
    reg = CollectorRegistry()
    configure(registry=reg)
    store = llm_exporter.metrics.current().store
    proc, port = start_server()
    try:
        def new() -> Any:
            return Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="bench", max_retries=0)

        plain = anthropic_call(new(), True)
        ours = anthropic_call(llm_exporter.instrument(new()), True)
        proto_client = llm_exporter.instrument(new())
        proto_client.messages.create = parsed_create(proto_client)
        proto = anthropic_call(proto_client, True)

        def recorded() -> dict[tuple[str, str], float]:
            """Totals per metric and finish reason / token type, over every series."""
            store.apply_pending()
            out: dict[tuple[str, str], float] = {}
            for fam in reg.collect():
                for s in fam.samples:
                    if s.name in ("llm_requests_total", "llm_time_to_first_token_seconds_count", "llm_tokens_total",
                                  "llm_cost_usd_total"):
                        key = (s.name, s.labels.get("finish_reason") or s.labels.get("token_type") or "")
                        out[key] = out.get(key, 0.0) + s.value
            return out

        before = recorded()
        ours(2)
        by_ours = {k: round(v - before.get(k, 0), 9) for k, v in recorded().items()}
        before = recorded()
        proto(2)
        by_proto = {k: round(v - before.get(k, 0), 9) for k, v in recorded().items()}
        print(f"two calls each, recorded by ours {by_ours}, by the prototype {by_proto}: "
              f"{'same' if by_ours == by_proto else 'DIFFERENT'}")
        for r in range(repeats):
            g = H.grouped({"plain": lambda: plain(1), "ours": lambda: ours(1), "proto": lambda: proto(1)},
                          "plain", rounds=rounds)
            store.apply_pending()
            print(f"repeat {r + 1}: added client CPU per Anthropic stream, us (median / mean): " + ", ".join(
                f"{name} +{v.median_ci()[0]:.0f} / +{statistics.fmean(v.diffs):.0f}" for name, v in g.items()),
                flush=True)
    finally:
        stop_server(proc)


if __name__ == "__main__":
    main(sys.argv[1:])
