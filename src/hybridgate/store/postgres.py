"""PostgreSQL store for many workers and replicas: the same interface as SQLite.

Why psycopg 3 (synchronous connections on the writer thread, a
``psycopg_pool.ConnectionPool`` for reads) rather than asyncpg or psycopg's
async API: the components' write jobs are plain functions over a connection,
run in one group-committed transaction on the writer thread (see
:mod:`hybridgate.store.writer`). That design needs one connection driven by
one thread, which a synchronous driver gives directly; an async pool would
make every job a coroutine and every component two-coloured, and buys
nothing on the write path, where one round trip per batch (not per request)
is the cost. ``benchmarks/scale_bench.py`` measures receipts/s through this
path.

Placeholders: components write ``?``; :class:`PgConn` rewrites them to ``%s``
(outside quoted literals) once per distinct statement, and maps constraint
violations to :class:`hybridgate.store.base.IntegrityError`.

Migrations run under a PostgreSQL advisory lock, so replicas starting
together apply each step exactly once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg_pool import ConnectionPool, PoolTimeout

from hybridgate.errors import ServiceUnavailable
from hybridgate.store.base import Dialect, IntegrityError, Migration, StoreClosed, split_sql
from hybridgate.store.writer import GroupCommitWriter

log = logging.getLogger("hybridgate.store")

#: Advisory-lock key (an arbitrary 64-bit constant) serializing migrations.
MIGRATION_LOCK = 0x6879_6272_6964_0001
CONNECT_TIMEOUT_S = 5


@functools.lru_cache(maxsize=1024)
def to_pg(sql: str) -> str:
    """``?`` placeholders to ``%s`` and literal ``%`` to ``%%``, skipping quoted text."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" else ch)
        elif ch in ("'", '"'):
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%":
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


_MODIFIES = re.compile(r"\s*(INSERT|UPDATE|DELETE)\b", re.I)
_INTRANS = psycopg.pq.TransactionStatus.INTRANS


def _param(v: Any) -> Any:
    # SQLite stores booleans as integers and components rely on reading back ints.
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, memoryview):
        return bytes(v)
    return v


def _params(params: Sequence[Any] | None) -> tuple[Any, ...] | None:
    if params is None:
        return None
    return tuple(_param(v) for v in params)


class PgConn:
    """A psycopg connection that speaks the components' dialect (``?``, integrity errors).

    Transaction control the writer hands to :meth:`later` (BEGIN, a job's savepoint
    and its release) is not sent on its own: it goes in front of the next statement,
    in the same round trip (client-side binding allows several statements), and
    control that turns out to guard nothing is dropped unsent (a job that wrote
    nothing, a batch with no statement). On a network database each of those would
    otherwise cost a round trip per job.
    """

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn
        self._later: list[str] = []

    def later(self, sql: str) -> None:
        """Send ``sql`` (a control statement without parameters) with the next statement."""
        pending = self._later
        if pending and pending[-1].startswith("SAVEPOINT "):
            name = pending[-1][len("SAVEPOINT ") :]
            if sql == f"RELEASE SAVEPOINT {name}":  # nothing ran under it
                pending.pop()
                return
            if sql == f"ROLLBACK TO SAVEPOINT {name}":  # nothing to undo
                return
        pending.append(sql)

    def _in_transaction(self) -> bool:
        if self._later and self._later[0] == "BEGIN":
            return True
        return bool(self.raw.info.transaction_status == _INTRANS)

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if sql == "COMMIT" or sql == "ROLLBACK":
            return self._end(sql)
        if _MODIFIES.match(sql) and self._in_transaction():
            return self._guarded(sql, params)
        if self._later:
            return self._with_later(to_pg(sql) if params else sql, _params(params) or None)
        try:
            if params is None or len(params) == 0:
                return self.raw.execute(sql)  # no parameters: psycopg sends the text as is
            return self.raw.execute(to_pg(sql), _params(params))
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def _end(self, sql: str) -> psycopg.Cursor[Any]:
        """COMMIT or ROLLBACK: nothing to send when no statement began the transaction."""
        pending, self._later = self._later, []
        if self.raw.info.transaction_status != _INTRANS and pending[:1] == ["BEGIN"]:
            return self.raw.cursor()  # nothing was sent: nothing to end
        if sql == "ROLLBACK":  # held-back control is moot
            return self.raw.execute(sql)
        self._later = pending
        return self._with_later(sql, None)

    def _with_later(self, sql: str, params: Sequence[Any] | None) -> psycopg.Cursor[Any]:
        """Held-back control, then ``sql`` (already in psycopg's placeholders), one round trip."""
        pending, self._later = self._later, []
        cur = psycopg.ClientCursor(self.raw)
        try:
            cur.execute("; ".join([*pending, sql]), params)
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        for _ in pending:  # to the statement's own result (a RELEASE may follow it)
            cur.nextset()
        return cur

    def _guarded(self, sql: str, params: Sequence[Any] | None) -> psycopg.Cursor[Any]:
        """A write inside a transaction, in its own savepoint, in one round trip.

        On SQLite a failed statement leaves its transaction usable, and components rely
        on it (a spent nonce is caught and answered, the next receipt of a batch still
        appends); on PostgreSQL it aborts the whole transaction. So a write runs as
        ``SAVEPOINT; stmt; RELEASE`` sent together (with any held-back control), and a
        violation rolls back to the savepoint only.
        """
        self._later += ["SAVEPOINT hg_stmt"]
        try:
            cur = self._with_later(
                to_pg(sql) + "; RELEASE SAVEPOINT hg_stmt", _params(params) or ()
            )
        except IntegrityError:
            # At once, not held back: the caller may be a transaction of its own (the
            # sequencer's) that ends on this error, with no next statement to carry it.
            self.raw.execute("ROLLBACK TO SAVEPOINT hg_stmt")
            self.raw.execute("RELEASE SAVEPOINT hg_stmt")
            raise
        return cur

    def executemany(self, sql: str, seq: Any) -> psycopg.Cursor[Any]:
        """Every row in one pipeline (one round trip), held-back control first."""
        pending, self._later = self._later, []
        cur = self.raw.cursor()
        try:
            with self.raw.pipeline():
                for control in pending:
                    self.raw.execute(control)
                cur.executemany(to_pg(sql), [tuple(_param(v) for v in p) for p in seq])
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return cur

    def close(self) -> None:
        self.raw.close()


class PostgresStore(GroupCommitWriter):
    """Every component's tables in one PostgreSQL database, shared by all replicas."""

    dialect: Dialect = "postgres"
    begin_sql = "BEGIN"
    db_errors = (psycopg.Error,)

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 8,
        commit_window_s: float = 0.0,
        max_batch: int = 512,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        super().__init__(commit_window_s=commit_window_s, max_batch=max_batch)
        self.dsn = dsn
        self.pool_size = pool_size
        self.connect_timeout_s = connect_timeout_s
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._open_lock = threading.Lock()

    def connect(self) -> PgConn:
        """A new autocommit connection (the caller closes it)."""
        try:
            raw = psycopg.connect(
                self.dsn, autocommit=True, connect_timeout=max(1, int(self.connect_timeout_s))
            )
        except psycopg.Error as exc:
            raise ServiceUnavailable(
                f"PostgreSQL unavailable: {exc}", code="store_unavailable"
            ) from exc
        return PgConn(raw)

    # -- lifecycle -------------------------------------------------------
    def open(self, migrations: Sequence[Migration] = ()) -> None:
        conn = self.connect()
        try:
            self._migrate(conn, migrations)
        finally:
            conn.close()
        self._pool = ConnectionPool(
            self.dsn,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self.connect_timeout_s))},
            timeout=self.connect_timeout_s,
            check=ConnectionPool.check_connection,
            open=True,
            name="hybridgate-readers",
        )
        self._start_writer()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop_writer()
        if self._pool is not None:
            self._pool.close()

    def _writer_connect(self) -> PgConn:
        return self.connect()

    def _writer_broken(self, conn: Any) -> bool:
        return bool(conn.raw.closed or conn.raw.broken)

    def _control(self, conn: Any) -> Callable[[str], Any]:
        return conn.later  # type: ignore[no-any-return]

    @staticmethod
    def _migrate(conn: PgConn, migrations: Sequence[Migration]) -> None:
        conn.execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " component TEXT NOT NULL, version BIGINT NOT NULL, applied_ns BIGINT NOT NULL,"
                " PRIMARY KEY (component, version))"
            )
            applied = {
                (c, v) for c, v in conn.execute("SELECT component, version FROM schema_migrations")
            }
            for m in sorted(migrations, key=lambda m: (m.component, m.version)):
                if (m.component, m.version) in applied:
                    continue
                with conn.raw.transaction():
                    for stmt in split_sql(m.for_dialect("postgres")):
                        conn.raw.execute(stmt)  # DDL: no placeholders to translate
                    conn.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        (m.component, m.version, time.time_ns()),
                    )
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))

    # -- reads -----------------------------------------------------------
    @contextlib.contextmanager
    def reader(self) -> Iterator[PgConn]:
        """A pooled autocommit connection for reads."""
        if self._closed or self._pool is None:
            raise StoreClosed("store is closed")
        try:
            with self._pool.connection() as raw:
                yield PgConn(raw)
        except (psycopg.Error, PoolTimeout) as exc:
            raise ServiceUnavailable(f"store read failed: {exc}", code="store_unavailable") from exc

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.reader() as conn:
            return list(conn.execute(sql, params).fetchall())
