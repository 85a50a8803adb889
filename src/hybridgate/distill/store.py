"""Where the flywheel keeps its state, in the gateway's own store: sealed pairs,
each task's promotion stage, shadow/audit comparisons, and terms overrides.

Pairs are sealed (:mod:`hybridgate.distill.crypto`) before they reach this
module and carry an expiry; :meth:`DistillStore.purge_expired` runs on every
capture and before every export, so retention holds without a timer.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal

from hybridgate.store.base import Migration, Store

MIGRATIONS = (
    Migration(
        "distill",
        1,
        """
        CREATE TABLE distill_pairs (
            id INTEGER PRIMARY KEY,
            task TEXT NOT NULL,
            team TEXT,
            receipt_id TEXT NOT NULL UNIQUE,
            log_index INTEGER NOT NULL,
            pair_hash TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            expires_ns INTEGER NOT NULL,
            sealed BLOB NOT NULL
        );
        CREATE INDEX distill_pairs_task ON distill_pairs (task, log_index);
        CREATE TABLE distill_state (
            task TEXT PRIMARY KEY,
            stage TEXT NOT NULL,
            adapter_id TEXT,
            adapter_path TEXT,
            manifest_sha256 TEXT,
            since_ns INTEGER NOT NULL
        );
        CREATE TABLE distill_comparisons (
            id INTEGER PRIMARY KEY,
            task TEXT NOT NULL,
            adapter_id TEXT NOT NULL,
            stage TEXT NOT NULL,
            agree INTEGER NOT NULL,
            adapter_valid INTEGER NOT NULL,
            adapter_ms REAL,
            teacher_ms REAL,
            created_ns INTEGER NOT NULL
        );
        CREATE INDEX distill_comparisons_task ON distill_comparisons (task, id);
        CREATE TABLE distill_calls (
            id INTEGER PRIMARY KEY,
            task TEXT NOT NULL,
            served_by TEXT NOT NULL,
            adapter_id TEXT,
            cost_usd TEXT NOT NULL,
            teacher_cost_usd TEXT NOT NULL,
            latency_ms REAL NOT NULL,
            created_ns INTEGER NOT NULL
        );
        CREATE INDEX distill_calls_task ON distill_calls (task, id);
        CREATE TABLE distill_overrides (
            task TEXT NOT NULL,
            model TEXT NOT NULL,
            receipt_id TEXT NOT NULL,
            reason TEXT NOT NULL,
            operator TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            PRIMARY KEY (task, model)
        );
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class StoredPair:
    task: str
    team: str | None
    receipt_id: str
    log_index: int
    pair_hash: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class TaskState:
    task: str
    stage: str  # off | registered | shadow | canary | full | rolled_back
    adapter_id: str | None
    adapter_path: str | None
    manifest_sha256: str | None
    since_ns: int


@dataclass(frozen=True, slots=True)
class Comparison:
    agree: bool
    adapter_valid: bool
    adapter_ms: float | None
    teacher_ms: float | None


@dataclass(frozen=True, slots=True)
class Call:
    """One answered request of a task: who served it, what it cost, what the teacher would."""

    served_by: str  # teacher | adapter
    adapter_id: str | None
    cost_usd: Decimal
    teacher_cost_usd: Decimal
    latency_ms: float


class DistillStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    # -- pairs -------------------------------------------------------------
    async def add_pair(self, pair: StoredPair, retention_s: float, max_pairs: int) -> bool:
        """Store one pair; False when the task already holds ``max_pairs`` live pairs."""
        now = time.time_ns()

        def job(conn: sqlite3.Connection) -> bool:
            conn.execute("DELETE FROM distill_pairs WHERE expires_ns <= ?", (now,))
            (n,) = conn.execute(
                "SELECT COUNT(*) FROM distill_pairs WHERE task = ?", (pair.task,)
            ).fetchone()
            if int(n) >= max_pairs:
                return False
            conn.execute(
                "INSERT INTO distill_pairs (task, team, receipt_id, log_index, pair_hash,"
                " created_ns, expires_ns, sealed) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pair.task,
                    pair.team,
                    pair.receipt_id,
                    pair.log_index,
                    pair.pair_hash,
                    now,
                    now + int(retention_s * 1e9),
                    pair.sealed,
                ),
            )
            return True

        added: bool = await self.store.write(job)
        return added

    def purge_expired(self, now_ns: int | None = None) -> int:
        now = time.time_ns() if now_ns is None else now_ns

        def job(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM distill_pairs WHERE expires_ns <= ?", (now,)).rowcount

        n: int = self.store.write_sync(job)
        return n

    def pairs(self, task: str) -> list[StoredPair]:
        rows = self.store.query(
            "SELECT task, team, receipt_id, log_index, pair_hash, sealed FROM distill_pairs"
            " WHERE task = ? AND expires_ns > ? ORDER BY log_index",
            (task, time.time_ns()),
        )
        return [StoredPair(r[0], r[1], r[2], int(r[3]), r[4], bytes(r[5])) for r in rows]

    def count(self, task: str) -> int:
        rows = self.store.query(
            "SELECT COUNT(*) FROM distill_pairs WHERE task = ? AND expires_ns > ?",
            (task, time.time_ns()),
        )
        return int(rows[0][0])

    # -- promotion state ------------------------------------------------------
    def state(self, task: str) -> TaskState | None:
        rows = self.store.query(
            "SELECT task, stage, adapter_id, adapter_path, manifest_sha256, since_ns"
            " FROM distill_state WHERE task = ?",
            (task,),
        )
        if not rows:
            return None
        r = rows[0]
        return TaskState(r[0], r[1], r[2], r[3], r[4], int(r[5]))

    def set_state(self, st: TaskState) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO distill_state (task, stage, adapter_id, adapter_path,"
                " manifest_sha256, since_ns) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (task) DO UPDATE SET stage = excluded.stage,"
                " adapter_id = excluded.adapter_id, adapter_path = excluded.adapter_path,"
                " manifest_sha256 = excluded.manifest_sha256, since_ns = excluded.since_ns",
                (
                    st.task,
                    st.stage,
                    st.adapter_id,
                    st.adapter_path,
                    st.manifest_sha256,
                    st.since_ns,
                ),
            )

        self.store.write_sync(job)

    # -- comparisons ------------------------------------------------------------
    async def add_comparison(self, task: str, adapter_id: str, stage: str, c: Comparison) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO distill_comparisons (task, adapter_id, stage, agree, adapter_valid,"
                " adapter_ms, teacher_ms, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task,
                    adapter_id,
                    stage,
                    int(c.agree),
                    int(c.adapter_valid),
                    c.adapter_ms,
                    c.teacher_ms,
                    time.time_ns(),
                ),
            )

        await self.store.write(job)

    def comparisons(
        self, task: str, adapter_id: str, stage: str, since_ns: int, limit: int = 1000
    ) -> list[Comparison]:
        rows = self.store.query(
            "SELECT agree, adapter_valid, adapter_ms, teacher_ms FROM distill_comparisons"
            " WHERE task = ? AND adapter_id = ? AND stage = ? AND created_ns >= ?"
            " ORDER BY id DESC LIMIT ?",
            (task, adapter_id, stage, since_ns, limit),
        )
        return [Comparison(bool(r[0]), bool(r[1]), r[2], r[3]) for r in rows]

    # -- served calls (the savings report) ----------------------------------------
    async def add_call(self, task: str, call: Call) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO distill_calls (task, served_by, adapter_id, cost_usd,"
                " teacher_cost_usd, latency_ms, created_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    task,
                    call.served_by,
                    call.adapter_id,
                    str(call.cost_usd),
                    str(call.teacher_cost_usd),
                    call.latency_ms,
                    time.time_ns(),
                ),
            )

        await self.store.write(job)

    def calls(self, task: str) -> list[Call]:
        rows = self.store.query(
            "SELECT served_by, adapter_id, cost_usd, teacher_cost_usd, latency_ms"
            " FROM distill_calls WHERE task = ? ORDER BY id",
            (task,),
        )
        return [Call(r[0], r[1], Decimal(r[2]), Decimal(r[3]), float(r[4])) for r in rows]

    # -- overrides ----------------------------------------------------------------
    def override(self, task: str, model: str) -> str | None:
        rows = self.store.query(
            "SELECT receipt_id FROM distill_overrides WHERE task = ? AND model = ?",
            (task, model.casefold()),
        )
        return str(rows[0][0]) if rows else None

    def add_override(
        self, task: str, model: str, receipt_id: str, reason: str, operator: str
    ) -> None:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO distill_overrides (task, model, receipt_id, reason,"
                " operator, created_ns) VALUES (?, ?, ?, ?, ?, ?)",
                (task, model.casefold(), receipt_id, reason, operator, time.time_ns()),
            )

        self.store.write_sync(job)
