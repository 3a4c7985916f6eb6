"""Run the fake provider standalone: ``python -m llm_exporter.fakeprovider --port 8900``."""

from __future__ import annotations

import argparse
import signal
import threading

from .server import FakeProvider


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Local OpenAI/Anthropic protocol server (healthy default policy)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    args = parser.parse_args(argv)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with FakeProvider(host=args.host, port=args.port) as server:
        print(f"fake provider on {server.url} (OpenAI base URL {server.openai_base_url})", flush=True)
        try:
            done.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
