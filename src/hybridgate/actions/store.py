"""What the action gate keeps in the shared store: used nonces, approvals, approvers.

Nonce use is a row under a primary key, written through the store's durable
group commit *before* an action is forwarded, so a receipt can be spent once
only, across restarts and racing requests alike (the database, not a Python
set, decides who wins). Approval rows hold metadata and the parameter hash,
never the parameters themselves: those stay in memory while a person looks
at them and are gone with the process.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hybridgate.store.base import Migration, Store, WriteFn

ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]

MIGRATIONS = [
    Migration(
        "actions",
        1,
        """
        CREATE TABLE action_nonces (
            nonce TEXT PRIMARY KEY,
            receipt_id TEXT NOT NULL,
            used_ns INTEGER NOT NULL
        );
        CREATE TABLE action_approvals (
            approval_id TEXT PRIMARY KEY,
            action TEXT NOT NULL,
            params_hash TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            team TEXT,
            key_id TEXT,
            status TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            expires_ns INTEGER NOT NULL,
            decided_ns INTEGER,
            approver TEXT,
            approver_key_id TEXT,
            decision_receipt_id TEXT
        );
        CREATE INDEX action_approvals_status ON action_approvals (status, created_ns);
        CREATE TABLE action_approvers (
            name TEXT PRIMARY KEY,
            public_key TEXT NOT NULL,
            created_ns INTEGER NOT NULL
        )
        """,
    )
]

_APPROVAL_COLUMNS = (
    "approval_id, action, params_hash, agent_id, team, key_id, status, created_ns,"
    " expires_ns, decided_ns, approver, approver_key_id, decision_receipt_id"
)


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    approval_id: str
    action: str
    params_hash: str
    agent_id: str
    team: str | None
    key_id: str | None
    status: str
    created_ns: int
    expires_ns: int
    decided_ns: int | None = None
    approver: str | None = None
    approver_key_id: str | None = None
    decision_receipt_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class ActionStore:
    """Typed reads and writes over the ``actions`` tables of the shared store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _write(self, fn: WriteFn) -> Any:
        """A durable write that a cancelled request cannot abandon half way.

        Shielded because the caller's cancellation (a client hanging up) must
        neither leave a nonce's fate unknown nor cancel a job the store's
        writer thread may already be running.
        """
        return await asyncio.shield(self._store.write(fn))

    # -- nonces ------------------------------------------------------------
    async def burn_nonce(self, nonce: str, receipt_id: str, now_ns: int) -> bool:
        """Record a nonce as used; False when it already was (durable either way on return)."""

        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    "INSERT INTO action_nonces (nonce, receipt_id, used_ns) VALUES (?, ?, ?)",
                    (nonce, receipt_id, now_ns),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        return bool(await self._write(insert))

    def nonce_used(self, nonce: str) -> bool:
        return bool(self._store.query("SELECT 1 FROM action_nonces WHERE nonce = ?", (nonce,)))

    # -- approvals ---------------------------------------------------------
    async def add_approval(self, rec: ApprovalRecord) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO action_approvals ({_APPROVAL_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rec.approval_id,
                    rec.action,
                    rec.params_hash,
                    rec.agent_id,
                    rec.team,
                    rec.key_id,
                    rec.status,
                    rec.created_ns,
                    rec.expires_ns,
                    rec.decided_ns,
                    rec.approver,
                    rec.approver_key_id,
                    rec.decision_receipt_id,
                ),
            )

        await self._write(insert)

    def _finish_fn(
        self,
        approval_id: str,
        status: ApprovalStatus,
        approver: str | None,
        approver_key_id: str | None,
        receipt_id: str | None,
    ) -> Any:
        def update(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE action_approvals SET status = ?, decided_ns = ?, approver = ?,"
                " approver_key_id = ?, decision_receipt_id = ?"
                " WHERE approval_id = ? AND status = 'pending'",
                (status, time.time_ns(), approver, approver_key_id, receipt_id, approval_id),
            )
            return cur.rowcount

        return update

    async def finish_approval(
        self,
        approval_id: str,
        status: ApprovalStatus,
        *,
        approver: str | None = None,
        approver_key_id: str | None = None,
        receipt_id: str | None = None,
    ) -> bool:
        """Move a pending approval to its final status; False if it was not pending."""
        fn = self._finish_fn(approval_id, status, approver, approver_key_id, receipt_id)
        return bool(await self._write(fn))

    def finish_approval_nowait(self, approval_id: str, status: ApprovalStatus) -> None:
        """Queue the final status without waiting: used while a held request is cancelled."""
        self._store.submit(self._finish_fn(approval_id, status, None, None, None))

    def expire_all_pending(self) -> int:
        """Expire approvals left pending by a previous process: their waiters are gone."""

        def update(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE action_approvals SET status = 'expired', decided_ns = ?"
                " WHERE status = 'pending'",
                (time.time_ns(),),
            )
            return cur.rowcount

        return int(self._store.write_sync(update))

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        rows = self._store.query(
            f"SELECT {_APPROVAL_COLUMNS} FROM action_approvals WHERE approval_id = ?",
            (approval_id,),
        )
        return ApprovalRecord(*rows[0]) if rows else None

    def list_approvals(self, status: str | None = None, limit: int = 100) -> list[ApprovalRecord]:
        if status is None:
            rows = self._store.query(
                f"SELECT {_APPROVAL_COLUMNS} FROM action_approvals"
                " ORDER BY created_ns DESC LIMIT ?",
                (limit,),
            )
        else:
            rows = self._store.query(
                f"SELECT {_APPROVAL_COLUMNS} FROM action_approvals WHERE status = ?"
                " ORDER BY created_ns DESC LIMIT ?",
                (status, limit),
            )
        return [ApprovalRecord(*r) for r in rows]

    # -- approvers -----------------------------------------------------------
    async def add_approver(self, name: str, public_key: str) -> bool:
        """Register a key under a new name; False when the name is taken (never overwritten)."""

        def insert(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    "INSERT INTO action_approvers (name, public_key, created_ns) VALUES (?, ?, ?)",
                    (name, public_key, time.time_ns()),
                )
            except sqlite3.IntegrityError:
                return False
            return True

        return bool(await self._write(insert))

    async def remove_approver(self, name: str) -> bool:
        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM action_approvers WHERE name = ?", (name,)).rowcount

        return bool(await self._write(delete))

    def get_approver(self, name: str) -> str | None:
        rows = self._store.query("SELECT public_key FROM action_approvers WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else None

    def list_approvers(self) -> list[tuple[str, str]]:
        rows = self._store.query("SELECT name, public_key FROM action_approvers ORDER BY name")
        return [(str(r[0]), str(r[1])) for r in rows]
