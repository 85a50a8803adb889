"""Build the configured store (PostgreSQL's driver is imported only when it is used)."""

from __future__ import annotations

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
