"""Profile our instrumentation on real SDK calls (where the added time goes).

    python -m benchmarks.profile_instrument [openai|anthropic] [stream|plain] [N] [--pyinstrument]

Runs N instrumented calls against the local protocol server (own process) under
cProfile and prints the llm_exporter functions by cumulative and own time, so a
missed instrumentation target can be traced to its cause. ``--pyinstrument``
prints a pyinstrument call tree instead (statistical, lower overhead).
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys

from benchmarks import bench_instrument as B


def main(argv: list[str]) -> None:
    use_pyi = "--pyinstrument" in argv
    args = [a for a in argv if not a.startswith("--")]
    provider = args[0] if args else "openai"
    stream = (args[1] if len(args) > 1 else "stream") == "stream"
    n = int(args[2]) if len(args) > 2 else 300

    import llm_exporter
    from prometheus_client import CollectorRegistry

    from llm_exporter.config import configure

    configure(registry=CollectorRegistry())
    proc, port = B.start_server()
    try:
        if provider == "openai":
            from openai import OpenAI

            client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0)
            run = B.openai_call(llm_exporter.instrument(client), stream)
        else:
            from anthropic import Anthropic

            client = Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="bench", max_retries=0)
            run = B.anthropic_call(llm_exporter.instrument(client), stream)
        run(20)  # warm up
        if use_pyi:
            from pyinstrument import Profiler

            prof = Profiler(interval=0.0002)
            prof.start()
            run(n)
            prof.stop()
            print(prof.output_text(unicode=False, color=False, show_all=False))
            return
        pr = cProfile.Profile()
        pr.enable()
        run(n)
        pr.disable()
    finally:
        B.stop_server(proc)
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        st = pstats.Stats(pr, stream=out).sort_stats(key)
        st.print_stats("llm_exporter", 25)
        print(f"=== {provider} {'stream' if stream else 'non-stream'}, {n} calls, by {key} (llm_exporter only) ===")
        print("\n".join(out.getvalue().splitlines()[6:]))


if __name__ == "__main__":
    main(sys.argv[1:])
