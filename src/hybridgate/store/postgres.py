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
from collections.abc import Iterator, Sequence
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
    """A psycopg connection that speaks the components' dialect (``?``, integrity errors)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        if _MODIFIES.match(sql) and self.raw.info.transaction_status == _INTRANS:
            return self._guarded(sql, params)
        try:
            if params is None or len(params) == 0:
                return self.raw.execute(sql)  # no parameters: psycopg sends the text as is
            return self.raw.execute(to_pg(sql), _params(params))
        except psycopg.errors.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc

    def _guarded(self, sql: str, params: Sequence[Any] | None) -> psycopg.Cursor[Any]:
        """A write inside a transaction, in its own savepoint, in one round trip.

        On SQLite a failed statement leaves its transaction usable, and components rely
        on it (a spent nonce is caught and answered, the next receipt of a batch still
        appends); on PostgreSQL it aborts the whole transaction. So a write runs as
        ``SAVEPOINT; stmt; RELEASE`` sent together (client-side binding allows several
        statements), and a violation rolls back to the savepoint only.
        """
        cur = psycopg.ClientCursor(self.raw)
        try:
            cur.execute(
                "SAVEPOINT hg_stmt; " + to_pg(sql) + "; RELEASE SAVEPOINT hg_stmt",
                _params(params) or (),
            )
        except psycopg.errors.IntegrityError as exc:
            self.raw.execute("ROLLBACK TO SAVEPOINT hg_stmt")
            self.raw.execute("RELEASE SAVEPOINT hg_stmt")
            raise IntegrityError(str(exc)) from exc
        cur.nextset()  # the statement's own result (rowcount, RETURNING rows)
        return cur

    def executemany(self, sql: str, seq: Any) -> psycopg.Cursor[Any]:
        cur = self.raw.cursor()
        try:
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
