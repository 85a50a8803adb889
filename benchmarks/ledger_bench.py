"""Receipt ledger benchmark: append throughput, whole-log verification time, proof sizes.

Everything is generated into a temporary folder (never the repo) through the real
write path: ``Ledger.append`` on a ``SQLiteStore`` with the default group-commit
window and ``durability="power_loss"`` (fsync per batch). Receipts carry the
pipeline's fields. The append phase is pinned to one CPU core.

    .venv/bin/python benchmarks/ledger_bench.py                 # 1,000,000 receipts
    .venv/bin/python benchmarks/ledger_bench.py --count 100000 --workers 1,2

Anchors: Trillian on MySQL about 400-500 entries/s; Tessera on POSIX about
10,000/s using 7 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from hybridgate.config import LedgerConfig
from hybridgate.ledger import KeyRing, Ledger, verify_bundle, verify_log
from hybridgate.ledger.canonical import b64decode
from hybridgate.ledger.merkle import verify_consistency
from hybridgate.ledger.note import parse_checkpoint
from hybridgate.store.sqlite import SQLiteStore

ORIGIN = "bench.hybridgate.local/receipts"


def fields(ledger: Ledger, n: int) -> dict[str, Any]:
    return {
        "kind": "request",
        "api": "openai",
        "request_id": f"req_{n:024x}",
        "key_id": "k7f3a9",
        "team": "payments",
        "request_commitment": ledger.commit(b"request %d" % n),
        "response_commitment": ledger.commit(b"response %d" % n),
        "data_classes": ["contact", "financial"] if n % 3 == 0 else [],
        "action": "redact" if n % 3 == 0 else "allow",
        "policy_hash": "9f" * 32,
        "route": "llama-onprem" if n % 2 else "gpt-4o-mini",
        "provider": "vllm" if n % 2 else "openai",
        "model": "llama-3.1-8b-instruct" if n % 2 else "gpt-4o-mini",
        "location": "on_prem" if n % 2 else "external",
        "tokens_in": 200 + n % 700,
        "tokens_out": 50 + n % 300,
        "cost_usd": f"0.{n % 100000:06d}",
        "latency_ms": 120.5 + n % 50,
        "outcome": "answered",
        "status": 200,
    }


async def fill(ledger: Ledger, count: int, in_flight: int, progress: bool) -> float:
    """``in_flight`` clients appending back to back, like concurrent requests."""
    start = ledger.size()
    counter = iter(range(start, start + count))
    t0 = time.perf_counter()

    async def client() -> None:
        for n in counter:
            await ledger.append(ledger.new_receipt_id(), fields(ledger, n))
            done = n - start + 1
            if progress and done % 100_000 == 0:
                rate = done / (time.perf_counter() - t0)
                print(f"  appended {done:,} ({rate:,.0f}/s)", file=sys.stderr)

    await asyncio.gather(*(client() for _ in range(in_flight)))
    return time.perf_counter() - t0


def build(root: Path, count: int, in_flight: int, progress: bool) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to append ``count`` receipts."""
    store = SQLiteStore(root / "gateway.db", commit_window_s=0.002, max_batch=512)
    store.open(Ledger.migrations())
    ring = KeyRing.load_or_create(root / "keys", ORIGIN)
    ledger = Ledger(store, ring, LedgerConfig(origin=ORIGIN), os.urandom(32))
    cpu0 = time.process_time()
    try:
        seconds = asyncio.run(fill(ledger, count, in_flight, progress))
        cpu = time.process_time() - cpu0
        ledger.checkpoint()
    finally:
        store.close()
    return seconds, cpu


def proof_sizes(root: Path) -> dict[str, Any]:
    store = SQLiteStore(root / "gateway.db")
    store.open(Ledger.migrations())
    ring = KeyRing.load(root / "keys")
    ledger = Ledger(store, ring, LedgerConfig(origin=ORIGIN), os.urandom(32))
    try:
        n = ledger.size()
        mid = store.query("SELECT receipt_id FROM ledger_entries WHERE idx = ?", (n // 2,))[0][0]
        t0 = time.perf_counter()
        reps = 200
        for _ in range(reps):
            bundle = ledger.bundle(mid)
        bundle_us = (time.perf_counter() - t0) / reps * 1e6
        assert bundle is not None and verify_bundle(bundle, ring.verifiers()) is None
        cons = ledger.consistency(n // 2 + 1, n)
        first = n // 2 + 1
        verify_consistency(
            first,
            n,
            b64decode(cons["first_root"]),
            parse_checkpoint(ledger.checkpoint()).root,
            [b64decode(p) for p in cons["proof"]],
        )
        return {
            "entries": n,
            "inclusion_hashes": len(bundle["inclusion_proof"]),
            "inclusion_bytes": 32 * len(bundle["inclusion_proof"]),
            "consistency_hashes": len(cons["proof"]),
            "consistency_bytes": 32 * len(cons["proof"]),
            "bundle_json_bytes": len(json.dumps(bundle, separators=(",", ":"))),
            "bundle_us": bundle_us,
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=1_000_000, help="receipts in the big log")
    ap.add_argument("--small", type=int, default=1_000, help="receipts in the small log")
    ap.add_argument("--workers", default=f"1,{os.cpu_count() or 1}", help="verify with these")
    ap.add_argument("--in-flight", type=int, default=1024, help="concurrent appends")
    ap.add_argument("--no-pin", action="store_true", help="do not pin appends to one core")
    args = ap.parse_args()
    console = Console()
    all_cpus = os.sched_getaffinity(0)
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="hg-ledger-bench-") as tmp:
        small, big = Path(tmp) / "small", Path(tmp) / "big"
        if not args.no_pin:
            os.sched_setaffinity(0, {min(all_cpus)})
        build(small, args.small, args.in_flight, False)
        console.print(f"appending {args.count:,} signed receipts (one core) ...")
        seconds, cpu = build(big, args.count, args.in_flight, True)
        os.sched_setaffinity(0, all_cpus)
        rows.append(
            (
                "signed receipts appended / s (1 core, fsync per batch)",
                f"{args.count / seconds:,.0f}",
            )
        )
        rows.append(
            ("  same, per CPU-second used (contention-free estimate)", f"{args.count / cpu:,.0f}")
        )
        db_mb = (big / "gateway.db").stat().st_size / 1e6
        rows.append((f"database size at {args.count:,} receipts", f"{db_mb:,.0f} MB"))
        keys = KeyRing.load(big / "keys").verifiers()
        for w in [int(x) for x in args.workers.split(",") if x.strip()]:
            console.print(f"verifying {args.count:,} receipts with {w} process(es) ...")
            report = verify_log(big / "gateway.db", keys, workers=w)
            if not report.ok:
                raise SystemExit(f"verification failed: {report.error}")
            rows.append(
                (
                    f"verify {args.count:,} receipts, every signature, {w} process(es)",
                    f"{report.seconds:.1f} s",
                )
            )
        report = verify_log(big / "gateway.db", keys, workers=1, signatures="uncovered")
        if not report.ok:
            raise SystemExit(f"verification failed: {report.error}")
        rows.append(
            (
                f"verify {args.count:,} receipts against the signed root, 1 process",
                f"{report.seconds:.1f} s",
            )
        )
        for label, root in ((f"{args.small:,}", small), (f"{args.count:,}", big)):
            p = proof_sizes(root)
            rows.append(
                (
                    f"inclusion proof at {label}",
                    f"{p['inclusion_hashes']} hashes = {p['inclusion_bytes']} B"
                    f" (bundle {p['bundle_json_bytes']:,} B JSON,"
                    f" built in {p['bundle_us']:.0f} µs)",
                )
            )
            rows.append(
                (
                    f"consistency proof at {label}",
                    f"{p['consistency_hashes']} hashes = {p['consistency_bytes']} B",
                )
            )
    table = Table(title="hybridgate receipt ledger")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)
    print("\n| measure | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    main()
