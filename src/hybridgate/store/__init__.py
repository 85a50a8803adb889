"""Storage: one interface (:mod:`.base`), SQLite embedded (:mod:`.sqlite`) and PostgreSQL
for many replicas (:mod:`.postgres`, imported only when configured)."""

from hybridgate.store.base import IntegrityError, Migration, Store, StoreClosed
from hybridgate.store.factory import build_store

__all__ = ["IntegrityError", "Migration", "Store", "StoreClosed", "build_store"]
