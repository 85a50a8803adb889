"""Gateway overhead: the same loopback upstream called directly and through hybridgate.

Three processes on this machine: the loopback upstream
(``python -m hybridgate.testing``), the gateway (``hybridgate serve``), and
this load generator (aiohttp, a fixed number of requests per cell). For each
mode (non-streaming, streaming) and concurrency (1, 16) it prints p50/p99
latency direct and through the gateway, the added p50/p99, requests/s through
the gateway, and the gateway's resident memory. Each request is scanned,
evaluated against the default policy, routed, accounted, and receipted with a
durable (group-committed) Merkle-log append before its answer completes.

``--wire`` adds a second table: the Responses API through the gateway on a
route that speaks it (``provider: openai``, passed through to the upstream's
``/v1/responses``) and on one that does not (``openai_compat``, translated to
Chat Completions and back), each against the upstream called directly in the
same API.

Then the peers, in the same run and in front of the same upstream (each skipped
with a note when not installed; see ``overhead_peers.py`` for how to install them):
LiteLLM's proxy and the Portkey OSS gateway beside hybridgate and the upstream
called directly, measured with wrk where it is installed, at concurrency 1, 16
and 64, with hybridgate's throughput as a multiple of each; agent-size prompts
(10, 100 and 400 KB of fresh content, and a conversation whose history grows
turn by turn); and 100 concurrent streams from an upstream that paces its
events (time to the first chunk over direct).

    .venv/bin/python benchmarks/overhead.py [--requests 2000] [--durability power_loss] [--wire]
        [--skip peers,agent,streams]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import overhead_peers as peers

PROMPT = "Hello! Could you tell me a short fact about the ocean?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@dataclass
class Cell:
    latencies_ms: list[float]
    seconds: float
    errors: int

    @property
    def rps(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(q * len(xs)))]


async def load(url: str, key: str | None, n: int, concurrency: int, stream: bool) -> Cell:
    body: dict[str, Any] = {
        "model": "bench",
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": 64,
    }
    done = b"[DONE]" if stream else b"choices"
    return await load_body(url, key, n, concurrency, body, stream, done)


def responses_body(model: str) -> dict[str, Any]:
    return {"model": model, "input": PROMPT, "max_output_tokens": 64, "store": False}


async def load_body(
    url: str,
    key: str | None,
    n: int,
    concurrency: int,
    body: dict[str, Any],
    stream: bool,
    done: bytes,
) -> Cell:
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    body = dict(body)
    if stream:
        body["stream"] = True
    payload = json.dumps(body).encode()
    lat: list[float] = []
    errors = 0
    todo = iter(range(n))
    conn = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=conn) as session:

        async def worker() -> None:
            nonlocal errors
            for _ in todo:
                t0 = time.perf_counter()
                async with session.post(url, data=payload, headers=headers) as resp:
                    data = await resp.read()
                    ok = resp.status == 200 and done in data
                if ok:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        # warm-up: connections, caches, JIT-free but first-call costs
        warm = iter(range(min(50, n)))
        saved, todo = todo, warm
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        lat.clear()
        todo = saved
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - t0
    return Cell(lat, seconds, errors)


def start_upstream(port: int, chunk_interval_s: float = 0.0) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybridgate.testing",
            "--openai-port",
            str(port),
            "--chunk-interval",
            str(chunk_interval_s),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/v1/models")
    return proc


def start_gateway(
    home: Path, upstream: int, port: int, durability: str, paced: int | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    cfg = {
        "home": str(home),
        "server": {"port": port, "log_level": "warning"},
        "ledger": {"durability": durability, "checkpoint_interval_s": 60},
        "routes": [
            {
                "name": "bench",
                "provider": "openai_compat",
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "model": "bench-model",
                "location": "on_prem",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
            },
            {  # the same upstream as an OpenAI route: the Responses API passes through
                "name": "bench-native",
                "provider": "openai",
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "api_key": "sk-bench",
                "model": "bench-model",
                "location": "on_prem",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
            },
            {  # the same, in front of the upstream that paces its stream events
                "name": "bench-paced",
                "provider": "openai_compat",
                "base_url": f"http://127.0.0.1:{paced or upstream}/v1",
                "model": "bench-model",
                "location": "on_prem",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
            },
        ],
    }
    path = home / "hybridgate.yaml"
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    hg = [sys.executable, "-m", "hybridgate.cli.main"]
    key = subprocess.run(
        [*hg, "keys", "create", "--team", "bench", "--config", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    proc = subprocess.Popen(
        [*hg, "serve", "--config", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    return proc, key


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=2000, help="per cell at concurrency 16")
    ap.add_argument("--requests-c1", type=int, default=600, help="per cell at concurrency 1")
    ap.add_argument("--durability", choices=["power_loss", "process_crash"], default="power_loss")
    ap.add_argument(
        "--litellm-python", default=None, help=f"default {peers.LITELLM_PYTHON} when present"
    )
    ap.add_argument("--portkey-js", default=None, help=f"default {peers.PORTKEY_JS} when present")
    ap.add_argument(
        "--wire", action="store_true", help="also: Responses API pass-through vs translated"
    )
    ap.add_argument("--skip", default="", help="comma list of: main, peers, agent, streams")
    ap.add_argument("--concurrency", default="1,16,64", help="peer table concurrencies")
    ap.add_argument("--seconds", type=float, default=5.0, help="per wrk cell")
    ap.add_argument("--agent-kb", default="10,100,400", help="agent prompt sizes")
    ap.add_argument("--turns", type=int, default=20, help="turns of the growing conversation")
    ap.add_argument("--streams", type=int, default=100, help="concurrent streams")
    ap.add_argument("--stream-rounds", type=int, default=3)
    ap.add_argument(
        "--chunk-interval", type=float, default=0.02, help="paced upstream: s between events"
    )
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))

    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-"))
    up_port, paced_port, gw_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    notes: list[str] = []
    rows: list[list[str]] = []
    wire: list[list[str]] = []
    tables: list[str] = []
    try:
        procs.append(start_upstream(up_port))
        procs.append(start_upstream(paced_port, args.chunk_interval))
        gateway, key = start_gateway(
            tmp / "home", up_port, gw_port, args.durability, paced=paced_port
        )
        procs.append(gateway)
        gw_url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
        auth = {"authorization": f"Bearer {key}"}
        targets = [
            peers.Target(
                "direct",
                f"http://127.0.0.1:{up_port}/v1/chat/completions",
                paced=peers.Target("direct", f"http://127.0.0.1:{paced_port}/v1/chat/completions"),
            ),
            peers.Target(
                "hybridgate",
                gw_url,
                auth,
                gateway.pid,
                paced=peers.Target("hybridgate", gw_url, auth, gateway.pid, "bench-paced"),
            ),
        ]
        if not skip >= {"peers", "agent", "streams"}:
            targets += start_peers(args, tmp, up_port, paced_port, procs, notes)
        if "main" not in skip:
            rows = run_cells(args, up_port, gw_port, key, gateway)
        if args.wire:
            wire = run_wire(args, up_port, gw_port, key)
        if "peers" not in skip:
            concs = tuple(int(c) for c in args.concurrency.split(","))
            tables += peers.peer_table(targets, PROMPT, concs, args.seconds, args.requests)
        if "agent" not in skip:
            sizes = [int(k) for k in args.agent_kb.split(",")]
            tables += peers.agent_table(targets, sizes, args.turns, seed=7)
        if "streams" not in skip:
            tables += peers.stream_table(targets, PROMPT, args.streams, args.stream_rounds)
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    report(args, rows)
    if wire:
        print("\nResponses API through the gateway: passed through vs translated")
        print(
            "| route | mode | conc | direct p50 ms | gateway p50 ms | added p50 ms "
            "| added p99 ms | gateway req/s | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in wire:
            print("| " + " | ".join(r) + " |")
    print("\n".join(tables))
    for note in notes:
        print(f"\n({note})")


def start_peers(
    args: argparse.Namespace,
    tmp: Path,
    up_port: int,
    paced_port: int,
    procs: list[subprocess.Popen[bytes]],
    notes: list[str],
) -> list[peers.Target]:
    """The peer gateways that are installed; a note for each that is not."""
    out: list[peers.Target] = []
    js = peers.portkey_js(args.portkey_js)
    if js is None:
        notes.append(
            "Portkey not measured: `npm install --prefix /tmp/portkey @portkey-ai/gateway` "
            "(and node), or pass --portkey-js"
        )
    else:
        proc, target = peers.start_portkey(js, up_port, paced_port, free_port(), wait_http)
        procs.append(proc)
        out.append(target)
    py = peers.litellm_python(args.litellm_python)
    if py is None:
        notes.append(
            "LiteLLM not measured: install litellm[proxy] in /tmp/litellm-venv, "
            "or pass --litellm-python"
        )
    else:
        proc, target = peers.start_litellm(py, up_port, paced_port, free_port(), tmp, wait_http)
        procs.append(proc)
        out.append(target)
    if shutil.which("wrk") is None:
        notes.append("wrk not installed (`apt-get install wrk`): the peer table used aiohttp")
    return out


def run_wire(args: argparse.Namespace, up_port: int, gw_port: int, key: str) -> list[list[str]]:
    """The Responses API on a native route (pass-through) and a chat route (translated).

    "direct" is the upstream in the API the gateway speaks to it: ``/v1/responses``
    for the pass-through route, ``/v1/chat/completions`` for the translated one.
    """
    rows: list[list[str]] = []
    up = f"http://127.0.0.1:{up_port}/v1"
    gw = f"http://127.0.0.1:{gw_port}/v1/responses"
    for route, label in (("bench-native", "pass-through"), ("bench", "translated")):
        for stream in (False, True):
            for conc in (1, 16):
                n = args.requests_c1 if conc == 1 else args.requests
                if route == "bench-native":
                    done = b"response.completed" if stream else b'"output"'
                    direct = asyncio.run(
                        load_body(
                            up + "/responses", None, n, conc, responses_body("m"), stream, done
                        )
                    )
                else:
                    direct = asyncio.run(load(up + "/chat/completions", None, n, conc, stream))
                done = b"response.completed" if stream else b'"output"'
                via = asyncio.run(load_body(gw, key, n, conc, responses_body(route), stream, done))
                rows.append(
                    [
                        label,
                        "stream" if stream else "json",
                        str(conc),
                        f"{direct.pct(0.5):.2f}",
                        f"{via.pct(0.5):.2f}",
                        f"{via.pct(0.5) - direct.pct(0.5):+.2f}",
                        f"{via.pct(0.99) - direct.pct(0.99):+.2f}",
                        f"{via.rps:,.0f}",
                        str(via.errors),
                    ]
                )
    return rows


def run_cells(
    args: argparse.Namespace,
    up_port: int,
    gw_port: int,
    key: str,
    gateway: subprocess.Popen[bytes],
) -> list[list[str]]:
    rows: list[list[str]] = []
    for stream in (False, True):
        for conc in (1, 16):
            n = args.requests_c1 if conc == 1 else args.requests
            direct = asyncio.run(
                load(f"http://127.0.0.1:{up_port}/v1/chat/completions", None, n, conc, stream)
            )
            via = asyncio.run(
                load(f"http://127.0.0.1:{gw_port}/v1/chat/completions", key, n, conc, stream)
            )
            mode = "stream" if stream else "json"
            rows.append(
                [
                    mode,
                    str(conc),
                    f"{direct.pct(0.5):.2f}",
                    f"{via.pct(0.5):.2f}",
                    f"{via.pct(0.5) - direct.pct(0.5):+.2f}",
                    f"{via.pct(0.99) - direct.pct(0.99):+.2f}",
                    f"{direct.rps:,.0f}",
                    f"{via.rps:,.0f}",
                    f"{rss_mb(gateway.pid):.0f}",
                    str(via.errors),
                ]
            )
    return rows


def report(args: argparse.Namespace, rows: list[list[str]]) -> None:
    print(f"durability={args.durability}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    if not rows:
        return
    print("\nhybridgate against the upstream called directly (aiohttp client):")
    print(
        "| mode | conc | direct p50 ms | gateway p50 ms | added p50 ms | added p99 ms "
        "| direct req/s | gateway req/s | gateway RSS MB | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
