"""What one receipt commit writes: WAL pages per request, by table, and what a page costs.

At concurrency 1 the answer waits for its receipt's commit (``durability:
power_loss``: the WAL is synced), and a commit writes one 4 KB WAL frame for every
page it changed: one at least for each B-tree a request adds a row to (the
receipt's entry and its id index, the Merkle nodes, the usage row and its
indexes, the spend totals). This script:

1. runs ``hybridgate serve`` as ``overhead.py`` does; for each cell (short chats one
   at a time, then at concurrency 16) it empties the WAL (a ``TRUNCATE`` checkpoint
   from this process), sends the requests, copies the database and its WAL while the
   gateway runs and reads the WAL's frames (sqlite.org/fileformat2.html#walformat):
   how many frames each commit wrote, and which table or index each page belongs to
   (``dbstat``);
2. times, in this process, a ``synchronous=FULL`` commit that adds a row to 1, 3, 6
   and 12 tables (interleaved rounds): what each further page costs the wait.

    .venv/bin/python benchmarks/commit_pages.py [--requests 40]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import sqlite3
import statistics
import struct
import tempfile
import time
from pathlib import Path

import overhead as ov

WAL_HEADER = 32
FRAME_HEADER = 24


def wal_commits(wal: bytes) -> list[list[int]]:
    """Page numbers written by each commit in the WAL, oldest first (current salt only)."""
    if len(wal) < WAL_HEADER:
        return []
    page_size = struct.unpack(">I", wal[8:12])[0]
    salt = wal[16:24]
    commits: list[list[int]] = []
    pages: list[int] = []
    off = WAL_HEADER
    while off + FRAME_HEADER + page_size <= len(wal):
        page, db_size = struct.unpack(">II", wal[off : off + 8])
        if wal[off + 8 : off + 16] != salt:  # a frame left from before the WAL restarted
            break
        pages.append(page)
        if db_size:  # the commit frame
            commits.append(pages)
            pages = []
        off += FRAME_HEADER + page_size
    return commits


def empty_wal(db: Path) -> None:
    """Checkpoint every frame into the database and truncate the WAL (retried while busy)."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        for _ in range(100):
            busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
            if not busy:
                return
            time.sleep(0.05)
    finally:
        conn.close()
    raise SystemExit("could not checkpoint the WAL")


def snapshot(db: Path, into: Path) -> tuple[list[list[int]], dict[int, str]]:
    """The WAL's commits and each page's table, from a copy taken while the gateway runs."""
    shutil.copy(db.with_name(db.name + "-wal"), into.with_name(into.name + "-wal"))
    shutil.copy(db, into)
    commits = wal_commits(into.with_name(into.name + "-wal").read_bytes())
    conn = sqlite3.connect(into)
    try:
        names = {int(p): str(n) for p, n in conn.execute("SELECT pageno, name FROM dbstat")}
    finally:
        conn.close()
    return commits, names


async def send(url: str, key: str, n: int, conc: int) -> int:
    """Send ``n`` short chats (after ``load``'s warm-up); how many were sent in all."""
    cell = await ov.load(url, key, n, conc, False)
    if cell.errors:
        raise SystemExit(f"{cell.errors} requests failed")
    return n + min(50, n)


def by_table(commits: list[list[int]], names: dict[int, str], requests: int) -> dict[str, float]:
    counts: collections.Counter[str] = collections.Counter()
    for pages in commits:
        for p in pages:
            counts[names.get(p, "(freed or new page)")] += 1
    return {name: c / requests for name, c in counts.most_common()}


def measure_gateway(requests: int, durability: str) -> None:
    work = Path(tempfile.mkdtemp(prefix="hg-pages-"))
    up_port, gw_port = ov.free_port(), ov.free_port()
    upstream = ov.start_upstream(up_port)
    gateway, key = ov.start_gateway(work / "home", up_port, gw_port, durability)
    url = f"http://127.0.0.1:{gw_port}/v1/chat/completions"
    db = work / "home" / "gateway.db"
    try:
        asyncio.run(send(url, key, 20, 1))  # warm: keys cached, tables created
        rows: list[tuple[int, int, int, int, dict[str, float]]] = []
        for conc in (1, 16):
            time.sleep(0.3)  # rows deferred without a receipt after them flush within 50 ms
            empty_wal(db)
            sent = asyncio.run(send(url, key, requests, conc))
            time.sleep(0.3)
            written, names = snapshot(db, work / "copy.db")
            frames = sum(len(c) for c in written)
            if frames >= 1000:  # SQLite's automatic checkpoint may have restarted the WAL
                raise SystemExit("the cell filled the WAL past a checkpoint: use fewer --requests")
            rows.append((conc, sent, len(written), frames, by_table(written, names, sent)))
    finally:
        gateway.terminate()
        upstream.terminate()
        gateway.wait(10)
        upstream.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nWAL frames written per request (short chats, {durability}):\n")
    print("| concurrency | requests | commits | frames | frames per request | frames per commit |")
    print("|---|---|---|---|---|---|")
    for conc, sent, commits, frames, _ in rows:
        print(
            f"| {conc} | {sent} | {commits} | {frames} | {frames / sent:.2f} "
            f"| {frames / max(commits, 1):.2f} |"
        )
    one, many = rows[0][4], rows[1][4]
    print("\n| table or index | pages per request, c=1 | pages per request, c=16 |")
    print("|---|---|---|")
    for t in sorted({*one, *many}, key=lambda t: -one.get(t, 0)):
        print(f"| {t} | {one.get(t, 0):.2f} | {many.get(t, 0):.2f} |")


def commit_cost(rounds: int = 5, per_round: int = 150) -> None:
    """Median µs of a synced commit adding one row to each of k tables."""
    work = Path(tempfile.mkdtemp(prefix="hg-pages-cost-"))
    conn = sqlite3.connect(work / "c.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for k in range(12):
            conn.execute(f"CREATE TABLE t{k} (id INTEGER PRIMARY KEY, v BLOB)")
        times: dict[int, list[float]] = {k: [] for k in (1, 3, 6, 12)}
        for _ in range(rounds):
            for k in times:
                ts = []
                for _ in range(per_round):
                    t = time.perf_counter()
                    conn.execute("BEGIN IMMEDIATE")
                    for j in range(k):
                        conn.execute(f"INSERT INTO t{j} (v) VALUES (?)", (os.urandom(200),))
                    conn.execute("COMMIT")
                    ts.append(time.perf_counter() - t)
                times[k].append(statistics.median(ts) * 1e6)
    finally:
        conn.close()
        shutil.rmtree(work, ignore_errors=True)
    print("\nA synced commit (`synchronous=FULL`, WAL) that adds a row to k tables, in-process:\n")
    print("| tables (pages) | median µs per commit | medians of the rounds |")
    print("|---|---|---|")
    for k, med in times.items():
        print(f"| {k} | {statistics.median(med):.0f} | {', '.join(f'{m:.0f}' for m in med)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="per cell (plus as many warm-up)")
    ap.add_argument("--durability", default="power_loss", choices=["power_loss", "process_crash"])
    args = ap.parse_args()
    measure_gateway(args.requests, args.durability)
    commit_cost()


if __name__ == "__main__":
    main()
