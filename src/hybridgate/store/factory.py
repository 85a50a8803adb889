"""Build the configured store (PostgreSQL's driver is imported only when it is used)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from hybridgate.config import GatewayConfig
from hybridgate.store.base import Store
from hybridgate.store.sqlite import SQLiteStore


def build_store(config: GatewayConfig) -> Store:
    """An unopened store for ``config`` (call ``open(migrations)`` next)."""
    sc = config.store
    window = config.ledger.commit_interval_ms / 1000.0
    if sc.kind == "postgres":
        from hybridgate.store.postgres import PostgresStore

        assert sc.dsn is not None  # the config validator guarantees it
        return PostgresStore(
            sc.dsn,
            pool_size=sc.pool_size,
            commit_window_s=window,
            max_batch=config.ledger.max_batch,
        )
    return SQLiteStore(
        config.database_path,
        durability=config.ledger.durability,
        commit_window_s=window,
        max_batch=config.ledger.max_batch,
    )


def table_exists(store: Store, name: str) -> bool:
    """Whether a component's table is there (read-only commands never create it)."""
    if store.dialect == "postgres":
        return bool(store.query("SELECT to_regclass(?) IS NOT NULL", [name])[0][0])
    return bool(store.query("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", [name]))


@contextmanager
def reading_store(config: GatewayConfig) -> Iterator[Store]:
    """The store the gateways of ``config`` write, for commands that only read it.

    SQLite: the home's database file, which must exist (it is neither created nor
    migrated). PostgreSQL: the shared database, opened without applying migrations.
    Raises ``FileNotFoundError`` or :class:`ServiceUnavailable` when it cannot be read.
    """
    store: Store
    if config.store.kind == "postgres":
        store = build_store(config)
        store.open([])
    else:
        path = config.database_path
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no gateway database (has the gateway run?)")
        store = SQLiteStore(path)
    try:
        yield store
    finally:
        store.close()
