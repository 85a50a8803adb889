"""Component tests run against both stores: ``store_factory`` is parametrized over them.

PostgreSQL tests use a private database on the shared server (created here, dropped
afterwards). They do not skip when PostgreSQL is absent: ``.ci/run`` starts it, and a
missing service is a failure, not a silently smaller test run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridgate.store.base import Migration, Store
from hybridgate.store.sqlite import SQLiteStore
from hybridgate.testing.services import pg_database

StoreFactory = Callable[..., Store]


@pytest.fixture(params=["sqlite", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with pg_database() as dsn:
        yield dsn


@pytest.fixture
def store_factory(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StoreFactory]:
    """Open stores on one database (SQLite file or private PostgreSQL database)."""
    opened: list[Store] = []
    dsn_cm: Any = None
    dsn = ""
    if store_kind == "postgres":
        dsn_cm = pg_database()
        dsn = dsn_cm.__enter__()

    def make(migrations: list[Migration], **kw: Any) -> Store:
        s: Store
        if store_kind == "postgres":
            from hybridgate.store.postgres import PostgresStore

            s = PostgresStore(dsn, **kw)
        else:
            s = SQLiteStore(tmp_path / "g.db", **kw)
        s.open(migrations)
        opened.append(s)
        return s

    try:
        yield make
    finally:
        for s in opened:
            s.close()
        if dsn_cm is not None:
            dsn_cm.__exit__(None, None, None)
