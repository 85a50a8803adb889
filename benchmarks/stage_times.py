"""Where a request's time goes inside the gateway, stage by stage (wall time).

For each workload a fresh ``hybridgate serve`` (the configuration of ``overhead.py``) runs
with ``stage_probe`` loaded through a generated ``sitecustomize``, which times the
pipeline's stages in the gateway's own process; the load comes from this process at
concurrency 1 (aiohttp), against the loopback upstream:

* ``short``: the short chat of ``overhead.py``, ``--requests`` times;
* ``growing``: ``--conversations`` agent conversations (``agent_scan_bench``'s sessions
  without planted values) growing to ``--kb`` KB over ``--turns`` turns, every turn after
  the first timed.

Each stage's median and mean wall milliseconds per request are printed, nested as the
stages nest (a body over 32 KB with more than 32 KB new in it is scanned in the scan
pool: its wall time there includes the hand-over). Each wrapper costs under half a
microsecond a call (timed in-process).

    .venv/bin/python benchmarks/stage_times.py [--kb 400] [--conversations 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
from pathlib import Path

import overhead as ov
import overhead_peers as peers

#: (label, function) in the order printed; the label's indent is its nesting.
STAGES = [
    ("whole request (ASGI app)", "hybridgate.api.edge:EdgeMiddleware.__call__"),
    ("  exchange (auth, body ... answer)", "hybridgate.api.exchange:ExchangeRunner.run"),
    ("    authenticate, read the body", "hybridgate.api.exchange:ExchangeRunner.open"),
    ("    parse JSON, nesting check", "hybridgate.api.exchange:parse_json"),
    ("    prepare", "hybridgate.pipeline.core:Pipeline.prepare_chat"),
    ("      scan", "hybridgate.pipeline.scanning:ScanPool.scan"),
    ("      policy decision", "hybridgate.pipeline.core:decide"),
    ("      budget hold", "hybridgate.pipeline.budget:reserve"),
    ("    upstream call", "hybridgate.pipeline.core:Pipeline.complete"),
    ("    close: outcome, receipt", "hybridgate.pipeline.core:close_exchange"),
    ("      outcome (commitments)", "hybridgate.pipeline.close:build_outcome"),
    ("      record (usage, durable receipt)", "hybridgate.pipeline.close:record"),
]
SITECUSTOMIZE = "import stage_probe\nstage_probe.from_env()\n"


def stages(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The stages timed: :data:`STAGES` and ``--extra`` functions (labelled by name)."""
    extra = [(f"  + {f}", f) for f in filter(None, args.extra.split(","))]
    return STAGES + extra


def run(
    workload: str, tmp: Path, args: argparse.Namespace
) -> tuple[dict[str, list[float]], int, float, float, float]:
    """One gateway for ``workload``: each stage's times (s), requests timed, p50s (ms),
    and the gateway's resident memory (MB) at the end."""
    site = tmp / f"site-{workload}"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    out = tmp / f"stages-{workload}.json"
    up, gw = ov.free_port(), ov.free_port()
    upstream = ov.start_upstream(up)
    env = dict(os.environ)
    here = Path(__file__).resolve().parent
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(site), str(here), *filter(None, [env.get("PYTHONPATH")])]
    )
    os.environ["HYBRIDGATE_STAGE_PROBE"] = str(out)
    os.environ["HYBRIDGATE_STAGE_FUNCS"] = ",".join(f for _, f in stages(args))
    try:
        # (the key command loads the probe too and exits without writing: only the
        # server is sent SIGTERM)
        gateway, key = ov.start_gateway(tmp / f"home-{workload}", up, gw, "power_loss")
    finally:
        os.environ.clear()
        os.environ.update(env)
    try:
        direct = peers.Target("direct", f"http://127.0.0.1:{up}/v1/chat/completions")
        hg = peers.Target(
            "hybridgate",
            f"http://127.0.0.1:{gw}/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
        )
        warm = [peers._body(hg, [{"role": "user", "content": "hi"}], max_tokens=8)] * 50
        asyncio.run(peers.post_all(hg, warm, 1))
        p50: dict[str, float] = {}
        for t in (direct, hg):
            if workload == "short":
                body = peers._body(t, [{"role": "user", "content": ov.PROMPT}], max_tokens=64)
                lat, _, err = asyncio.run(peers.post_all(t, [body] * args.requests, 1))
            else:
                lat, err = [], 0
                for c in range(args.conversations):
                    bodies = [
                        peers.agent_body(t, b)
                        for b in peers.conversation(args.kb * 1024, args.turns, 1000 + c)
                    ]
                    asyncio.run(peers.post_all(t, bodies[:1], 1))
                    got, _, e = asyncio.run(peers.post_all(t, bodies[1:], 1))
                    lat += got
                    err += e
            if err:
                raise SystemExit(f"{err} failed requests to {t.name}")
            p50[t.name] = statistics.median(lat)
            timed = len(lat)
        rss = peers.rss_mb(gateway.pid)
    finally:
        gateway.terminate()
        gateway.wait(15)
        upstream.terminate()
        upstream.wait(15)
    times: dict[str, list[float]] = json.loads(out.read_text())
    # the last calls of each stage are the workload's requests, one call each, in order
    # (health checks and the warm-up came before); turn 1 of each conversation is untimed
    if workload == "short":
        kept = {fn: xs[-timed:] for fn, xs in times.items()}
    else:
        total = args.conversations * args.turns
        kept = {
            fn: [x for i, x in enumerate(xs[-total:]) if i % args.turns] for fn, xs in times.items()
        }
    return kept, timed, p50["direct"], p50["hybridgate"], rss


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--workloads", default="short,growing")
    ap.add_argument("--requests", type=int, default=2000, help="short: requests")
    ap.add_argument("--kb", type=int, default=400, help="growing: the last turn's size")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--conversations", type=int, default=4)
    ap.add_argument(
        "--extra",
        default="",
        help="more functions to time: module:attr.path,... (called once per request)",
    )
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hg-stages-"))
    for workload in args.workloads.split(","):
        times, n, direct, via, rss = run(workload, tmp, args)
        label = (
            "short chat"
            if workload == "short"
            else f"growing conversations to {args.kb} KB, turns 2–{args.turns}"
        )
        print(
            f"\n{label}: {n} timed requests at concurrency 1; p50 direct {direct:.2f} ms, "
            f"through the gateway {via:.2f} ms (added {via - direct:+.2f} ms); gateway RSS "
            f"{rss:.0f} MB at the end"
        )
        print("| stage | median ms | mean ms |")
        print("|---|---|---|")
        for name, fn in stages(args):
            xs = times.get(fn, [])
            if not xs:
                continue
            print(
                f"| {name.replace('  ', '· ')} | {statistics.median(xs) * 1e3:.3f} "
                f"| {statistics.mean(xs) * 1e3:.3f} |"
            )


if __name__ == "__main__":
    main()
