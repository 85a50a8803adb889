"""What every store offers the components, whichever database is behind it.

Components (keys, usage, budgets, the receipt log, actions, conversations) are
written once against this interface: write jobs are plain functions over a
DB-API-style connection (``execute``/``executemany`` with ``?`` placeholders,
cursors with ``fetchone``/``fetchall``/``rowcount``), handed to the store's
single writer thread, which group-commits every job waiting at that moment in
one transaction. The SQLite store runs them on ``sqlite3``; the PostgreSQL
store runs the same functions through :class:`hybridgate.store.postgres.PgConn`,
which translates placeholders and errors. So neither store drifts: the SQL a
component writes is the SQL both run, and the component tests run on both.

SQL that differs between the two stays in migrations: a :class:`Migration`
carries SQLite DDL and, where the automatic translation (types, ``WITHOUT
ROWID``) is not enough, its own PostgreSQL DDL.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from hybridgate.errors import ServiceUnavailable

Dialect = Literal["sqlite", "postgres"]


class Cursor(Protocol):
    """The part of a DB-API cursor components use."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    """The part of a DB-API connection write jobs and readers use (``?`` placeholders)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, params: Any, /) -> Any: ...


WriteFn = Callable[[Any], Any]


class IntegrityError(sqlite3.IntegrityError):
    """A constraint violation in either store.

    It subclasses :class:`sqlite3.IntegrityError` so a component that catches the
    SQLite error (a reused receipt id, a spent nonce) behaves the same on PostgreSQL.
    """


class StoreClosed(ServiceUnavailable):
    code = "store_unavailable"


@dataclass(frozen=True)
class Migration:
    """One schema step of one component. Versions are per component, applied in order.

    ``postgres`` replaces the automatic translation of ``sql`` when given.
    """

    component: str
    version: int
    sql: str
    postgres: str | None = None

    def for_dialect(self, dialect: Dialect) -> str:
        if dialect == "sqlite":
            return self.sql
        return self.postgres if self.postgres is not None else sqlite_ddl_to_postgres(self.sql)


_TYPES = (
    (re.compile(r"\bINTEGER PRIMARY KEY AUTOINCREMENT\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\)\s*WITHOUT ROWID", re.I), ")"),
)


def sqlite_ddl_to_postgres(sql: str) -> str:
    """The type names SQLite's affinity rules accept, spelled the PostgreSQL way."""
    for pattern, repl in _TYPES:
        sql = pattern.sub(repl, sql)
    return sql


def split_sql(sql: str) -> list[str]:
    """Statements of a migration; ``;`` inside ``$$``-quoted function bodies does not split."""
    out: list[str] = []
    for i, part in enumerate(sql.split("$$")):
        if i % 2:  # inside a dollar-quoted body: glue it to the statement being built
            out[-1] += "$$" + part + "$$"
            continue
        pieces = part.split(";")
        if out and i:
            out[-1] += pieces.pop(0)
        out.extend(pieces)
    return [s.strip() for s in out if s.strip()]


class Store(Protocol):
    """The interface both stores implement."""

    dialect: Dialect

    def open(self, migrations: Sequence[Migration] = ()) -> None: ...

    def close(self) -> None: ...

    def reader(self) -> AbstractContextManager[Any]: ...

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    def submit(self, fn: WriteFn) -> Future[Any]: ...

    def defer(self, fn: WriteFn) -> Future[Any]: ...

    def defer_rows(self, sql: str, row: Sequence[Any]) -> Future[Any]: ...

    async def write(self, fn: WriteFn) -> Any: ...

    def write_sync(self, fn: WriteFn, timeout: float = 30.0) -> Any: ...

    def ping_write(self) -> None: ...

    def unavailable_reason(self) -> str | None:
        """Why a write would fail now, or None; asked before anything is sent upstream."""
        ...
