"""The floor under hybridgate's added latency at concurrency 1: what the stack costs alone.

Three loopback servers in front of the same upstream (``python -m hybridgate.testing``),
each loaded with wrk (one thread, one connection) and compared with the upstream called
directly:

* **floor**: a Starlette route served exactly as ``hybridgate serve`` serves the gateway
  (uvicorn with uvloop and httptools, the gateway's HTTP protocol class, the 0.5 ms GIL
  switch interval) that reads the body and forwards it with the gateway's lean upstream
  client (``providers/_lean.py``), answering with the upstream's bytes: no JSON parse,
  no scan, no policy, no receipt. No Python gateway on this stack adds less;
* **floor + durable write**: the same, and before answering it awaits one write through
  the store's writer thread (``SQLiteStore``: one row of a receipt's size) with
  ``power_loss`` durability, as the gateway awaits its receipt: the thread round trip
  and the synced commit;
* **hybridgate**: ``hybridgate serve`` with the default policy (scan, policy, routing,
  accounting, a signed receipt appended durably), as ``overhead.py`` runs it; and again
  with ``durability: process_crash`` (the commit is not synced: it survives a killed
  process, not a power cut).

Then, in this process, the parts of a receipt's cost that the answer waits for: a
round trip from the event loop to a thread and back, a SQLite commit with
``synchronous=FULL`` (``power_loss``) and ``NORMAL`` (``process_crash``), the receipt's
RFC 8785 canonical form and its Ed25519 signature.

    .venv/bin/python benchmarks/floor_bench.py [--seconds 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import queue
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import overhead as ov
import overhead_peers as peers

PROMPT_BODY = [{"role": "user", "content": ov.PROMPT}]


# -- the floor server (run as a subprocess of this script) ----------------------------


def floor_app(upstream: str, durable: Path | None) -> Any:
    """The Starlette app of the floor server: read, forward, answer the upstream's bytes."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from hybridgate.providers._lean import LeanPool, request_head
    from hybridgate.store.sqlite import SQLiteStore

    head, host, port = request_head(upstream, {})
    state: dict[str, Any] = {}
    store = None
    if durable is not None:
        store = SQLiteStore(durable / "floor.db", durability="power_loss")
        store.open()
        store.write_sync(lambda conn: conn.execute("CREATE TABLE rows (n INTEGER, data BLOB)"))
    row = os.urandom(700)  # about a receipt's bytes

    async def forward(request: Request) -> Response:
        pool = state.get("pool")
        if pool is None:
            pool = state["pool"] = LeanPool()
        body = await request.body()
        answer = await pool.post(head, host, port, body, 5.0, 1 << 24)
        if store is not None:
            await store.write(lambda conn: conn.execute("INSERT INTO rows VALUES (1, ?)", (row,)))
        return Response(answer.body, answer.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/chat/completions", forward, methods=["POST"])])


def serve_floor(port: int, upstream: str, durable: str | None) -> None:
    import uvicorn

    from hybridgate.server import short_gil_switch, uvicorn_config

    short_gil_switch()
    app = floor_app(upstream, Path(durable) if durable else None)
    uvicorn.Server(uvicorn_config(app, "127.0.0.1", port, "warning")).run()


def start_floor(port: int, upstream_port: int, durable: Path | None) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        __file__,
        "--serve-floor",
        str(port),
        f"http://127.0.0.1:{upstream_port}/v1/chat/completions",
    ]
    if durable is not None:
        cmd.append(str(durable))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ov.wait_http(f"http://127.0.0.1:{port}/v1/chat/completions")
    return proc


# -- the in-process parts --------------------------------------------------------------


def thread_round_trip_us(n: int = 5000) -> float:
    """Event loop -> a thread taking jobs from a queue -> the loop, wall microseconds
    (with the GIL switch interval ``hybridgate serve`` sets)."""
    from hybridgate.server import short_gil_switch

    short_gil_switch()
    jobs: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]] | None]
    jobs = queue.SimpleQueue()

    def worker() -> None:
        while (item := jobs.get()) is not None:
            fn, fut = item
            fut.set_result(fn())

    th = threading.Thread(target=worker)
    th.start()

    async def run() -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
            jobs.put((lambda: None, fut))
            await asyncio.wrap_future(fut)
        return (time.perf_counter() - t0) / n * 1e6

    try:
        import uvloop

        return uvloop.run(run())
    finally:
        jobs.put(None)
        th.join()


def commit_us(sync: str, n: int = 3000) -> float:
    """p50 of one small transaction (two rows) committed in WAL mode, microseconds."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "c.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={sync}")
        conn.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b BLOB)")
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO t (b) VALUES (?)", (os.urandom(600),))
            conn.execute("INSERT INTO t (b) VALUES (?)", (os.urandom(300),))
            conn.execute("COMMIT")
            times.append(time.perf_counter() - t0)
        conn.close()
    return statistics.median(times[n // 5 :]) * 1e6


def per_call_us(fn: Callable[[], Any], n: int = 5000) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def receipt_parts() -> tuple[float, float]:
    """Microseconds to canonicalize and to sign a receipt like the gateway's."""
    import ledger_bench
    from hybridgate.ledger.canonical import canonical_json
    from hybridgate.ledger.keys import SigningKey

    class _Commit:
        def commit(self, data: bytes) -> str:
            return data.hex().ljust(64, "0")[:64]

    fields = ledger_bench.fields(_Commit(), 7)  # type: ignore[arg-type]
    fields.update(receipt_id="rcpt_0000000000000000", log_index=12345, time_ns=str(time.time_ns()))
    key = SigningKey.generate("bench")
    data = canonical_json(fields)
    return per_call_us(lambda: canonical_json(fields)), per_call_us(lambda: key.sign(data))


# -- main --------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--seconds", type=float, default=8.0, help="per wrk cell")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of all cells, interleaved")
    ap.add_argument("--serve-floor", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_floor:
        port, upstream, *durable = args.serve_floor
        serve_floor(int(port), upstream, durable[0] if durable else None)
        return
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    tmp = Path(tempfile.mkdtemp(prefix="hg-floor-"))
    up, fl, fd, gw, gc = (ov.free_port() for _ in range(5))
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[peers.Result]] = {}
    try:
        procs.append(ov.start_upstream(up))
        procs.append(start_floor(fl, up, None))
        (tmp / "durable").mkdir()
        procs.append(start_floor(fd, up, tmp / "durable"))
        gateway, key = ov.start_gateway(tmp / "home", up, gw, "power_loss")
        procs.append(gateway)
        crash, crash_key = ov.start_gateway(tmp / "home-crash", up, gc, "process_crash")
        procs.append(crash)
        targets = [
            peers.Target("direct", f"http://127.0.0.1:{up}/v1/chat/completions"),
            peers.Target("floor", f"http://127.0.0.1:{fl}/v1/chat/completions"),
            peers.Target("floor + durable write", f"http://127.0.0.1:{fd}/v1/chat/completions"),
            peers.Target(
                "hybridgate",
                f"http://127.0.0.1:{gw}/v1/chat/completions",
                {"authorization": f"Bearer {key}"},
            ),
            peers.Target(
                "hybridgate, durability: process_crash",
                f"http://127.0.0.1:{gc}/v1/chat/completions",
                {"authorization": f"Bearer {crash_key}"},
            ),
        ]
        for _ in range(args.rounds):
            for t in targets:
                body = peers._body(t, PROMPT_BODY, max_tokens=64)
                results.setdefault(t.name, []).append(peers.run_wrk(t, body, 1, args.seconds))
    finally:
        for p in procs:
            p.terminate()
            p.wait(15)

    print(
        f"\nConcurrency 1, wrk one thread and one connection, {args.seconds:g} s a cell, "
        f"{args.rounds} rounds (median of the rounds' p50):"
    )
    print("| server | req/s | p50 ms | added p50 ms | errors |")
    print("|---|---|---|---|---|")
    direct = statistics.median(r.p50_ms for r in results["direct"])
    for name, rs in results.items():
        p50 = statistics.median(r.p50_ms for r in rs)
        rps = statistics.median(r.rps for r in rs)
        added = "–" if name == "direct" else f"{p50 - direct:+.3f}"
        errors = sum(r.errors for r in rs)
        print(f"| {name} | {rps:,.0f} | {p50:.3f} | {added} | {errors} |")

    rt = thread_round_trip_us()
    full, normal = commit_us("FULL"), commit_us("NORMAL")
    canon, sign = receipt_parts()
    print("\nWhat the answer waits for besides the stack (this process, microseconds):")
    print("| part | µs |")
    print("|---|---|")
    print(f"| event loop → thread → event loop (uvloop) | {rt:.0f} |")
    print(f"| SQLite commit, synchronous=FULL (power_loss) | {full:.0f} |")
    print(f"| SQLite commit, synchronous=NORMAL (process_crash) | {normal:.0f} |")
    print(f"| receipt canonical form (RFC 8785) | {canon:.1f} |")
    print(f"| receipt signature (Ed25519) | {sign:.1f} |")


if __name__ == "__main__":
    main()
