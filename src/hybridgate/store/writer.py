"""One writer thread that group-commits every component's writes together.

Why one writer: a database commit costs a round trip and a flush. Giving the
ledger, usage log, budgets and keys each their own connection makes them pay
one each (and, on SQLite, queue on the file lock). Instead every write is a
small job handed to a single thread that runs all jobs waiting at that moment
in one transaction, each in its own savepoint, then resolves each job's
future. A job is reported done only after its transaction committed, so
"done" means durable. Both stores share this loop; they differ in how they
connect, begin a transaction and what their errors look like.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, TypeVar

from hybridgate.errors import ServiceUnavailable
from hybridgate.store.base import StoreClosed, WriteFn

log = logging.getLogger("hybridgate.store")

T = TypeVar("T")

#: How soon a deferred write commits when no other write comes along to carry it.
DEFER_FLUSH_S = 0.05


class GroupCommitWriter:
    """The writer-thread half of a store. Subclasses provide the connection."""

    #: Statement that opens a write transaction.
    begin_sql = "BEGIN"
    #: Errors of the driver that mean "this batch did not commit".
    db_errors: tuple[type[BaseException], ...] = ()

    def __init__(self, *, commit_window_s: float = 0.0, max_batch: int = 512) -> None:
        self.commit_window_s = commit_window_s
        self.max_batch = max_batch
        self._jobs: queue.SimpleQueue[tuple[WriteFn, Future[Any]] | None] = queue.SimpleQueue()
        self._deferred: collections.deque[tuple[WriteFn, Future[Any]]] = collections.deque()
        #: Rows waiting for :meth:`defer_rows`' one statement per batch, by statement.
        self._rows: dict[str, tuple[list[Sequence[Any]], Future[Any]]] = {}
        self._rows_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._failed: BaseException | None = None
        #: Below this much free space (where ``free_space_path`` lives) the store reports
        #: itself unavailable, so the gateway stops sending what it could not receipt.
        self.min_free_bytes = 64 * 1024 * 1024
        self.free_space_path: str | None = None
        self._commit_error: str | None = None
        self._probe: Future[Any] | None = None

    def unavailable_reason(self) -> str | None:
        """Why a write would fail now (None: the store can take writes).

        Cheap enough to ask before every request: flags plus one ``statvfs``.
        After a failed write the store stays unavailable until a probe write
        (started here, one at a time) commits again.
        """
        if self._closed or self._thread is None:
            return "store is closed"
        if self._failed is not None or not self._thread.is_alive():
            return "store writer failed"
        if self.free_space_path is not None:
            try:
                st = os.statvfs(self.free_space_path)
            except OSError as exc:
                return f"cannot check free space: {exc.strerror}"
            if st.f_bavail * st.f_frsize < self.min_free_bytes:
                return f"less than {self.min_free_bytes} bytes free for the database"
        if self._commit_error is not None:
            if self._probe is None or self._probe.done():
                self._probe = probe = self.submit(_probe_write)
                probe.add_done_callback(self._probe_done)
            return f"last write failed ({self._commit_error})"
        return None

    def _probe_done(self, fut: Future[Any]) -> None:
        if not fut.cancelled() and fut.exception() is None:
            self._commit_error = None

    # -- provided by the store ------------------------------------------------
    def _writer_connect(self) -> Any:
        raise NotImplementedError

    def _writer_close(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            conn.close()

    def _control(self, conn: Any) -> Callable[[str], Any]:
        """How the batch sends its transaction control (BEGIN, savepoints).

        At once by default (SQLite: in-process, nothing to save). A store whose every
        statement is a network round trip returns a function that holds them back to go
        with the next statement, so that control costs no round trip of its own.
        """
        send: Callable[[str], Any] = conn.execute
        return send

    def _writer_broken(self, conn: Any) -> bool:
        """True when the connection is gone and the next batch needs a new one."""
        return False

    # -- lifecycle ------------------------------------------------------------
    def _start_writer(self) -> None:
        self._thread = threading.Thread(
            target=self._writer_loop, name="hybridgate-writer", daemon=True
        )
        self._thread.start()

    def _stop_writer(self) -> None:
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout=10)

    # -- the write path ---------------------------------------------------------
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

    def defer_rows(self, sql: str, row: Sequence[Any]) -> Future[Any]:
        """Queue one row for ``sql``; every row waiting for it goes in one ``executemany``.

        For append-only rows nobody waits on (usage rows, spend totals): a deferred job
        per row costs its own savepoint and statement (on PostgreSQL, round trips); this
        costs one job and one pipelined statement per batch. ``sql`` must not fail for
        one row alone (``ON CONFLICT``...): the rows of one batch succeed or fail together,
        and the returned future, shared by the batch, says which.
        """
        with self._rows_lock:
            waiting = self._rows.get(sql)
            # A batch whose future is done while still listed never ran (the store
            # closed or failed): later rows start a batch of their own.
            if waiting is not None and not waiting[1].done():
                waiting[0].append(row)
                return waiting[1]
            rows: list[Sequence[Any]] = [row]
            fut = self.defer(functools.partial(self._insert_rows, sql, rows))
            self._rows[sql] = (rows, fut)
            return fut

    def _insert_rows(self, sql: str, rows: list[Sequence[Any]], conn: Any) -> None:
        with self._rows_lock:
            if self._rows.get(sql, (None,))[0] is rows:
                del self._rows[sql]  # rows queued from now on start the next batch
        conn.executemany(sql, rows)

    async def write(self, fn: WriteFn) -> Any:
        return await asyncio.wrap_future(self.submit(fn))

    def write_sync(self, fn: WriteFn, timeout: float = 30.0) -> Any:
        return self.submit(fn).result(timeout=timeout)

    def ping_write(self) -> None:
        """One empty write transaction through the writer (readiness: the store is writable)."""
        self.write_sync(lambda conn: conn.execute("SELECT 1").fetchone(), timeout=5.0)

    def _writer_loop(self) -> None:
        conn: Any = None
        while True:
            try:
                first = self._jobs.get(timeout=DEFER_FLUSH_S)
            except queue.Empty:
                if self._deferred:
                    conn = self._run_batch(conn, self._take_deferred())
                continue
            if first is None:
                break
            batch = gather(self._jobs, first, self.max_batch, self.commit_window_s)
            conn = self._run_batch(conn, [*self._take_deferred(), *batch])
        if self._deferred:
            conn = self._run_batch(conn, self._take_deferred())
        if conn is not None:
            self._writer_close(conn)

    def _take_deferred(self) -> list[tuple[WriteFn, Future[Any]]]:
        out: list[tuple[WriteFn, Future[Any]]] = []
        while self._deferred:
            out.append(self._deferred.popleft())
        return out

    def _run_batch(self, conn: Any, batch: list[tuple[WriteFn, Future[Any]]]) -> Any:
        """Run one batch; returns the connection to use next (None: reconnect first)."""
        if conn is None:
            try:
                conn = self._writer_connect()
            except Exception as exc:  # the database is down: fail this batch, retry later
                log.error("store connection failed: %s", exc)
                self._commit_error = type(exc).__name__
                err = ServiceUnavailable(f"store unavailable: {exc}", code="store_unavailable")
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                return None
        results: list[tuple[Future[Any], Any, BaseException | None]] = []
        later = self._control(conn)
        try:
            later(self.begin_sql)
            for fn, fut in batch:
                # A job whose waiter was cancelled before it ran is skipped; a running
                # one can no longer be cancelled, so resolving it below cannot raise.
                if not fut.set_running_or_notify_cancel():
                    continue
                later("SAVEPOINT job")
                try:
                    res = fn(conn)
                except self.db_errors as exc:
                    if type(exc).__name__ == "OperationalError":  # disk full, I/O error
                        self._commit_error = type(exc).__name__
                    if self._writer_broken(conn):
                        raise
                    later("ROLLBACK TO SAVEPOINT job")
                    later("RELEASE SAVEPOINT job")
                    results.append((fut, None, exc))
                except Exception as exc:  # one bad job must not sink the batch
                    later("ROLLBACK TO SAVEPOINT job")
                    later("RELEASE SAVEPOINT job")
                    results.append((fut, None, exc))
                else:
                    later("RELEASE SAVEPOINT job")
                    results.append((fut, res, None))
            conn.execute("COMMIT")
        except self.db_errors as exc:
            log.error("store commit failed: %s", exc)
            self._commit_error = type(exc).__name__
            with contextlib.suppress(*self.db_errors):
                conn.execute("ROLLBACK")
            err = ServiceUnavailable(f"store commit failed: {exc}", code="store_unavailable")
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(err)
            if self._writer_broken(conn):
                self._writer_close(conn)
                return None
            return conn
        for fut, res, job_exc in results:
            if job_exc is not None:
                fut.set_exception(job_exc)
            else:
                fut.set_result(res)
        return conn


def gather(q: queue.SimpleQueue[T | None], first: T, limit: int, window_s: float = 0.0) -> list[T]:
    """``first`` and what follows it on ``q``, up to ``limit`` items: everything already
    waiting, and for ``window_s`` after ``first`` whatever arrives meanwhile.

    ``None`` on the queue means "stop": it is put back for the caller's next ``get`` to
    see, and ends the batch.
    """
    batch = [first]
    deadline = time.monotonic() + window_s
    while len(batch) < limit:
        left = deadline - time.monotonic()
        try:
            nxt = q.get(timeout=left) if left > 0 else q.get_nowait()
        except queue.Empty:
            break
        if nxt is None:
            q.put(None)
            break
        batch.append(nxt)
    return batch


def _probe_write(conn: Any) -> None:
    """A real page write, to learn whether writes commit again (both dialects)."""
    conn.execute("CREATE TABLE IF NOT EXISTS store_probe (n INTEGER)")
    conn.execute("DELETE FROM store_probe")
    conn.execute("INSERT INTO store_probe VALUES (1)")
