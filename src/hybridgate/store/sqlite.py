"""Embedded SQLite store: one file, WAL, versioned migrations per component, and
one writer thread that group-commits every component's writes together.

Why one writer: SQLite allows one writer at a time. Giving the ledger, usage
log, budgets and keys each their own connection makes them queue on the file
lock and pay one fsync each. Instead every write is a small job handed to a
single thread that runs all jobs waiting at that moment in one transaction and
one fsync, then resolves each job's future. A job is reported done only after
its transaction committed, so "done" means durable.

Reads use short-lived per-thread connections (WAL readers never block the writer).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from hybridgate.errors import ServiceUnavailable

log = logging.getLogger("hybridgate.store")

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], Any]
Durability = Literal["power_loss", "process_crash"]

#: How soon a deferred write commits when no other write comes along to carry it.
DEFER_FLUSH_S = 0.05


@dataclass(frozen=True)
class Migration:
    """One schema step of one component. Versions are per component, applied in order."""

    component: str
    version: int
    sql: str


class StoreClosed(ServiceUnavailable):
    code = "store_unavailable"


class SQLiteStore:
    """The embedded default store.

    ``durability="power_loss"`` syncs the WAL on every commit (``synchronous=FULL``);
    ``"process_crash"`` uses ``synchronous=NORMAL``: a commit survives a killed
    process but may be lost with the machine's power.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        durability: Durability = "power_loss",
        commit_window_s: float = 0.0,
        max_batch: int = 512,
    ) -> None:
        self.path = Path(path)
        self.durability = durability
        self.commit_window_s = commit_window_s
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[tuple[WriteFn, Future[Any]] | None] = queue.SimpleQueue()
        self._deferred: collections.deque[tuple[WriteFn, Future[Any]]] = collections.deque()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._closed = False
        self._failed: BaseException | None = None
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
        self._thread = threading.Thread(
            target=self._writer_loop, name="hybridgate-writer", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)
        with self._conns_lock:
            for c in self._all_conns:
                with contextlib.suppress(sqlite3.Error):
                    c.close()
            self._all_conns.clear()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "PRAGMA synchronous=" + ("FULL" if self.durability == "power_loss" else "NORMAL")
        )
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _migrate(self, conn: sqlite3.Connection, migrations: Sequence[Migration]) -> None:
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
            conn.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _split_sql(m.sql):
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

    # -- writes ----------------------------------------------------------
    def submit(self, fn: WriteFn) -> Future[Any]:
        """Queue a write job; the future resolves after its transaction is durable."""
        fut: Future[Any] = Future()
        if self._closed or self._thread is None:
            fut.set_exception(StoreClosed("store is closed"))
            return fut
        if self._failed is not None:
            fut.set_exception(StoreClosed(f"store writer failed: {self._failed}"))
            return fut
        self._jobs.put((fn, fut))
        return fut

    def defer(self, fn: WriteFn) -> Future[Any]:
        """Queue a write that need not commit on its own (usage rows, budget totals).

        It rides in the next batch the writer runs anyway (a request's receipt follows
        it within microseconds), so a request costs one commit instead of three; if
        nothing else comes, the writer flushes it within :data:`DEFER_FLUSH_S`.
        """
        fut: Future[Any] = Future()
        if self._closed or self._thread is None or self._failed is not None:
            fut.set_exception(StoreClosed("store is closed"))
            return fut
        self._deferred.append((fn, fut))
        return fut

    async def write(self, fn: WriteFn) -> Any:
        return await asyncio.wrap_future(self.submit(fn))

    def write_sync(self, fn: WriteFn, timeout: float = 30.0) -> Any:
        return self.submit(fn).result(timeout=timeout)

    def _writer_loop(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            self._failed = exc
            self._drain_failed(exc)
            return
        while True:
            try:
                first = self._jobs.get(timeout=DEFER_FLUSH_S)
            except queue.Empty:
                if self._deferred:
                    self._run_batch(conn, self._take_deferred())
                continue
            if first is None:
                break
            batch = [first]
            if self.commit_window_s > 0:
                deadline = time.monotonic() + self.commit_window_s
                while len(batch) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        nxt = self._jobs.get(timeout=remaining)
                    except queue.Empty:
                        break
                    if nxt is None:
                        self._jobs.put(None)
                        break
                    batch.append(nxt)
            while len(batch) < self.max_batch:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
            self._run_batch(conn, [*self._take_deferred(), *(j for j in batch if j is not None)])
        if self._deferred:
            self._run_batch(conn, self._take_deferred())
        conn.close()

    def _take_deferred(self) -> list[tuple[WriteFn, Future[Any]]]:
        out: list[tuple[WriteFn, Future[Any]]] = []
        while self._deferred:
            out.append(self._deferred.popleft())
        return out

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[tuple[WriteFn, Future[Any]]]
    ) -> None:
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, fut in batch:
                # A job whose waiter was cancelled before it ran is skipped; a running
                # one can no longer be cancelled, so resolving it below cannot raise.
                if not fut.set_running_or_notify_cancel():
                    continue
                conn.execute("SAVEPOINT job")
                try:
                    res = fn(conn)
                except Exception as exc:  # one bad job must not sink the batch
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    results.append((fut, None, exc))
                else:
                    conn.execute("RELEASE job")
                    results.append((fut, res, None))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("store commit failed: %s", exc)
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            err = ServiceUnavailable(f"store commit failed: {exc}", code="store_unavailable")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        for fut, res, job_exc in results:
            if job_exc is not None:
                fut.set_exception(job_exc)
            else:
                fut.set_result(res)

    def _drain_failed(self, exc: BaseException) -> None:
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                job[1].set_exception(StoreClosed(f"store writer failed: {exc}"))


def _split_sql(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]
