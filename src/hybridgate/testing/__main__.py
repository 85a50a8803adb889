"""``python -m hybridgate.testing``: run both loopback upstreams until interrupted.

Point a gateway configuration's routes at the printed URLs to try it end to
end without spending tokens (or sending data anywhere).
"""

from __future__ import annotations

import argparse
import signal
import threading

from hybridgate.testing import AnthropicUpstream, OpenAIUpstream


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m hybridgate.testing", description=__doc__)
    ap.add_argument("--openai-port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--anthropic-port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--reply", default=None, help="fixed reply (default: echo the last user text)")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument(
        "--chunk-interval", type=float, default=0.0, help="streams: seconds between events"
    )
    ap.add_argument(
        "--tools", action="store_true", help="answer tool-offering requests with a call"
    )
    args = ap.parse_args(argv)
    knobs = {
        "reply": args.reply,
        "latency_s": args.latency,
        "chunk_interval_s": args.chunk_interval,
        "tool_calls": args.tools,
    }
    oa = OpenAIUpstream(port=args.openai_port, record=False, **knobs)
    an = AnthropicUpstream(port=args.anthropic_port, record=False, **knobs)
    stop = threading.Event()
    # Ctrl-C / SIGTERM set an event instead of raising wherever the main thread
    # happens to be (a KeyboardInterrupt mid-print would exit non-zero).
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with oa, an:
        print(f"OpenAI-compatible upstream:  {oa.base_url}", flush=True)
        print(f"Anthropic Messages upstream: {an.base_url}", flush=True)
        print("Ctrl-C to stop.", flush=True)
        while not stop.wait(0.2):
            pass
        print("stopped", flush=True)


if __name__ == "__main__":
    main()
