"""Before/after: the same gateway cells from two source trees, interleaved in one run.

A change to the request path is worth keeping only if it shows here. Each tree
(``NAME=PATH`` to a ``src`` directory, e.g. one made with ``git archive main src |
tar -x -C /tmp/before``) runs as its own ``hybridgate serve`` in front of one shared
loopback upstream; the rounds alternate between them so load from elsewhere falls on
both. Per tree and cell: p50 latency and requests/s (median over rounds) and the
gateway's CPU milliseconds per request (user + system time of its process, less
sensitive to a shared machine than latency).

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
from overhead import free_port, load, rss_mb, start_gateway, start_upstream


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("trees", nargs="+", help="NAME=PATH of a src directory")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=2000, help="per round at concurrency 16")
    ap.add_argument("--requests-c1", type=int, default=500, help="per round at concurrency 1")
    ap.add_argument("--agent-kb", type=int, default=100, help="fresh agent prompts, 0: none")
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
        cells = ["json c=1", "json c=16"] + ([f"{args.agent_kb} KB c=1"] if args.agent_kb else [])
        results: dict[tuple[str, str], list[tuple[float, float, float, int]]] = {
            (n, c): [] for n in trees for c in cells
        }
        for r in range(args.rounds):
            for name, (proc, key, port) in gateways.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                for conc, n in ((1, args.requests_c1), (16, args.requests)):
                    c0 = cpu_seconds(proc.pid)
                    cell = asyncio.run(load(url, key, n, conc, False))
                    cpu = (cpu_seconds(proc.pid) - c0) * 1000 / (n + min(50, n))
                    results[(name, f"json c={conc}")].append(
                        (cell.pct(0.5), cell.rps, cpu, cell.errors)
                    )
                if args.agent_kb:
                    t = peers.Target(name, url, {"authorization": f"Bearer {key}"})
                    bodies = peers.fresh_bodies(t, args.agent_kb * 1024, 15, 1000 * r + 7)
                    c0 = cpu_seconds(proc.pid)
                    lat, secs, err = asyncio.run(peers.post_all(t, bodies, 1))
                    cpu = (cpu_seconds(proc.pid) - c0) * 1000 / len(bodies)
                    results[(name, cells[-1])].append(
                        (statistics.median(lat) if lat else float("nan"), len(lat) / secs, cpu, err)
                    )
        print("| tree | cell | p50 ms | req/s | gateway CPU ms/request | RSS MB | errors |")
        print("|---|---|---|---|---|---|---|")
        for (name, label), xs in results.items():
            print(
                f"| {name} | {label} | {statistics.median(x[0] for x in xs):.2f} "
                f"| {statistics.median(x[1] for x in xs):,.0f} "
                f"| {statistics.median(x[2] for x in xs):.3f} "
                f"| {rss_mb(gateways[name][0].pid):.0f} | {sum(x[3] for x in xs)} |"
            )
    finally:
        for proc, _, _ in gateways.values():
            proc.terminate()
            proc.wait(15)
        upstream.terminate()
        upstream.wait(15)


if __name__ == "__main__":
    main()
