"""Before/after: the same gateway cells from two source trees, interleaved in one run.

A change to the request path is worth keeping only if it shows here. Each tree
(``NAME=PATH`` to a ``src`` directory, e.g. one made with ``git archive main src |
tar -x -C /tmp/before``) runs as its own ``hybridgate serve`` in front of one shared
loopback upstream; the rounds alternate between them so load from elsewhere falls on
both. Per tree and cell: p50 and p99 latency and requests/s (medians over rounds) and the
gateway's CPU milliseconds per request (user + system time of its process, less
sensitive to a shared machine than latency). Cells: short chats at concurrency 1 and
16, fresh agent prompts (``--agent-kb``) and an agent conversation growing turn by
turn (``--growing-kb``; each round a new one, turns 2-20 timed).

    .venv/bin/python benchmarks/overhead_ab.py before=/tmp/before/src after=src [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from pathlib import Path

import overhead_peers as peers
from overhead import Cell, free_port, load, rss_mb, start_gateway, start_upstream


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_bodies(
    pid: int, target: peers.Target, bodies: list[bytes]
) -> tuple[float, float, float, float, int]:
    """Post ``bodies`` one at a time: p50 and p99 ms, requests/s, the gateway's CPU ms per
    request, failures."""
    c0 = cpu_seconds(pid)
    lat, secs, err = asyncio.run(peers.post_all(target, bodies, 1))
    cpu = (cpu_seconds(pid) - c0) * 1000 / len(bodies)
    p50 = statistics.median(lat) if lat else float("nan")
    return (p50, Cell(lat, secs, err).pct(0.99), len(lat) / secs, cpu, err)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("trees", nargs="+", help="NAME=PATH of a src directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000, help="per round at concurrency 16")
    ap.add_argument("--requests-c1", type=int, default=500, help="per round at concurrency 1")
    ap.add_argument("--agent-kb", type=int, default=100, help="fresh agent prompts, 0: none")
    ap.add_argument(
        "--growing-kb",
        type=int,
        default=0,
        help="an agent conversation growing to this size, turns 2-20 timed, 0: none",
    )
    ap.add_argument("--only-agent", action="store_true", help="skip the short-chat cells")
    args = ap.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees)
    tmp = Path(tempfile.mkdtemp(prefix="hg-ab-"))
    up = free_port()
    upstream = start_upstream(up)
    gateways = {}
    try:
        for name, path in trees.items():
            os.environ["PYTHONPATH"] = str(Path(path).resolve())
            port = free_port()
            proc, key = start_gateway(tmp / name, up, port, "power_loss")
            gateways[name] = (proc, key, port)
        agent_cell = f"{args.agent_kb} KB c=1"
        growing_cell = f"growing to {args.growing_kb} KB c=1"
        cells = [] if args.only_agent else ["json c=1", "json c=16"]
        cells += [agent_cell] if args.agent_kb else []
        cells += [growing_cell] if args.growing_kb else []
        results: dict[tuple[str, str], list[tuple[float, float, float, float, int]]] = {
            (n, c): [] for n in trees for c in cells
        }
        for r in range(args.rounds):
            for name, (proc, key, port) in gateways.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                for conc, n in (
                    () if args.only_agent else ((1, args.requests_c1), (16, args.requests))
                ):
                    c0 = cpu_seconds(proc.pid)
                    cell = asyncio.run(load(url, key, n, conc, False))
                    cpu = (cpu_seconds(proc.pid) - c0) * 1000 / (n + min(50, n))
                    results[(name, f"json c={conc}")].append(
                        (cell.pct(0.5), cell.pct(0.99), cell.rps, cpu, cell.errors)
                    )
                t = peers.Target(name, url, {"authorization": f"Bearer {key}"})
                if args.agent_kb:
                    bodies = peers.fresh_bodies(t, args.agent_kb * 1024, 15, 1000 * r + 7)
                    results[(name, agent_cell)].append(timed_bodies(proc.pid, t, bodies))
                if args.growing_kb:
                    # a new conversation each round (same for every tree): turn 1 untimed
                    convo = [
                        peers.agent_body(t, b)
                        for b in peers.conversation(args.growing_kb * 1024, 20, 1000 * r + 11)
                    ]
                    asyncio.run(peers.post_all(t, convo[:1], 1))
                    results[(name, growing_cell)].append(timed_bodies(proc.pid, t, convo[1:]))
        print(
            "| tree | cell | p50 ms | p99 ms | req/s | gateway CPU ms/request | RSS MB | errors |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for (name, label), xs in results.items():
            print(
                f"| {name} | {label} | {statistics.median(x[0] for x in xs):.2f} "
                f"| {statistics.median(x[1] for x in xs):.2f} "
                f"| {statistics.median(x[2] for x in xs):,.0f} "
                f"| {statistics.median(x[3] for x in xs):.3f} "
                f"| {rss_mb(gateways[name][0].pid):.0f} | {sum(x[4] for x in xs)} |"
            )
    finally:
        for proc, _, _ in gateways.values():
            proc.terminate()
            proc.wait(15)
        upstream.terminate()
        upstream.wait(15)


if __name__ == "__main__":
    main()
