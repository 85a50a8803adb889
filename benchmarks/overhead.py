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

If ``litellm`` is importable (install it in a separate venv and pass
``--litellm-python``), the same cells are measured against LiteLLM's proxy in
front of the same upstream and the throughput ratio is printed.

    .venv/bin/python benchmarks/overhead.py [--requests 2000] [--durability power_loss] [--wire]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

PROMPT = "Hello! Could you tell me a short fact about the ocean?"
LITELLM_KEY = "sk-bench-" + "0" * 32


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


def start_upstream(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridgate.testing", "--openai-port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/v1/models")
    return proc


def start_gateway(
    home: Path, upstream: int, port: int, durability: str
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


def start_litellm(python: str, upstream: int, port: int, home: Path) -> subprocess.Popen[bytes]:
    cfg = {
        "model_list": [
            {
                "model_name": "bench",
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{upstream}/v1",
                    "api_key": LITELLM_KEY,
                },
            }
        ]
    }
    path = home / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.Popen(
        [str(Path(python).parent / "litellm"), "--config", str(path), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": LITELLM_KEY},
    )
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", timeout=120)
    return proc


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--requests", type=int, default=2000, help="per cell at concurrency 16")
    ap.add_argument("--requests-c1", type=int, default=600, help="per cell at concurrency 1")
    ap.add_argument("--durability", choices=["power_loss", "process_crash"], default="power_loss")
    ap.add_argument("--litellm-python", default=None, help="a python with litellm[proxy] installed")
    ap.add_argument(
        "--wire", action="store_true", help="also: Responses API pass-through vs translated"
    )
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hg-bench-"))
    up_port, gw_port, lt_port = free_port(), free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        upstream = start_upstream(up_port)
        procs.append(upstream)
        gateway, key = start_gateway(tmp / "home", up_port, gw_port, args.durability)
        procs.append(gateway)
        litellm = None
        if args.litellm_python:
            litellm = start_litellm(args.litellm_python, up_port, lt_port, tmp)
            procs.append(litellm)
        rows, ratios = run_cells(args, up_port, gw_port, lt_port, key, gateway, litellm)
        wire = run_wire(args, up_port, gw_port, key) if args.wire else []
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)
    report(args, rows, ratios)
    if wire:
        print("\nResponses API through the gateway: passed through vs translated")
        print(
            "| route | mode | conc | direct p50 ms | gateway p50 ms | added p50 ms "
            "| added p99 ms | gateway req/s | errors |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for r in wire:
            print("| " + " | ".join(r) + " |")


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
    lt_port: int,
    key: str,
    gateway: subprocess.Popen[bytes],
    litellm: subprocess.Popen[bytes] | None,
) -> tuple[list[list[str]], list[str]]:
    rows: list[list[str]] = []
    ratios: list[str] = []
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
            if litellm is not None:
                lt = asyncio.run(
                    load(
                        f"http://127.0.0.1:{lt_port}/v1/chat/completions",
                        LITELLM_KEY,
                        n,
                        conc,
                        stream,
                    )
                )
                ratios.append(
                    f"| {mode} | {conc} | {lt.pct(0.5):.2f} | {lt.rps:,.0f} | "
                    f"{via.rps / lt.rps if lt.rps else float('nan'):.1f}x | {lt.errors} |"
                )
    return rows, ratios


def report(args: argparse.Namespace, rows: list[list[str]], ratios: list[str]) -> None:
    print(f"durability={args.durability}, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    print(
        "| mode | conc | direct p50 ms | gateway p50 ms | added p50 ms | added p99 ms "
        "| direct req/s | gateway req/s | gateway RSS MB | errors |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    if ratios:
        print("\n| mode | conc | LiteLLM p50 ms | LiteLLM req/s | hybridgate / LiteLLM | errors |")
        print("|---|---|---|---|---|---|")
        print("\n".join(ratios))
    else:
        print("\n(LiteLLM not measured: pass --litellm-python with litellm[proxy] installed)")


if __name__ == "__main__":
    main()
