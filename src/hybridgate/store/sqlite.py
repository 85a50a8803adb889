"""Embedded SQLite store: one file, WAL, versioned migrations per component, and
one writer thread that group-commits every component's writes together
(:mod:`hybridgate.store.writer`).

Reads use short-lived per-thread connections (WAL readers never block the writer).

Migrations run inside one ``BEGIN IMMEDIATE`` transaction that first reads which
steps are applied: two processes opening a fresh file at once serialize on the
write lock, and the second sees the first one's steps as applied instead of
re-running them (``table ... already exists``).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from hybridgate.errors import ServiceUnavailable
from hybridgate.store.base import Dialect, Migration, StoreClosed, WriteFn, split_sql
from hybridgate.store.writer import DEFER_FLUSH_S, GroupCommitWriter

__all__ = [
    "DEFER_FLUSH_S",
    "Durability",
    "Migration",
    "SQLiteStore",
    "StoreClosed",
    "WriteFn",
]

log = logging.getLogger("hybridgate.store")

Durability = Literal["power_loss", "process_crash"]


class SQLiteStore(GroupCommitWriter):
    """The embedded default store.

    ``durability="power_loss"`` syncs the WAL on every commit (``synchronous=FULL``);
    ``"process_crash"`` uses ``synchronous=NORMAL``: a commit survives a killed
    process but may be lost with the machine's power.
    """

    dialect: Dialect = "sqlite"
    begin_sql = "BEGIN IMMEDIATE"
    db_errors = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Durability = "power_loss",
        commit_window_s: float = 0.0,
        max_batch: int = 512,
    ) -> None:
        super().__init__(commit_window_s=commit_window_s, max_batch=max_batch)
        self.path = Path(path)
        self.free_space_path = str(self.path.parent)
        self.durability = durability
        self._local = threading.local()
        self._all_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------
    def open(self, migrations: Sequence[Migration] = ()) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        try:
            self._migrate(conn, migrations)
        finally:
            conn.close()
        self._start_writer()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_writer()
        with self._conns_lock:
            for c in self._all_conns:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._all_conns.clear()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "PRAGMA synchronous=" + ("FULL" if self.durability == "power_loss" else "NORMAL")
        )
        conn.execute("PRAGMA foreign_keys=ON")
        return conn

    def _writer_connect(self) -> sqlite3.Connection:
        return self._connect()

    @staticmethod
    def _migrate(conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
        """Apply what is missing, all in one write transaction (see the module docstring)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version INTEGER NOT NULL, applied_ns INTEGER NOT NULL,"
                " PRIMARY KEY (component, version))"
            )
            applied = {
                (c, v) for c, v in conn.execute("SELECT component, version FROM schema_migrations")
            }
            for m in sorted(migrations, key=lambda m: (m.component, m.version)):
                if (m.component, m.version) in applied:
                    continue
                for stmt in split_sql(m.for_dialect("sqlite")):
                    conn.execute(stmt)
                conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (m.component, m.version, time.time_ns()),
                )
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise

    # -- reads -----------------------------------------------------------
    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A connection for reads on the calling thread (one per thread, reused)."""
        if self._closed:
            raise StoreClosed("store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._conns_lock:
                self._all_conns.append(conn)
        try:
            yield conn
        except sqlite3.Error as exc:
            raise ServiceUnavailable(f"store read failed: {exc}", code="store_unavailable") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.reader() as conn:
            return list(conn.execute(sql, params))
