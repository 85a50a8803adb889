"""Scale-out figures: workers and stores beside LiteLLM, the shared log, budgets, replicas.

1. Requests/s, added p50/p99 (gateway minus the same upstream called directly) and
   CPU per request (the serving process and its workers; and, where they run on this
   machine, the PostgreSQL server's and Redis's, which share its cores) with 1 and 2
   workers, loaded by wrk where installed (else aiohttp in this process), on
   SQLite and on PostgreSQL + Redis, and LiteLLM's proxy with the same number of
   workers in front of the same upstream, in one run. The full path: scan, policy,
   route, budget reserve/settle (a team budget, and on PostgreSQL a Redis rate limit),
   usage row, receipt; one more PostgreSQL + Redis row with 2 workers and no budget
   (scan, policy, route, usage row, receipt: nothing to hold), which shows what the
   holds cost. SQLite with 2 workers is refused by design (one process owns an
   embedded home), so it is reported as such. LiteLLM is skipped with a note when it
   is not installed (``overhead_peers.py`` says how).
2. Receipts/s through the shared PostgreSQL log (durable queue appends, and how fast the
   elected sequencer merges them into the tree).
3. Budget reserves: the PostgreSQL batch (``hg_budget_reserve_many``) from 1 and 8
   threads and 64 concurrent requests, against an equivalent Redis Lua check-and-hold.
4. Cost against replicas: 1-8 simulated replicas (processes), each reserving, appending
   a receipt and settling on the shared PostgreSQL for a bounded time.

Needs PostgreSQL and Redis (``HYBRIDGATE_TEST_PG`` / ``HYBRIDGATE_TEST_REDIS``, defaults
as the tests); each run uses a private database and Redis key prefix, dropped afterwards.
Two cores shared with other work give lower figures than the machine alone: the CPU
column (milliseconds of the serving processes per request) varies least with that.

    flock /tmp/bench.lock .venv/bin/python benchmarks/scale_bench.py [--requests 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

import overhead
import overhead_peers as peers
from hybridgate.testing.services import admin_dsn, pg_database, redis_url

HG = [sys.executable, "-m", "hybridgate.cli.main"]
CONCURRENCY = 16


def gateway_config(
    home: Path, upstream: int, port: int, dsn: str | None, *, budgets: bool = True
) -> Path:
    """A bench home: one on-prem route; with ``budgets``, a team budget (and on
    PostgreSQL a Redis rate limit) that every request holds and settles."""
    cfg: dict[str, Any] = {
        "home": str(home),
        "server": {"port": port, "log_level": "warning"},
        "ledger": {"checkpoint_interval_s": 60},
        "routes": [
            {
                "name": "bench",
                "provider": "openai_compat",
                "base_url": f"http://127.0.0.1:{upstream}/v1",
                "model": "bench-model",
                "location": "on_prem",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
            }
        ],
        "budgets": [{"scope": "team", "name": "bench", "usd_per_day": 1000}],
    }
    if dsn is not None:
        cfg["store"] = {
            "kind": "postgres",
            "dsn": dsn,
            "redis_url": redis_url(),
            "redis_prefix": f"hgbench:{secrets.token_hex(4)}:",
        }
        cfg["budgets"].append({"scope": "team", "name": "bench", "requests_per_minute": 10**7})
    if not budgets:
        del cfg["budgets"]
    home.mkdir(parents=True, exist_ok=True)
    path = home / "hybridgate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_gateway(path: Path, port: int, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    subprocess.run([*HG, "migrate", "--config", str(path)], check=True, capture_output=True)
    key = subprocess.run(
        [*HG, "keys", "create", "--team", "bench", "--config", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    proc = subprocess.Popen(
        [*HG, "serve", "--config", str(path), "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    overhead.wait_http(f"http://127.0.0.1:{port}/readyz", timeout=90)
    return proc, key


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of a process and every process below it."""
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(d.name)] = int(fields[1])
        cpu[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += cpu.get(p, 0.0)
        todo += [c for c, pp in parents.items() if pp == p]
    return total


@dataclass
class Measured:
    """One load cell: rate, latency percentiles, errors, and the serving CPU per request."""

    rps: float
    p50: float
    p99: float
    errors: int
    cpu_ms: float | None
    #: CPU ms per request of the local PostgreSQL server and Redis (all their processes)
    services_ms: dict[str, float] = field(default_factory=dict)


def measure(url: str, key: str | None, args: argparse.Namespace, pid: int | None) -> Measured:
    """One cell at concurrency 16, with wrk where installed (``--loadgen``), else aiohttp.

    The CPU column is the serving processes' CPU milliseconds per request: with wrk,
    over the timed run only; with aiohttp, the warm-up requests are inside the window.
    """
    services = service_pids() if pid is not None else {}
    if use_wrk(args):
        target = peers.Target("cell", url, {"authorization": f"Bearer {key}"} if key else {})
        body = json.dumps(
            {
                "model": "bench",
                "messages": [{"role": "user", "content": overhead.PROMPT}],
                "max_tokens": 64,
            }
        ).encode()
        peers.run_wrk(target, body, CONCURRENCY, 1.0)  # warm-up
        before = _cpu(pid, services)
        r = peers.run_wrk(target, body, CONCURRENCY, args.seconds, warmup=False)
        return _measured(r.rps, r.p50_ms, r.p99_ms, r.errors, r.requests, pid, services, before)
    before = _cpu(pid, services)
    cell = asyncio.run(overhead.load(url, key, args.requests, CONCURRENCY, False))
    done = len(cell.latencies_ms) + min(50, args.requests)
    return _measured(
        cell.rps, cell.pct(0.5), cell.pct(0.99), cell.errors, done, pid, services, before
    )


def _cpu(pid: int | None, services: dict[str, int]) -> dict[str, float]:
    out = {name: service_cpu_s(spid) for name, spid in services.items()}
    if pid is not None:
        out["gateway"] = tree_cpu_s(pid)
    return out


def _measured(
    rps: float,
    p50: float,
    p99: float,
    errors: int,
    done: int,
    pid: int | None,
    services: dict[str, int],
    before: dict[str, float],
) -> Measured:
    after = _cpu(pid, services)
    per = {k: (after[k] - before[k]) * 1000.0 / done for k in before} if done else {}
    gw = per.pop("gateway", None)
    return Measured(rps, p50, p99, errors, gw, per)


def service_pids() -> dict[str, int]:
    """PIDs of the PostgreSQL server (its postmaster) and Redis, where they run on this machine.

    Their CPU per request is part of what a request costs the machine: the gateway's
    own column alone would hide work moved into the database.
    """
    out: dict[str, int] = {}
    with contextlib.suppress(Exception):
        import psycopg

        with psycopg.connect(admin_dsn(), autocommit=True, connect_timeout=3) as conn:
            row = conn.execute("SELECT pg_backend_pid()").fetchone()
            backend = int(row[0]) if row else 0
            # the backend's parent is the postmaster, the ancestor of every backend
            stat = Path(f"/proc/{backend}/stat").read_text().rsplit(")", 1)[1].split()
            out["PostgreSQL"] = int(stat[1])
    with contextlib.suppress(Exception):
        import redis

        out["Redis"] = int(redis.Redis.from_url(redis_url()).info("server")["process_id"])
    return {k: v for k, v in out.items() if Path(f"/proc/{v}/stat").exists()}


def service_cpu_s(pid: int) -> float:
    """CPU seconds of a server and its children, the ones that ended (backends) included."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    return tree_cpu_s(pid) + reaped


def use_wrk(args: argparse.Namespace) -> bool:
    return bool(args.loadgen == "wrk" or (args.loadgen == "auto" and shutil.which("wrk")))


def _row(name: str, workers: str, cell: Measured, direct: Measured) -> list[str]:
    """One table row; also shown on stderr at once, so a long run shows its progress."""
    row = [
        name,
        workers,
        f"{cell.rps:,.0f}",
        f"{cell.p50 - direct.p50:+.2f}",
        f"{cell.p99 - direct.p99:+.2f}",
        "" if cell.cpu_ms is None else f"{cell.cpu_ms:.2f}",
        *(
            f"{cell.services_ms[k]:.2f}" if k in cell.services_ms else ""
            for k in ("PostgreSQL", "Redis")
        ),
        str(cell.errors),
    ]
    print(" | ".join(row), file=sys.stderr, flush=True)
    return row


def throughput(args: argparse.Namespace, tmp: Path, notes: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    up = overhead.free_port()
    upstream = overhead.start_upstream(up)
    try:
        url = f"http://127.0.0.1:{up}/v1/chat/completions"
        direct = measure(url, None, args, None)
        rows.append(_row("upstream direct", "-", direct, direct))
        cells = [(store, w, True) for store in ("SQLite", "PostgreSQL + Redis") for w in (1, 2)]
        cells += [("PostgreSQL + Redis", 2, False)]  # scan, policy, receipt: no budget held
        for store, workers, budgets in cells:
            name = f"hybridgate, {store}" + ("" if budgets else ", no budget")
            if store == "SQLite" and workers == 2:
                refused = "refused: one process per SQLite home"
                rows.append([name, "2", refused, *[""] * 6])
                continue
            port = overhead.free_port()
            ctx = pg_database() if store != "SQLite" else None
            dsn = ctx.__enter__() if ctx is not None else None
            try:
                home = tmp / f"{store[:2]}-{workers}-{budgets}"
                path = gateway_config(home, up, port, dsn, budgets=budgets)
                proc, key = run_gateway(path, port, workers)
                try:
                    gw_url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    cell = measure(gw_url, key, args, proc.pid)
                finally:
                    stop(proc)
            finally:
                if ctx is not None:
                    ctx.__exit__(None, None, None)
            rows.append(_row(name, str(workers), cell, direct))
        rows += litellm_rows(args, tmp, up, direct, notes)
    finally:
        stop(upstream)
    return rows


def litellm_rows(
    args: argparse.Namespace, tmp: Path, up: int, direct: Measured, notes: list[str]
) -> list[list[str]]:
    py = peers.litellm_python(args.litellm_python)
    if py is None:
        notes.append(
            "LiteLLM not measured: install litellm[proxy] in /tmp/litellm-venv,"
            " or pass --litellm-python"
        )
        return []
    rows: list[list[str]] = []
    for workers in (1, 2):
        port = overhead.free_port()
        try:
            proc, target = peers.start_litellm(
                py, up, up, port, tmp, overhead.wait_http, workers=workers
            )
        except RuntimeError as exc:
            notes.append(f"LiteLLM with {workers} workers not measured: {exc}")
            continue
        try:
            cell = measure(target.url, peers.LITELLM_KEY, args, proc.pid)
        finally:
            stop(proc)
        rows.append(_row("LiteLLM proxy", str(workers), cell, direct))
    return rows


# -- the shared log ------------------------------------------------------------------------
def log_rate(seconds: float, tmp: Path) -> dict[str, float]:
    from hybridgate.config import LedgerConfig
    from hybridgate.ledger import KeyRing
    from hybridgate.ledger.shared import Sequencer, SharedLedger
    from hybridgate.store.postgres import PostgresStore

    with pg_database() as dsn:
        ring = KeyRing.load_or_create(tmp / "logkeys", "bench.local/log")
        store = PostgresStore(dsn)
        store.open(SharedLedger.migrations())
        led = SharedLedger(store, ring, LedgerConfig(origin="bench.local/log"), b"s" * 32)

        async def appends() -> int:
            n = 0
            stop_at = time.perf_counter() + seconds

            async def worker() -> None:
                nonlocal n
                while time.perf_counter() < stop_at:
                    await led.append(led.new_receipt_id(), {"kind": "request", "n": n})
                    n += 1

            await asyncio.gather(*(worker() for _ in range(64)))
            return n

        t0 = time.perf_counter()
        queued = asyncio.run(appends())
        q_rate = queued / (time.perf_counter() - t0)
        seq = Sequencer(store, ring, "bench.local/log", max_batch=5000)
        t0 = time.perf_counter()
        merged = 0
        while merged < queued:
            merged += seq.step()
        m_rate = merged / (time.perf_counter() - t0)
        seq._drop()
        store.close()
    return {"queued_per_s": q_rate, "merged_per_s": m_rate, "receipts": float(queued)}


# -- budget reserve: PostgreSQL conditional UPDATE vs Redis Lua ---------------------------------
_LUA_RESERVE = """
for i = 1, #KEYS do
  local v = tonumber(redis.call('HGET', KEYS[i], 'spent') or '0')
      + tonumber(redis.call('HGET', KEYS[i], 'held') or '0')
  if v + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end
end
for i = 1, #KEYS do redis.call('HINCRBY', KEYS[i], 'held', ARGV[1]) end
return 1
"""


def reserves(seconds: float) -> list[list[str]]:
    import redis

    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.config import BudgetConfig
    from hybridgate.store.postgres import PostgresStore

    rows: list[list[str]] = []
    with pg_database() as dsn:
        store = PostgresStore(dsn, pool_size=8)
        store.open(SharedBudgetManager.migrations())
        bm = SharedBudgetManager(store, [BudgetConfig(scope="team", name="t", usd_per_day=10**9)])
        r = redis.Redis.from_url(redis_url())
        script = r.register_script(_LUA_RESERVE)
        prefix = f"hgbench:{secrets.token_hex(4)}:"
        keys = [f"{prefix}team:t:day", f"{prefix}team:t:month"]
        counts = {"pg": 0, "redis": 0}
        for threads in (1, 8):
            counts.update(pg=0, redis=0)

            def pg_worker(stop_at: float) -> None:
                while time.perf_counter() < stop_at:
                    res = bm.reserve(key_id=None, team="t", usd=Decimal("0.001"), tokens=10)
                    bm.release(res)
                    counts["pg"] += 1

            def redis_worker(stop_at: float) -> None:
                while time.perf_counter() < stop_at:
                    script(keys=keys, args=[1000, 10**15])
                    counts["redis"] += 1

            for fn in (pg_worker, redis_worker):
                stop_at = time.perf_counter() + seconds
                ts = [threading.Thread(target=fn, args=(stop_at,)) for _ in range(threads)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
            rows.append(
                [
                    f"{threads} thread{'s' if threads > 1 else ''}",
                    f"{counts['pg'] / seconds:,.0f}",
                    f"{counts['redis'] / seconds:,.0f}",
                ]
            )

        async def concurrent(stop_at: float) -> int:
            n = 0

            async def one() -> None:
                nonlocal n
                while time.perf_counter() < stop_at:
                    res = await bm.areserve(key_id=None, team="t", usd=Decimal("0.001"), tokens=10)
                    bm.release(res)
                    n += 1

            await asyncio.gather(*(one() for _ in range(64)))
            return n

        done = asyncio.run(concurrent(time.perf_counter() + seconds))
        rows.append(["64 concurrent (one event loop)", f"{done / seconds:,.0f}", ""])
        bm.close()
        r.delete(*keys)
        store.close()
    return rows


# -- replicas ------------------------------------------------------------------------------
def _replica(dsn: str, home: str, seconds: float, out: Any) -> None:
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.config import BudgetConfig, LedgerConfig
    from hybridgate.ledger import KeyRing
    from hybridgate.ledger.shared import SharedLedger
    from hybridgate.store.postgres import PostgresStore

    store = PostgresStore(dsn, pool_size=4)
    store.open([])
    ring = KeyRing.load(Path(home) / "keys")
    led = SharedLedger(store, ring, LedgerConfig(origin="bench.local/log"), b"s" * 32)
    bm = SharedBudgetManager(store, [BudgetConfig(scope="team", name="t", usd_per_day=10**9)])
    bm.load()

    async def run() -> int:
        await led.start()
        n = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < stop_at:
                res = await bm.areserve(key_id=None, team="t", usd=Decimal("0.001"), tokens=10)
                await led.append(led.new_receipt_id(), {"kind": "request"})
                bm.settle(res, usd=Decimal("0.0005"), tokens=5)
                n += 1

        await asyncio.gather(*(worker() for _ in range(16)))
        await led.aclose()
        return n

    out.put(asyncio.run(run()))
    bm.close()
    store.close()


def replicas(seconds: float, tmp: Path, max_n: int) -> list[list[str]]:
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.ledger import KeyRing
    from hybridgate.ledger.shared import SharedLedger
    from hybridgate.store.postgres import PostgresStore

    rows: list[list[str]] = []
    KeyRing.load_or_create(tmp / "rep" / "keys", "bench.local/log")
    ctx = mp.get_context("spawn")
    for n in (1, 2, 4, max_n):
        with pg_database() as dsn:
            s = PostgresStore(dsn)
            s.open([*SharedLedger.migrations(), *SharedBudgetManager.migrations()])
            s.close()
            q = ctx.Queue()
            ps = [
                ctx.Process(target=_replica, args=(dsn, str(tmp / "rep"), seconds, q))
                for _ in range(n)
            ]
            for p in ps:
                p.start()
            total = sum(q.get(timeout=seconds + 120) for _ in ps)
            for p in ps:
                p.join(60)
        rows.append([str(n), f"{total / seconds:,.0f}", f"{total / seconds / n:,.0f}"])
    return rows


def table(head: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--requests", type=int, default=3000, help="per throughput cell (c=16, aiohttp)"
    )
    ap.add_argument(
        "--loadgen",
        choices=["auto", "wrk", "python"],
        default="auto",
        help="load generator for the throughput cells: wrk (C, cheap) when installed, else"
        " aiohttp in this process (its CPU shares the machine with the gateway)",
    )
    ap.add_argument("--seconds", type=float, default=3.0, help="per timed cell")
    ap.add_argument("--max-replicas", type=int, default=8, choices=range(2, 9))
    ap.add_argument("--litellm-python", default=None, help="a python with litellm[proxy]")
    ap.add_argument("--only", choices=["throughput", "log", "reserve", "replicas"], default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hg-scale-"))
    notes: list[str] = []
    load = os.getloadavg()[0]
    print(f"# scale_bench on {os.cpu_count()} CPUs (load average {load:.1f} at the start)")
    if args.only in (None, "throughput"):
        gen = "wrk" if use_wrk(args) else "aiohttp"
        print(
            f"\n## Requests/s, added latency (ms), concurrency {CONCURRENCY}, non-streaming"
            f" (load from {gen})\n"
        )
        head = ["gateway", "workers", "requests/s", "added p50", "added p99"]
        head += ["gateway CPU ms/request", "PostgreSQL CPU", "Redis CPU", "errors"]
        print(table(head, throughput(args, tmp, notes)))
    if args.only in (None, "log"):
        r = log_rate(args.seconds, tmp)
        print(
            f"\n## Shared log\n\n{r['receipts']:,.0f} receipts: {r['queued_per_s']:,.0f}/s"
            f" queued durably (64 concurrent appends), {r['merged_per_s']:,.0f}/s merged by"
            " the sequencer"
        )
    if args.only in (None, "reserve"):
        print("\n## Budget reserve+release per second\n")
        head = ["callers", "PostgreSQL batch", "Redis Lua"]
        print(table(head, reserves(args.seconds)))
    if args.only in (None, "replicas"):
        print("\n## Simulated replicas (reserve, append, settle), requests/s\n")
        print(
            table(
                ["replicas", "total", "per replica"], replicas(args.seconds, tmp, args.max_replicas)
            )
        )
    for note in notes:
        print(f"\n({note})")


if __name__ == "__main__":
    main()
