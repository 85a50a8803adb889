"""Governance's tables on both stores (SQLite and PostgreSQL): the same calls, the same answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from hybridgate.governance.store import GovernanceStore, PolicyVersion, Proposal
from hybridgate.store.base import Store
from hybridgate.store.sqlite import SQLiteStore
from hybridgate.testing.services import pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s: Store = SQLiteStore(tmp_path / "g.db")
        s.open(GovernanceStore.migrations())
        yield s
        s.close()
        return
    from hybridgate.store.postgres import PostgresStore

    with pg_database() as dsn:
        s = PostgresStore(dsn)
        s.open(GovernanceStore.migrations())
        try:
            yield s
        finally:
            s.close()


def _proposal(pid: str, base: str) -> Proposal:
    return Proposal(
        proposal_id=pid,
        policy={"classes": {"person": "allow"}},
        policy_hash="a" * 64,
        base_policy_hash=base,
        diff="- x\n+ y\n",
        proposer="admin",
        note="n%?'",
        created_ns=int(pid[-1]),
        status="open",
    )


def _version(phash: str, proposal: str | None, rid: str) -> PolicyVersion:
    return PolicyVersion(
        0, phash, {"v": 1}, proposal, "threshold", [{"approver": "alice"}], "g" * 64, 5, rid
    )


def test_documents_proposals_signatures_and_versions(store: Store) -> None:
    gs = GovernanceStore(store)
    assert gs.latest_doc() is None and gs.latest_version() is None
    gs.add_doc(1, "h1", {"version": 1}, "rcpt_one", 1)
    gs.add_doc(2, "h2", {"version": 2}, "rcpt_two", 2)
    assert gs.latest_doc() == ({"version": 2}, "rcpt_two")

    async def run() -> None:
        await gs.add_proposal(_proposal("prop_" + "0" * 23 + "1", "b" * 64))
        await gs.add_proposal(_proposal("prop_" + "0" * 23 + "2", "c" * 64))
        pid = "prop_" + "0" * 23 + "1"
        await gs.add_signature(pid, "alice", "k1", "sig1", 10)
        await gs.add_signature(pid, "alice", "k1", "sig2", 11)  # a re-sign replaces
        await gs.add_signature(pid, "bob", "k2", "sig3", 12)
        got = gs.get_proposal(pid)
        assert got is not None and got.note == "n%?'"
        assert [(s["approver"], s["sig"]) for s in got.signatures] == [
            ("alice", "sig2"),
            ("bob", "sig3"),
        ]
        assert [p.proposal_id[-1] for p in gs.list_proposals("open")] == ["2", "1"]
        # applying one records a version and makes the other (on another base) stale
        gs.add_version_sync(_version("b" * 64, None, "rcpt_boot"))
        await gs.add_version(_version("a" * 64, pid, "rcpt_apply"), pid)

    asyncio.run(run())
    assert [v.receipt_id for v in gs.versions()] == ["rcpt_apply", "rcpt_boot"]
    latest = gs.latest_version()
    assert latest is not None and latest.seq > gs.versions()[1].seq
    assert {p.proposal_id[-1]: p.status for p in gs.list_proposals(None)} == {
        "1": "applied",
        "2": "stale",
    }
