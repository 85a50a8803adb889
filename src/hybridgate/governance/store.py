"""What governance keeps in the shared store: documents, proposals, signatures, versions.

Thin typed reads and writes; the rules live in :mod:`hybridgate.governance.model`
and :mod:`hybridgate.governance.service`. The log, not these tables, is the
record an auditor trusts: every accepted document and applied policy is also
a signed receipt, and ``policy history --verify`` reads only the log.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from hybridgate.store.base import Migration, Store

MIGRATIONS = [
    Migration(
        "governance",
        1,
        """
        CREATE TABLE governance_docs (
            version INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            doc TEXT NOT NULL,
            receipt_id TEXT NOT NULL,
            accepted_ns INTEGER NOT NULL
        );
        CREATE TABLE policy_proposals (
            proposal_id TEXT PRIMARY KEY,
            policy TEXT NOT NULL,
            policy_hash TEXT NOT NULL,
            base_policy_hash TEXT NOT NULL,
            diff TEXT NOT NULL,
            proposer TEXT NOT NULL,
            note TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            status TEXT NOT NULL,
            applied_ns INTEGER
        );
        CREATE INDEX policy_proposals_status ON policy_proposals (status, created_ns);
        CREATE TABLE policy_signatures (
            proposal_id TEXT NOT NULL REFERENCES policy_proposals (proposal_id),
            approver TEXT NOT NULL,
            key_id TEXT NOT NULL,
            sig TEXT NOT NULL,
            signed_ns INTEGER NOT NULL,
            PRIMARY KEY (proposal_id, approver)
        );
        CREATE TABLE policy_versions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            policy_hash TEXT NOT NULL,
            policy TEXT NOT NULL,
            proposal_id TEXT,
            approval TEXT NOT NULL,
            signers TEXT NOT NULL,
            governance_hash TEXT NOT NULL,
            applied_ns INTEGER NOT NULL,
            receipt_id TEXT NOT NULL
        );
        """,
    )
]


@dataclass(frozen=True, slots=True)
class Proposal:
    proposal_id: str
    policy: dict[str, Any]
    policy_hash: str
    base_policy_hash: str
    diff: str
    proposer: str
    note: str
    created_ns: int
    status: str  # open, applied, stale
    applied_ns: int | None = None
    signatures: tuple[dict[str, Any], ...] = field(default=())

    def to_json(self, *, with_policy: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "proposal_id": self.proposal_id,
            "policy_hash": self.policy_hash,
            "base_policy_hash": self.base_policy_hash,
            "diff": self.diff,
            "proposer": self.proposer,
            "note": self.note,
            "created_ns": self.created_ns,
            "status": self.status,
            "applied_ns": self.applied_ns,
            "signatures": list(self.signatures),
        }
        if with_policy:
            out["policy"] = self.policy
        return out


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    seq: int
    policy_hash: str
    policy: dict[str, Any]
    proposal_id: str | None
    approval: str  # threshold, emergency, bootstrap
    signers: list[dict[str, Any]]
    governance_hash: str
    applied_ns: int
    receipt_id: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "policy_hash": self.policy_hash,
            "proposal_id": self.proposal_id,
            "approval": self.approval,
            "signers": self.signers,
            "governance_hash": self.governance_hash,
            "applied_ns": self.applied_ns,
            "receipt_id": self.receipt_id,
        }


_PROPOSAL_COLS = (
    "proposal_id, policy, policy_hash, base_policy_hash, diff, proposer, note, created_ns,"
    " status, applied_ns"
)
_VERSION_COLS = (
    "seq, policy_hash, policy, proposal_id, approval, signers, governance_hash, applied_ns,"
    " receipt_id"
)


class GovernanceStore:
    """Typed access to the ``governance`` tables of the shared store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    # -- governance documents ----------------------------------------------------------
    def latest_doc(self) -> tuple[dict[str, Any], str] | None:
        rows = self._store.query(
            "SELECT doc, receipt_id FROM governance_docs ORDER BY version DESC LIMIT 1"
        )
        return None if not rows else (json.loads(rows[0][0]), str(rows[0][1]))

    def add_doc(self, version: int, doc_hash: str, doc: dict[str, Any], rid: str, now: int) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO governance_docs (version, hash, doc, receipt_id, accepted_ns)"
                " VALUES (?, ?, ?, ?, ?)",
                (version, doc_hash, json.dumps(doc, sort_keys=True), rid, now),
            )

        self._store.write_sync(insert)

    # -- proposals ---------------------------------------------------------------------
    async def add_proposal(self, p: Proposal) -> None:
        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO policy_proposals ({_PROPOSAL_COLS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    p.proposal_id,
                    json.dumps(p.policy, sort_keys=True),
                    p.policy_hash,
                    p.base_policy_hash,
                    p.diff,
                    p.proposer,
                    p.note,
                    p.created_ns,
                    p.status,
                    p.applied_ns,
                ),
            )

        await self._store.write(insert)

    def _proposal(self, row: tuple[Any, ...]) -> Proposal:
        sigs = self._store.query(
            "SELECT approver, key_id, sig, signed_ns FROM policy_signatures"
            " WHERE proposal_id = ? ORDER BY signed_ns",
            (row[0],),
        )
        return Proposal(
            proposal_id=row[0],
            policy=json.loads(row[1]),
            policy_hash=row[2],
            base_policy_hash=row[3],
            diff=row[4],
            proposer=row[5],
            note=row[6],
            created_ns=int(row[7]),
            status=row[8],
            applied_ns=None if row[9] is None else int(row[9]),
            signatures=tuple(
                {"approver": a, "key_id": k, "sig": s, "signed_ns": int(t)} for a, k, s, t in sigs
            ),
        )

    def get_proposal(self, proposal_id: str) -> Proposal | None:
        rows = self._store.query(
            f"SELECT {_PROPOSAL_COLS} FROM policy_proposals WHERE proposal_id = ?", (proposal_id,)
        )
        return None if not rows else self._proposal(rows[0])

    def list_proposals(self, status: str | None, limit: int = 100) -> list[Proposal]:
        sql = f"SELECT {_PROPOSAL_COLS} FROM policy_proposals"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY created_ns DESC LIMIT ?"
        params.append(limit)
        return [self._proposal(r) for r in self._store.query(sql, params)]

    async def add_signature(
        self, proposal_id: str, approver: str, key_id: str, sig: str, now: int
    ) -> None:
        """Record (or replace) one approver's signature on an open proposal."""

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO policy_signatures (proposal_id, approver, key_id, sig, signed_ns)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (proposal_id, approver) DO UPDATE SET"
                " key_id = excluded.key_id, sig = excluded.sig, signed_ns = excluded.signed_ns",
                (proposal_id, approver, key_id, sig, now),
            )

        await self._store.write(upsert)

    # -- applied versions --------------------------------------------------------------
    def latest_version(self) -> PolicyVersion | None:
        rows = self._store.query(
            f"SELECT {_VERSION_COLS} FROM policy_versions ORDER BY seq DESC LIMIT 1"
        )
        return None if not rows else _version(rows[0])

    def versions(self, limit: int = 200) -> list[PolicyVersion]:
        rows = self._store.query(
            f"SELECT {_VERSION_COLS} FROM policy_versions ORDER BY seq DESC LIMIT ?", (limit,)
        )
        return [_version(r) for r in rows]

    def add_version_sync(self, v: PolicyVersion) -> None:
        self._store.write_sync(self._add_version_fn(v, None))

    async def add_version(self, v: PolicyVersion, applied_proposal: str | None) -> None:
        await self._store.write(self._add_version_fn(v, applied_proposal))

    def _add_version_fn(self, v: PolicyVersion, applied_proposal: str | None) -> Any:
        """A write job recording an applied version (and closing its proposal)."""

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO policy_versions (policy_hash, policy, proposal_id, approval, signers,"
                " governance_hash, applied_ns, receipt_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    v.policy_hash,
                    json.dumps(v.policy, sort_keys=True),
                    v.proposal_id,
                    v.approval,
                    json.dumps(v.signers, sort_keys=True),
                    v.governance_hash,
                    v.applied_ns,
                    v.receipt_id,
                ),
            )
            if applied_proposal is not None:
                conn.execute(
                    "UPDATE policy_proposals SET status = 'applied', applied_ns = ?"
                    " WHERE proposal_id = ?",
                    (v.applied_ns, applied_proposal),
                )
            conn.execute(
                "UPDATE policy_proposals SET status = 'stale'"
                " WHERE status = 'open' AND base_policy_hash != ?",
                (v.policy_hash,),
            )

        return insert


def _version(row: tuple[Any, ...]) -> PolicyVersion:
    return PolicyVersion(
        seq=int(row[0]),
        policy_hash=row[1],
        policy=json.loads(row[2]),
        proposal_id=row[3],
        approval=row[4],
        signers=json.loads(row[5]),
        governance_hash=row[6],
        applied_ns=int(row[7]),
        receipt_id=row[8],
    )
