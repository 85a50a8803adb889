"""The adapter registry: adapters by name, in the gateway's store.

A running gateway and the ``hybridgate adapters`` CLI (or a training job
calling :func:`hybridgate.adapters.register`) share one database. The
gateway reads the registry through a short-lived snapshot, so an adapter added
or removed by another process is served, or refused, within
:data:`CACHE_TTL_S` seconds, without a restart; changes made through the
same :class:`AdapterRegistry` object are seen at once.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from hybridgate.adapters.files import adapter_files, store_copy
from hybridgate.adapters.model import (
    DEFAULT_INPUT_SCHEMA,
    Adapter,
    validate_name,
    validate_schema,
    validate_task,
)
from hybridgate.errors import Conflict, InvalidRequest, NotFound
from hybridgate.store.base import Migration, Store

#: An adapter added or removed by another process is seen within this many seconds.
CACHE_TTL_S = 1.0

MIGRATIONS = [
    Migration(
        "adapters",
        1,
        """
        CREATE TABLE adapters (
            name TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            base TEXT NOT NULL,
            task TEXT,
            input_schema TEXT NOT NULL,
            format TEXT NOT NULL,
            path TEXT NOT NULL,
            size_bytes INTEGER NOT NULL,
            replaces TEXT,
            created_ns INTEGER NOT NULL
        );
        CREATE INDEX adapters_sha ON adapters (sha256)
        """,
    )
]

_COLUMNS = "name, sha256, base, task, input_schema, format, path, size_bytes, replaces, created_ns"


def _row(r: tuple[Any, ...]) -> Adapter:
    return Adapter(
        name=r[0],
        sha256=r[1],
        base=r[2],
        task=r[3],
        input_schema=json.loads(r[4]),
        format=r[5],
        path=r[6],
        size_bytes=r[7],
        replaces=r[8],
        created_ns=r[9],
    )


class AdapterRegistry:
    """Registers, lists and removes adapters; thread-safe; reads are cached briefly."""

    def __init__(self, store: Store, home: str | Path) -> None:
        self._store = store
        self._dir = Path(home).expanduser() / "adapters"
        self._lock = threading.Lock()
        self._snapshot: tuple[float, dict[str, Adapter]] | None = None

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    @property
    def directory(self) -> Path:
        """Where registered adapters' content-addressed copies live."""
        return self._dir

    # -- reads ------------------------------------------------------------------
    def _all(self) -> dict[str, Adapter]:
        now = time.monotonic()
        with self._lock:
            snap = self._snapshot
            if snap is not None and now - snap[0] < CACHE_TTL_S:
                return snap[1]
        rows = self._store.query(f"SELECT {_COLUMNS} FROM adapters ORDER BY name")
        fresh = {r[0]: _row(r) for r in rows}
        with self._lock:
            self._snapshot = (now, fresh)
        return fresh

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def list(self, base: str | None = None) -> list[Adapter]:
        """Every adapter (sorted by name), or those on one base model."""
        return [a for a in self._all().values() if base is None or a.base == base]

    def get(self, name: str) -> Adapter | None:
        return self._all().get(name)

    def require(self, name: str) -> Adapter:
        found = self.get(name)
        if found is None:
            raise NotFound(f"no adapter named {name!r}", code="adapter_not_found")
        return found

    def by_sha256(self, sha256: str) -> Adapter | None:
        return next((a for a in self._all().values() if a.sha256 == sha256), None)

    # -- writes -----------------------------------------------------------------
    def register(
        self,
        name: str,
        path: str | Path,
        *,
        base: str,
        task: str | None = None,
        input_schema: dict[str, Any] | None = None,
        replaces: str | None = None,
        replace: bool = False,
    ) -> Adapter:
        """Digest and store the adapter at ``path`` under ``name``; returns the record.

        Registering the same files under the same name again is a no-op that
        returns the existing record. A different adapter under a taken name is
        a :class:`~hybridgate.errors.Conflict` unless ``replace`` is set; then
        requests for ``name`` are answered by the new weights (and receipts
        carry the new id) from the next registry refresh on.
        """
        validate_name(name)
        task = validate_task(task)
        if not isinstance(base, str) or not base or len(base) > 256:
            raise InvalidRequest("base must be a non-empty string (the base model's name)")
        schema = validate_schema(input_schema if input_schema is not None else DEFAULT_INPUT_SCHEMA)
        files = adapter_files(path)
        stored = store_copy(files, self._dir)
        record = Adapter(
            name=name,
            sha256=files.sha256,
            base=base,
            path=str(stored),
            format=files.format,
            size_bytes=files.size_bytes,
            created_ns=time.time_ns(),
            task=task,
            input_schema=schema,
            replaces=replaces,
        )

        def upsert(conn: sqlite3.Connection) -> Adapter:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM adapters WHERE name = ?", (name,)
            ).fetchone()
            if row is not None:
                old = _row(row)
                same = (old.sha256, old.base, old.task, old.input_schema, old.replaces) == (
                    record.sha256,
                    record.base,
                    record.task,
                    record.input_schema,
                    record.replaces,
                )
                if same:
                    return old
                if not replace:
                    raise Conflict(
                        f"adapter {name!r} already exists (id {old.short_id}); "
                        "remove it or register with replace"
                    )
                conn.execute("DELETE FROM adapters WHERE name = ?", (name,))
            conn.execute(
                f"INSERT INTO adapters ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.name,
                    record.sha256,
                    record.base,
                    record.task,
                    json.dumps(record.input_schema, sort_keys=True),
                    record.format,
                    record.path,
                    record.size_bytes,
                    record.replaces,
                    record.created_ns,
                ),
            )
            return record

        result: Adapter = self._store.write_sync(upsert)
        self.invalidate()
        return result

    def remove(self, name: str) -> Adapter:
        """Unregister ``name``; its stored copy goes too unless another name uses it."""

        def delete(conn: sqlite3.Connection) -> tuple[Adapter, bool]:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM adapters WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no adapter named {name!r}", code="adapter_not_found")
            conn.execute("DELETE FROM adapters WHERE name = ?", (name,))
            left = conn.execute(
                "SELECT COUNT(*) FROM adapters WHERE sha256 = ?", (row[1],)
            ).fetchone()[0]
            return _row(row), left == 0

        gone: Adapter
        orphaned: bool
        gone, orphaned = self._store.write_sync(delete)
        self.invalidate()
        if orphaned:
            shutil.rmtree(self._dir / gone.sha256, ignore_errors=True)
        return gone
