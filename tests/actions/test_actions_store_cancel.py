"""The gate's durability rests on the shared store surviving cancelled waiters.

A client that hangs up cancels the request's task and with it any awaited
store write; the writer thread must skip or finish that job and keep
serving every later write (nonce burns, receipt appends).
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from hybridgate.store.sqlite import Migration, SQLiteStore


async def test_cancelled_write_does_not_stop_the_writer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db", commit_window_s=0.05)
    store.open([Migration("t", 1, "CREATE TABLE t (x INTEGER)")])
    try:

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO t VALUES (1)")

        for _ in range(3):
            waiter = asyncio.ensure_future(store.write(insert))
            await asyncio.sleep(0)
            waiter.cancel()
        await asyncio.sleep(0.15)
        await asyncio.wait_for(store.write(insert), 5)
        assert store.query("SELECT COUNT(*) FROM t")[0][0] >= 1
    finally:
        store.close()
