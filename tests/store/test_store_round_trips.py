"""What one group-committed batch costs on the wire, and what batching may not change.

On PostgreSQL every statement is a round trip, so the writer holds transaction
control back to ride with the next statement, and :meth:`Store.defer_rows` puts a
batch's rows in one pipelined statement. These tests count the round trips with
libpq's own protocol trace (every ``ReadyForQuery`` the server sends ends one), and
check that the savepoint semantics the components rely on are unchanged: a failed
job is undone alone, a caught integrity error leaves its job usable, and a batch
whose jobs wrote nothing sends nothing.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hybridgate.store.base import Migration, Store, StoreClosed
from hybridgate.store.postgres import PgConn, PostgresStore
from hybridgate.testing.services import pg_database

StoreFactory = Callable[..., Store]

T = [Migration("t", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT)")]
ROWS_SQL = "INSERT INTO items (id, v) VALUES (?, ?) ON CONFLICT DO NOTHING"


class TracedStore(PostgresStore):
    """A PostgreSQL store whose writer connection logs the protocol to a file."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.trace = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()

    def _writer_connect(self) -> PgConn:
        conn = super()._writer_connect()
        self._trace(conn)
        return conn

    def _trace(self, conn: PgConn) -> None:
        conn.raw.pgconn.trace(self.trace.fileno())
        conn.raw.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)

    def round_trips(self) -> int:
        """Round trips so far (untracing, in the writer's own thread, flushes the log).

        The job that does it writes nothing, so its batch sends nothing either.
        """
        self.write_sync(lambda c: c.raw.pgconn.untrace())
        self.trace.seek(0)
        text = self.trace.read().decode("utf-8", "replace")
        self.write_sync(self._trace)
        return text.count("\tReadyForQuery")

    def close(self) -> None:
        super().close()
        self.trace.close()


@pytest.fixture
def traced() -> Any:
    with pg_database() as dsn:
        store = TracedStore(dsn)
        store.open(T)
        try:
            yield store
        finally:
            store.close()


def one_batch(store: Store, jobs: list[Any]) -> list[Future[Any]]:
    """Submit ``jobs`` while the writer is held, so they run as one batch."""
    gate = threading.Event()
    started = threading.Event()

    def hold(_: Any) -> None:
        started.set()
        gate.wait(10)

    first = store.submit(hold)
    assert started.wait(10)
    futs = [store.submit(j) for j in jobs]
    gate.set()
    first.result(10)
    for f in futs:
        f.exception(10)
    return futs


def test_a_batch_of_writes_costs_a_round_trip_per_statement_and_one_commit(
    traced: TracedStore,
) -> None:
    def insert(i: int) -> Any:
        return lambda c: c.execute("INSERT INTO items (id, v) VALUES (?, ?)", (i, "x"))

    traced.write_sync(lambda c: None)  # connect; an empty job sends nothing
    base = traced.round_trips()
    assert base == 0
    futs = one_batch(traced, [insert(i) for i in range(10)] + [lambda c: None] * 5)
    assert all(f.exception() is None for f in futs)
    # the holding job's batch sent nothing; then ten inserts (BEGIN and each job's
    # savepoint riding with them) and one COMMIT carrying the last release
    assert traced.round_trips() == 10 + 1
    assert traced.query("SELECT count(*) FROM items") == [(10,)]


def test_deferred_rows_go_in_one_statement_per_batch(traced: TracedStore) -> None:
    gate = threading.Event()
    traced.submit(lambda c: gate.wait(10))
    futs = [traced.defer_rows(ROWS_SQL, (i, f"v{i}")) for i in range(50)]
    assert len({id(f) for f in futs}) == 1  # one batch, one future
    gate.set()
    futs[0].result(10)
    assert traced.query("SELECT count(*) FROM items") == [(50,)]
    # rows queued after the batch ran start a new one
    assert traced.defer_rows(ROWS_SQL, (50, "late")) is not futs[0]


def test_deferred_rows_after_close_fail_and_do_not_join_a_dead_batch(
    store_factory: StoreFactory,
) -> None:
    s = store_factory(T)
    s.close()
    f1 = s.defer_rows(ROWS_SQL, (1, "a"))
    with pytest.raises(StoreClosed):
        f1.result(5)
    f2 = s.defer_rows(ROWS_SQL, (2, "b"))
    assert f2 is not f1
    with pytest.raises(StoreClosed):
        f2.result(5)


def test_deferred_rows_land_on_both_stores(store_factory: StoreFactory) -> None:
    s = store_factory(T)
    futs = [s.defer_rows(ROWS_SQL, (i, "v")) for i in range(20)]
    futs.append(s.defer_rows(ROWS_SQL, (3, "duplicate, ignored")))
    for f in futs:
        f.result(10)
    assert s.query("SELECT count(*), min(id), max(id) FROM items") == [(20, 0, 19)]


def test_a_failed_job_is_undone_alone_and_a_caught_violation_leaves_its_job_usable(
    store_factory: StoreFactory,
) -> None:
    s = store_factory(T)
    s.write_sync(lambda c: c.execute("INSERT INTO items (id, v) VALUES (1, 'old')"))

    def half_then_fail(c: Any) -> None:
        c.execute("INSERT INTO items (id, v) VALUES (2, 'undone')")
        raise RuntimeError("a bug after a write")

    def catches_and_goes_on(c: Any) -> str:
        try:
            c.execute("INSERT INTO items (id, v) VALUES (1, 'dup')")
        except sqlite3.IntegrityError:  # the PostgreSQL store raises a subclass
            c.execute("INSERT INTO items (id, v) VALUES (3, 'after the violation')")
        return str(c.execute("SELECT v FROM items WHERE id = 3").fetchone()[0])

    def violation_not_caught(c: Any) -> None:
        c.execute("INSERT INTO items (id, v) VALUES (4, 'undone too')")
        c.execute("INSERT INTO items (id, v) VALUES (1, 'dup')")

    def last(c: Any) -> None:
        c.execute("INSERT INTO items (id, v) VALUES (5, 'kept')")

    futs = one_batch(s, [half_then_fail, catches_and_goes_on, violation_not_caught, last])
    assert isinstance(futs[0].exception(), RuntimeError)
    assert futs[1].result() == "after the violation"
    assert isinstance(futs[2].exception(), sqlite3.IntegrityError)
    assert futs[3].exception() is None
    rows = s.query("SELECT id, v FROM items ORDER BY id")
    assert rows == [(1, "old"), (3, "after the violation"), (5, "kept")]


def test_a_batch_that_fails_to_commit_reports_every_job_failed(tmp_path: Path) -> None:
    """The connection dies mid-batch: nothing of the batch is reported durable."""
    with pg_database() as dsn:
        s = PostgresStore(dsn)
        s.open(T)
        try:
            pid = s.write_sync(lambda c: c.execute("SELECT pg_backend_pid()").fetchone()[0])

            def killed(c: Any) -> None:
                with psycopg.connect(dsn, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                c.execute("INSERT INTO items (id, v) VALUES (9, 'lost')")

            futs = one_batch(s, [lambda c: c.execute("INSERT INTO items VALUES (8, 'a')"), killed])
            assert all(f.exception() is not None for f in futs)
            # the writer reconnects; the next write lands and the lost batch stays lost
            s.write_sync(lambda c: c.execute("INSERT INTO items (id, v) VALUES (10, 'b')"))
            assert s.query("SELECT id FROM items ORDER BY id") == [(10,)]
        finally:
            s.close()


def test_a_violation_in_a_callers_own_transaction_leaves_the_connection_usable() -> None:
    """Connections outside the writer (the sequencer's) run their own transactions: a
    violation there is undone at once, so nothing is left to ride with a later statement
    once that transaction has ended."""
    with pg_database() as dsn:
        s = PostgresStore(dsn)
        s.open(T)
        conn = s.connect()
        try:
            conn.execute("INSERT INTO items (id, v) VALUES (1, 'a')")
            with pytest.raises(sqlite3.IntegrityError), conn.raw.transaction():
                conn.execute("INSERT INTO items (id, v) VALUES (2, 'b')")
                conn.execute("INSERT INTO items (id, v) VALUES (1, 'dup')")
            # the transaction rolled back as a whole; the connection goes on
            assert conn.execute("SELECT id FROM items ORDER BY id").fetchall() == [(1,)]
            with conn.raw.transaction():
                try:
                    conn.execute("INSERT INTO items (id, v) VALUES (1, 'dup')")
                except sqlite3.IntegrityError:
                    conn.execute("INSERT INTO items (id, v) VALUES (3, 'c')")
            assert conn.execute("SELECT id FROM items ORDER BY id").fetchall() == [(1,), (3,)]
        finally:
            conn.close()
            s.close()
