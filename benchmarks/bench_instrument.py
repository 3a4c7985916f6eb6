"""Section 2: instrumentation overhead on real SDK calls.

The real ``openai`` and ``anthropic`` clients call the local provider-protocol
server (``llm_exporter.fakeprovider``, in its own process on 127.0.0.1, no
artificial delays; ~40-word answers, 1 word per stream delta, usage with a
cached prefix). Variants, timed in interleaved blocks of the same calls:

* ``plain``         an uninstrumented client
* ``ours``          ``llm_exporter.instrument(client)`` (a separate client instance)
* ``openllmetry``   ``opentelemetry-instrumentation-openai`` / ``-anthropic``
                    (traceloop OpenLLMetry), instrumented for the block and
                    uninstrumented after it (they patch the SDK classes)
* ``otel openai-v2`` ``opentelemetry-instrumentation-openai-v2`` (OpenAI only)

Peers get an SDK ``MeterProvider`` with an ``InMemoryMetricReader``; the
tracer provider is the API default (non-recording spans), so peers, like us,
pay for metrics, not for span export. A peer that records no token usage that way
(OpenLLMetry's anthropic instrumentation reads usage only into recording spans) is
measured call by call a second time with an SDK ``TracerProvider`` that records spans and
exports none (``+ recording spans``): what its users pay for the token metrics. The peer
target compares with the cheapest peer that records token usage, as we do.
Sync clients, ``max_retries=0``.

Per call we time wall clock and this process's CPU time (all its threads). The target compares
CPU time: "the SDK's own client-side time" is the CPU the plain client spends
per call (the server runs in another process), and our added time is
``ours - plain`` measured side by side in the same rounds.
"""

from __future__ import annotations

import functools
import os
import statistics
import subprocess
import sys
import traceback
from typing import Any, Callable

from benchmarks import harness as H

#: The OTel GenAI token-usage histogram: a peer recording it records what our token counters do.
TOKEN_METRIC = "gen_ai.client.token.usage"

#: The instrumentation's ceiling: all our CPU per call at most this share of the cheapest peer's.
PEER_CEILING = 0.5

#: Call-by-call measurements per scenario (the targets take their median; one in a quick run).
REPEATS = H.scaled(3, 1)

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three sentences, please."}]


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.fake_server"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=str(H.REPO))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fake provider did not start: {line!r}")
    return proc, int(line.split()[1])


def stop_server(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- calls ---------------------------------------------------------------------------

def openai_call(client: Any, stream: bool) -> Callable[[int], None]:
    create = None

    def run(n: int) -> None:
        nonlocal create
        create = client.chat.completions.create
        for _ in range(n):
            if stream:
                for _chunk in create(model="gpt-4o-mini", messages=MESSAGES, stream=True,
                                     stream_options={"include_usage": True}):
                    pass
            else:
                create(model="gpt-4o-mini", messages=MESSAGES)

    return run


def anthropic_call(client: Any, stream: bool) -> Callable[[int], None]:
    def run(n: int) -> None:
        create = client.messages.create
        for _ in range(n):
            if stream:
                for _event in create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES, stream=True):
                    pass
            else:
                create(model="claude-haiku-4-5", max_tokens=256, messages=MESSAGES)

    return run


# --- peers ----------------------------------------------------------------------------

class Peer:
    """A peer instrumentation switched on only around its own blocks."""

    def __init__(self, label: str, instrumentor: Any, recording_spans: bool = False) -> None:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        self.label = label
        self.instrumentor = instrumentor
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.tracer_provider: Any = None  # None: the API's default, non-recording spans
        if recording_spans:
            from opentelemetry.sdk.trace import TracerProvider

            self.tracer_provider = TracerProvider()  # spans recorded and ended, exported nowhere

    def with_recording_spans(self) -> "Peer":
        """The same instrumentation with spans that record (its own metric reader)."""
        return Peer(f"{self.label} + recording spans", self.instrumentor, recording_spans=True)

    def on(self) -> None:
        if self.tracer_provider is None:
            self.instrumentor.instrument(meter_provider=self.meter_provider)
        else:
            self.instrumentor.instrument(meter_provider=self.meter_provider, tracer_provider=self.tracer_provider)

    def off(self) -> None:
        self.instrumentor.uninstrument()
        # Some peers' uninstrument() leaves their wrappers in place (see
        # unwrap_sdk_classes); remove them so the next block is really plain.
        self.leftover = max(self.leftover, unwrap_sdk_classes())

    leftover = 0

    def records_tokens(self, run: Callable[[int], None]) -> bool:
        """Whether the peer records token usage for these calls (a few calls with it on)."""
        self.on()
        try:
            run(2)
        finally:
            self.off()
        return self.recorded().get(TOKEN_METRIC, 0) > 0

    def recorded(self) -> dict[str, float]:
        """Metric name -> total count/sum seen (proof the peer really recorded)."""
        out: dict[str, float] = {}
        data = self.reader.get_metrics_data()
        for rm in (data.resource_metrics if data else []):
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    total = 0.0
                    for p in m.data.data_points:
                        total += getattr(p, "count", None) or getattr(p, "value", 0) or 0
                    out[m.name] = total
        return out


@functools.cache
def _wrapt_proxies() -> tuple[type, ...]:
    import wrapt

    return getattr(wrapt, "BaseObjectProxy", wrapt.ObjectProxy), wrapt.FunctionWrapper


def _peeled(value: Any) -> Any:
    """``value`` without the wrapt wrappers around it (peers wrap SDK methods with wrapt)."""
    proxies = _wrapt_proxies()
    while isinstance(value, proxies) and hasattr(value, "__wrapped__"):
        value = value.__wrapped__
    return value


def unwrap_sdk_classes() -> int:
    """Restore every wrapt-wrapped method on openai/anthropic classes; returns how many.

    OpenLLMetry 0.62.4's ``_uninstrument`` passes ``unwrap("openai.resources.chat.completions",
    "Completions.create")``, which ``opentelemetry.instrumentation.utils.unwrap`` splits at the
    wrong dot, so nothing is unwrapped and wrappers pile up on every instrument() call.
    Our instrumentation wraps client instances, not classes, so it is not touched.
    """
    restored = 0
    for name, mod in list(sys.modules.items()):
        if mod is None or not (name.startswith("openai.") or name.startswith("anthropic.")):
            continue
        for cls in list(vars(mod).values()):
            if not isinstance(cls, type) or cls.__module__ != name:
                continue
            for attr, value in list(vars(cls).items()):
                orig = _peeled(value)
                if orig is not value:
                    setattr(cls, attr, orig)
                    restored += 1
    return restored


def bypass_wrappers(obj: Any) -> list[str]:
    """Let one SDK resource object call the SDK's own methods while peers have wrapped its class.

    The object's class becomes a subclass in which every wrapt-wrapped method is the original
    again; other instances of the class keep the peers' wrappers. Returns the names restored.
    """
    cls = type(obj)
    originals: dict[str, Any] = {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, value in vars(klass).items():
            if attr in seen:
                continue  # the class nearest in the MRO defines it
            seen.add(attr)
            orig = _peeled(value)
            if orig is not value:
                originals[attr] = orig
    if originals:
        obj.__class__ = type(cls.__name__, (cls,), originals)
    return sorted(originals)


def make_peers(provider: str, notes: list[str]) -> list[Peer]:
    peers = []
    specs = {
        "openai": [("openllmetry", "opentelemetry.instrumentation.openai", "OpenAIInstrumentor"),
                   ("otel openai-v2", "opentelemetry.instrumentation.openai_v2", "OpenAIInstrumentor")],
        "anthropic": [("openllmetry", "opentelemetry.instrumentation.anthropic", "AnthropicInstrumentor")],
    }[provider]
    import importlib

    for label, module, cls in specs:
        try:
            peers.append(Peer(label, getattr(importlib.import_module(module), cls)()))
        except Exception as exc:
            notes.append(f"{provider} peer {label} not available: {type(exc).__name__}: {exc}")
    return peers


# --- one scenario -----------------------------------------------------------------------

def scenario(provider: str, stream: bool, port: int, notes: list[str]) -> dict[str, Any]:
    import llm_exporter
    from prometheus_client import CollectorRegistry

    from llm_exporter.config import configure

    reg = CollectorRegistry()
    configure(registry=reg)
    if provider == "openai":
        from openai import OpenAI

        def new() -> Any:
            return OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)

        call = openai_call

        def resource(client: Any) -> Any:
            return client.chat.completions
    else:
        from anthropic import Anthropic

        def new() -> Any:
            return Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="bench", max_retries=0)

        call = anthropic_call

        def resource(client: Any) -> Any:
            return client.messages
    plain_client = new()
    cases: dict[str, Callable[[int], None]] = {"plain": call(plain_client, stream)}
    try:
        cases["ours"] = call(llm_exporter.instrument(new()), stream)
    except Exception as exc:
        notes.append(f"ours not measured ({provider}): {type(exc).__name__}: {exc}")
        traceback.print_exc()
    peers = {p.label: p for p in make_peers(provider, notes)}
    for label in peers:
        cases[label] = call(plain_client, stream)  # the peer patches the SDK classes around its block
    # a peer recording no token usage here is measured call by call with recording spans too
    by_call = dict(peers)
    for label, peer in peers.items():
        if not peer.records_tokens(call(new(), stream)):
            variant = peer.with_recording_spans()
            by_call[variant.label] = variant
            notes.append(f"{provider} {'stream' if stream else 'non-stream'}: {label} records no token usage "
                         f"with the default (non-recording) tracer; measured again as '{variant.label}'")

    def setup(name: str) -> None:
        if name in peers:
            peers[name].on()

    def teardown(name: str) -> None:
        if name in peers:
            peers[name].off()

    ops = H.scaled(25, 5)
    rounds = H.scaled(21, 3)
    comp = H.interleaved(cases, ops=ops, rounds=rounds, unit="us/call", scale=1e6, cpu=True,
                         setup=setup, teardown=teardown)
    # The call-by-call figures the targets use, repeated (the machine's phase moves a single run's
    # figure by more than the targets' margins): ours vs plain, then plain, ours and each peer in the
    # same rounds, in turn, REPEATS times; the targets take the median of the repeats.
    pairs: list[H.Paired] = []
    side_by_side: dict[str, list[dict[str, H.Paired]]] = {label: [] for label in by_call}
    if "ours" in cases:
        ours_run, plain_run = cases["ours"], cases["plain"]
        for _ in range(REPEATS):
            pairs.append(H.paired(lambda: ours_run(1), lambda: plain_run(1),
                                  pairs=H.scaled(200 if stream else 1000, 20)))
            for label, peer in by_call.items():
                rounds_g = peer_call_by_call(peer, ours_run, new, resource, call, stream, notes)
                if rounds_g:
                    side_by_side[label].append(rounds_g)
    recorded = {label: p.recorded() for label, p in by_call.items()}
    for label, p in peers.items():
        if p.leftover:
            notes.append(f"{provider} {label}: its uninstrument() left {p.leftover} SDK methods wrapped; "
                         "the benchmark unwrapped them after each of its blocks")
    ours_requests = sum(s.value for fam in reg.collect() if fam.name == "llm_requests"
                        for s in fam.samples if s.name == "llm_requests_total")
    recorded["ours"] = {"llm_requests_total": ours_requests}
    for label, names in recorded.items():
        if not names or not any(names.values()):
            notes.append(f"{provider} {'stream' if stream else 'non-stream'}: {label} recorded nothing")
    return {"provider": provider, "stream": stream, "ops_per_block": ops, "rounds": rounds,
            "comparison": comp.to_json(), "paired": [p.to_json() for p in pairs], "recorded": recorded,
            "peers_paired": {label: [{k: v.to_json() for k, v in g.items()} for g in reps]
                             for label, reps in side_by_side.items() if reps},
            "_comp": comp, "_pairs": pairs, "_peers": side_by_side}


def peer_call_by_call(peer: Peer, ours_run: Callable[[int], None], new: Callable[[], Any],
                      resource: Callable[[Any], Any], call: Callable[[Any, bool], Callable[[int], None]],
                      stream: bool, notes: list[str]) -> dict[str, H.Paired]:
    """The peer's and our added CPU per call, from the same rounds (``H.grouped``).

    The peer stays instrumented for the whole run; its plain baseline is a client whose resource
    object calls the SDK's own methods (``bypass_wrappers``). Our client was instrumented before
    the peer patched the classes, so it holds the SDK's own methods too. A check before timing
    makes sure the baseline client's calls reach none of the peer's code.
    """
    peer.on()
    try:
        baseline = new()
        restored = bypass_wrappers(resource(baseline))
        baseline_run, peer_run = call(baseline, stream), call(new(), stream)
        before = peer.recorded()
        baseline_run(3)
        after_baseline = peer.recorded()
        peer_run(3)
        if not restored or after_baseline != before or peer.recorded() == after_baseline:
            notes.append(f"{peer.label}: no call-by-call figure (its wrappers could not be bypassed for the "
                         "baseline client)")
            return {}
        return H.grouped({"plain": lambda: baseline_run(1), "ours": lambda: ours_run(1),
                          "peer": lambda: peer_run(1)}, "plain", rounds=H.scaled(200 if stream else 700, 20))
    finally:
        peer.off()


def _short(metric: str) -> str:
    """A peer's metric name without the common prefix (``gen_ai.client.token.usage`` -> ``token.usage``)."""
    for prefix in ("gen_ai.client.", "gen_ai.server.", "gen_ai."):
        if metric.startswith(prefix):
            return metric[len(prefix):]
    return metric


def _middle(values: list[Any], key: Callable[[Any], float]) -> Any:
    """The repeat whose figure is the median (the lower middle one of an even number)."""
    return sorted(values, key=key)[(len(values) - 1) // 2]


def _spread(values: list[float], fmt: str = "{:.0f}") -> str:
    return "" if len(values) < 2 else " [repeats: " + ", ".join(fmt.format(v) for v in values) + "]"


def summarise(results: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Report tables and target rows from the scenarios.

    Our added CPU time is the paired, call-by-call figure (``H.paired``). The peer target compares
    call-by-call figures from the same rounds (``peer_call_by_call``). Each is measured ``REPEATS``
    times; a target takes the median of the repeats (shown with its 95 % CI and every repeat's
    figure). The interleaved blocks give every variant's figure by the older block method, for the
    record. Percentages are of the plain call's CPU time.
    """
    rows_cpu, rows_wall, rows_peers, targets = [], [], [], []
    for res in results:
        comp: H.Comparison = res.pop("_comp")
        pairs: list[H.Paired] = res.pop("_pairs")
        side_by_side: dict[str, list[dict[str, H.Paired]]] = res.pop("_peers")
        title = f"{res['provider']} {'stream' if res['stream'] else 'non-stream'}"
        # peer -> the median repeat's (peer added, ours added in the same rounds, plain) and every
        # repeat's ratio, call by call
        peer_pairs = {}
        for label, reps in side_by_side.items():
            if not reps:
                continue
            figures = [(g["peer"].median_ci(), g["ours"].median_ci(), statistics.median(g["peer"].b_values))
                       for g in reps]
            ratios = [o[0] / p[0] if p[0] > 0 else float("inf") for p, o, _ in figures]
            (pm, plo, phi), (om, olo, ohi), plain_g = mid = _middle(figures, lambda f: f[1][0] / f[0][0]
                                                                    if f[0][0] > 0 else float("inf"))
            # all CPU per call, the means of the same rounds: ours includes the batches' work
            means = [(statistics.fmean(g["ours"].diffs), statistics.fmean(g["peer"].diffs)) for g in reps]
            peer_pairs[label] = (mid, statistics.median(ratios), ratios, means)
            recorded = res["recorded"].get(label, {})
            rows_peers.append([title, label, ", ".join(_short(n) for n, v in sorted(recorded.items()) if v) or "nothing",
                               f"+{pm:.0f} ({plo:.0f}..{phi:.0f}) = {pm / plain_g * 100:.1f}%",
                               f"+{om:.0f} ({olo:.0f}..{ohi:.0f}) = {om / plain_g * 100:.1f}%",
                               (f"{statistics.median(ratios):.2f}{_spread(ratios, '{:.2f}')}"
                                if pm > 0.01 * plain_g else "n/a")])
        pct_of = [(p.median_ci(), statistics.median(p.b_values)) for p in pairs]
        mean_of = [(statistics.fmean(p.diffs), statistics.median(p.b_values)) for p in pairs]
        for clock, c, rows in (("cpu", comp.cpu, rows_cpu), ("wall", comp, rows_wall)):
            assert c is not None
            plain = c.median("plain")
            row = [title, f"{plain:.0f}"]
            if clock == "cpu":
                if pairs:
                    (med, lo, hi), plain_p = _middle(pct_of, lambda f: f[0][0] / f[1])
                    mean, plain_m = _middle(mean_of, lambda f: f[0] / f[1])
                    row.append(f"+{med:.0f} ({lo:.0f}..{hi:.0f}) = {med / plain_p * 100:.1f}%"
                               + _spread([f[0][0] for f in pct_of]))
                    row.append(f"+{mean:.0f} = {mean / plain_m * 100:.1f}%" + _spread([f[0] for f in mean_of]))
                else:
                    row += ["n/a", "n/a"]
            added = {}
            for v in ("ours", "openllmetry", "otel openai-v2"):
                if v not in c.series:
                    row.append("n/a")
                    continue
                added[v] = d = c.diff(v, "plain")[0]
                row.append(f"+{d:.0f} ({d / plain * 100:.1f}%)")
            if clock == "wall":
                peers = [added[p] for p in ("openllmetry", "otel openai-v2") if p in added]
                # a peer that adds under 1 % of the call is within noise of zero: no ratio to speak of
                row.append(f"{added['ours'] / min(peers):.2f}"
                           if "ours" in added and peers and min(peers) > 0.01 * plain else "n/a")
            rows.append(row)
        # the ceiling: all our CPU per call (the mean of the per-round differences) <= PEER_CEILING x the
        # cheapest peer's that records token usage as we do (its mean in the same rounds); any peer if none does
        comparable = {k: v for k, v in peer_pairs.items() if res["recorded"].get(k, {}).get(TOKEN_METRIC)}
        candidates = comparable or peer_pairs
        if candidates:
            label = min(candidates, key=lambda k: statistics.median(p for _, p in candidates[k][3]))
            means = candidates[label][3]
            mean_ratios = [o / p if p > 0 else float("inf") for o, p in means]
            o_mean, p_mean = _middle(means, lambda f: f[0] / f[1] if f[1] > 0 else float("inf"))
            targets.append({"target": f"instrument, {title}: all our CPU per call (mean) <= {PEER_CEILING}x the "
                                      "cheapest peer's that records token usage",
                            "measured": f"{statistics.median(mean_ratios):.2f} of {label}'s, means of the same "
                                        f"rounds (+{o_mean:.0f} vs +{p_mean:.0f} us"
                                        + ("" if comparable else "; no peer records token usage: the cheapest")
                                        + ")" + (f", median of {len(mean_ratios)} repeats"
                                                 f"{_spread(mean_ratios, '{:.2f}')}" if len(mean_ratios) > 1 else ""),
                            "met": statistics.median(mean_ratios) <= PEER_CEILING})
    head_cpu = ["call", "plain us/call", "ours added, call by call (95% CI)",
                "ours added, mean of the same pairs (all our CPU; the median repeat)", "ours added (blocks)",
                "openllmetry added (blocks)", "otel openai-v2 added (blocks)"]
    head = ["call", "plain us/call", "ours added", "openllmetry added", "otel openai-v2 added",
            "ours / cheapest peer"]
    repeated = f"the median of {REPEATS} repeats, every repeat's figure in brackets" if REPEATS > 1 else "one repeat"
    tables = [{"title": f"Client process CPU time per call, us (the target's measure; call by call: {repeated})",
               "head": head_cpu,
               "rows": rows_cpu},
              {"title": "Against each peer, call by call: client CPU added per call, us, peer and ours in the "
                        f"same rounds (95% CI; the ratio: {repeated}; the rest: the repeat with the median "
                        "ratio)", "head": ["call", "peer", "what the peer recorded", "peer added", "ours added", "ours / peer"],
               "rows": rows_peers},
              {"title": "Wall time per call, us (includes the server round trip on loopback; blocks)",
               "head": head, "rows": rows_wall}]
    return tables, targets


def main() -> None:
    notes: list[str] = []
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "")
    proc, port = start_server()
    results = []
    try:
        for provider in ("openai", "anthropic"):
            for stream in (False, True):
                try:
                    results.append(scenario(provider, stream, port, notes))
                except Exception as exc:
                    notes.append(f"{provider} stream={stream} failed: {type(exc).__name__}: {exc}")
                    traceback.print_exc()
    finally:
        stop_server(proc)
    tables, targets = summarise(results)
    H.emit({"section": "instrument", "scenarios": results, "tables": tables, "targets": targets,
            "notes": list(dict.fromkeys(notes)),
            "method": "Same client calls against the local protocol server (own process, loopback, no delays). "
                      "Call by call: one plain and one instrumented call back to back, many rounds, median of "
                      "the per-round differences (what a call waits for), and their mean (all our CPU per call); "
                      "against a peer, plain, ours and the peer in the same rounds, "
                      "the peer instrumented for the whole run and the plain client bypassing its wrappers. "
                      "Blocks: interleaved blocks per variant, added = median over rounds of (variant - plain), "
                      "peers instrumented around their own blocks only. Peers: SDK MeterProvider + "
                      "InMemoryMetricReader, default (no-op) tracer; a peer that records no token usage so is "
                      "measured call by call again with an SDK TracerProvider that records spans and exports "
                      "none ('+ recording spans'), and the peer targets compare with the cheapest peer that "
                      "records token usage. Percentages are of the plain call."})


if __name__ == "__main__":
    main()
