"""The Ledger over a real SQLite store: appends, bundles, checkpoints, proofs, restarts."""

from __future__ import annotations

import asyncio
import base64
import copy
import sqlite3
from pathlib import Path

import pytest

from hybridgate.errors import ServiceUnavailable
from hybridgate.ledger import parse_checkpoint, verify_bundle, verify_log, verify_receipt_signature
from hybridgate.ledger.merkle import Frontier, leaf_hash, verify_consistency
from hybridgate.ledger.receipt import signed_leaf
from ledger.ledger_env import ORIGIN, LedgerEnv, request_fields


def test_append_assigns_index_time_and_key(env: LedgerEnv) -> None:
    ids = env.fill(3)
    assert env.ledger.size() == 3
    for i, rid in enumerate(ids):
        signed = env.ledger.get_receipt(rid)
        assert signed is not None
        body = signed["receipt"]
        assert body["receipt_id"] == rid and body["log_index"] == i
        assert body["gateway_key_id"] == env.ring.active.key_id
        assert isinstance(body["time_ns"], str) and body["time_ns"].isdigit()
        assert body["request_commitment"] == f"{i:064x}" and body["kind"] == "request"
        assert verify_receipt_signature(signed, env.ring.verifiers()) is None
    assert int(env.ledger.get_receipt(ids[0])["receipt"]["time_ns"]) <= int(  # type: ignore[index]
        env.ledger.get_receipt(ids[2])["receipt"]["time_ns"]  # type: ignore[index]
    )


def test_append_result_and_ids(env: LedgerEnv) -> None:
    rid = env.ledger.new_receipt_id()
    assert rid != env.ledger.new_receipt_id() and len(rid) >= 24
    res = env.ledger.append_sync(rid, request_fields())
    signed = env.ledger.get_receipt(rid)
    assert signed is not None
    assert (res.receipt_id, res.index) == (rid, 0)
    assert res.leaf_hash == leaf_hash(signed_leaf(signed)).hex()


@pytest.mark.parametrize(
    ("rid", "fields"),
    [
        ("rcpt_ok_id_1", {**request_fields(), "log_index": 5}),
        ("rcpt_ok_id_2", {**request_fields(), "receipt_id": "x"}),
        ("rcpt_ok_id_3", {**request_fields(), "time_ns": "1"}),
        ("rcpt_ok_id_4", {**request_fields(), "gateway_key_id": "00000000"}),
        ("rcpt_ok_id_5", {**request_fields(), "kind": None}),
        ("rcpt_ok_id_6", {**request_fields(), "kind": "Not A Tag"}),
        ("bad id/../x", request_fields()),
        ("short", request_fields()),
    ],
)
def test_append_rejects_what_the_log_owns(
    env: LedgerEnv, rid: str, fields: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        env.ledger.append_sync(rid, fields)
    assert env.ledger.size() == 0


def test_unrepresentable_and_duplicate_receipts_leave_the_log_intact(env: LedgerEnv) -> None:
    ids = env.fill(2)
    with pytest.raises(ValueError):
        env.ledger.append_sync("rcpt_bigint_1", request_fields(tokens_in=2**60))
    with pytest.raises(sqlite3.IntegrityError):
        env.ledger.append_sync(ids[0], request_fields())
    res = env.ledger.append_sync("rcpt_after_errors", request_fields())
    assert res.index == 2
    assert verify_log(env.store, env.ring.verifiers()).ok


async def test_concurrent_appends_group_commit(tmp_path: Path) -> None:
    env = LedgerEnv(tmp_path, commit_window_s=0.002)
    try:
        ids = [env.ledger.new_receipt_id() for _ in range(300)]
        results = await asyncio.gather(
            *(env.ledger.append(rid, request_fields(i)) for i, rid in enumerate(ids))
        )
        assert sorted(r.index for r in results) == list(range(300))
        assert {r.receipt_id for r in results} == set(ids)
        assert env.ledger.size() == 300
        report = verify_log(env.store, env.ring.verifiers())
        assert report.ok and report.checkpoint_size is None  # none issued yet
        env.ledger.checkpoint()
        assert verify_log(env.store, env.ring.verifiers()).checkpoint_size == 300
    finally:
        env.close()


def test_bundle_verifies_and_issues_covering_checkpoint(env: LedgerEnv) -> None:
    ids = env.fill(5)
    first = env.ledger.checkpoint()
    assert parse_checkpoint(first).size == 5
    more = env.fill(2)
    b = env.ledger.bundle(more[1])
    assert b is not None
    assert parse_checkpoint(b["checkpoint"]).size == 7  # issued on demand to cover it
    assert verify_bundle(b, env.ring.verifiers()) is None
    old = env.ledger.bundle(ids[0])
    assert old is not None and parse_checkpoint(old["checkpoint"]).size == 7
    assert verify_bundle(old, env.ring.verifiers()) is None
    assert env.ledger.bundle("rcpt_nonexistent") is None
    assert env.ledger.bundle("../etc/passwd") is None


def test_tampered_bundles_fail(env: LedgerEnv) -> None:
    ids = env.fill(6)
    b = env.ledger.bundle(ids[2])
    assert b is not None
    keys = env.ring.verifiers()

    def broken(mutate: object) -> str | None:
        c = copy.deepcopy(b)
        mutate(c)  # type: ignore[operator]
        return verify_bundle(c, keys)

    flipped = base64.b64encode(
        bytes([base64.b64decode(b["inclusion_proof"][0])[0] ^ 1])
        + base64.b64decode(b["inclusion_proof"][0])[1:]
    ).decode()
    assert "inclusion" in (broken(lambda c: c["inclusion_proof"].__setitem__(0, flipped)) or "")
    assert "inclusion" in (broken(lambda c: c["inclusion_proof"].pop()) or "")
    assert broken(lambda c: c["receipt"].__setitem__("cost_usd", "0")) is not None
    assert "checkpoint" in (
        broken(lambda c: c.__setitem__("checkpoint", c["checkpoint"].replace("\n6\n", "\n7\n")))
        or ""
    )
    assert broken(lambda c: c.__setitem__("log_index", 3)) is not None
    assert broken(lambda c: c.__setitem__("inclusion_proof", "x")) is not None
    assert verify_bundle(b, []) is not None
    assert verify_bundle(b, keys) is None


def test_checkpoint_reuse_and_consistency(env: LedgerEnv) -> None:
    env.fill(3)
    c3 = env.ledger.checkpoint()
    assert env.ledger.checkpoint() == c3  # not stale: the same note
    env.fill(9)
    assert env.ledger.checkpoint(issue_if_stale=False) == c3
    c12 = env.ledger.checkpoint()
    old, new = parse_checkpoint(c3), parse_checkpoint(c12)
    proof = env.ledger.consistency(3, 12)
    assert base64.b64decode(proof["first_root"]) == old.root
    assert base64.b64decode(proof["second_root"]) == new.root
    verify_consistency(3, 12, old.root, new.root, [base64.b64decode(p) for p in proof["proof"]])
    for bad in [(4, 3), (-1, 2), (0, 13)]:
        with pytest.raises(ValueError):
            env.ledger.consistency(*bad)


async def test_periodic_checkpoints(tmp_path: Path) -> None:
    env = LedgerEnv(tmp_path)
    env.ledger.config = env.config.model_copy(update={"checkpoint_interval_s": 0.02})
    try:
        await env.ledger.start()
        await env.ledger.append(env.ledger.new_receipt_id(), request_fields())
        for _ in range(200):
            latest = env.ledger.latest_checkpoint()
            if latest is not None and latest[0] == 1:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("no periodic checkpoint was issued")
        await env.ledger.append(env.ledger.new_receipt_id(), request_fields())
        await env.ledger.aclose()  # issues a final checkpoint covering the tail
        assert env.ledger.latest_checkpoint()[0] == 2  # type: ignore[index]
    finally:
        env.close()


def test_restart_resumes_the_same_tree(env: LedgerEnv) -> None:
    ids = env.fill(13)
    note = env.ledger.checkpoint()
    env.fill(4)
    frontier = env.ledger._frontier
    env.reopen()
    assert env.ledger.size() == 17 and env.ledger._frontier == frontier
    more = env.fill(3)
    assert env.ledger.get_receipt(more[0])["receipt"]["log_index"] == 17  # type: ignore[index]
    for rid in (ids[0], ids[12], more[2]):
        assert verify_bundle(env.ledger.bundle(rid), env.ring.verifiers()) is None  # type: ignore[arg-type]
    old = parse_checkpoint(note)
    new = parse_checkpoint(env.ledger.checkpoint())
    proof = env.ledger.consistency(old.size, new.size)["proof"]
    verify_consistency(old.size, new.size, old.root, new.root, [base64.b64decode(p) for p in proof])
    assert verify_log(env.store, env.ring.verifiers()).ok


def test_rotation_keeps_old_receipts_verifiable(env: LedgerEnv) -> None:
    before = env.fill(2)
    env.ledger.checkpoint()
    old_id = env.ring.active.key_id
    env.ring.rotate()
    after = env.fill(2)
    assert env.ledger.get_receipt(after[0])["signature"]["key_id"] != old_id  # type: ignore[index]
    env.reopen()
    keys = env.ring.verifiers()
    for rid in before + after:
        assert verify_bundle(env.ledger.bundle(rid), keys) is None  # type: ignore[arg-type]
    assert verify_log(env.store, keys).ok
    assert not verify_log(env.store, keys[:1]).ok  # the old key is needed for old receipts


def test_lost_commit_is_not_built_upon(env: LedgerEnv) -> None:
    """A batch whose COMMIT failed after a job advanced the frontier: the next append must
    reload from the store instead of extending receipts that were never written."""
    env.fill(5)
    env.ledger._frontier, _ = env.ledger._frontier.append(leaf_hash(b"never committed"))
    res = env.ledger.append_sync("rcpt_after_lost_commit", request_fields())
    assert res.index == 5
    assert verify_log(env.store, env.ring.verifiers()).ok
    assert env.ledger._frontier == Frontier.load(6, lambda lv, i: _node(env, lv, i))


def _node(env: LedgerEnv, level: int, idx: int) -> bytes:
    rows = env.store.query("SELECT hash FROM ledger_nodes WHERE level=? AND idx=?", (level, idx))
    return bytes(rows[0][0])


def _raw(env: LedgerEnv) -> sqlite3.Connection:
    return sqlite3.connect(env.root / "gateway.db", isolation_level=None)


def test_restart_refuses_a_tree_that_contradicts_its_checkpoint(env: LedgerEnv) -> None:
    env.fill(4)
    env.ledger.checkpoint()
    with _raw(env) as db:
        db.execute("UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 2 AND idx = 0")
    with pytest.raises(ServiceUnavailable):
        env.reopen()


def test_origin_in_checkpoints(env: LedgerEnv) -> None:
    env.fill(1)
    assert parse_checkpoint(env.ledger.checkpoint()).origin == ORIGIN


async def test_one_bad_append_in_a_batch_fails_alone(tmp_path: Path) -> None:
    env = LedgerEnv(tmp_path, commit_window_s=0.005)
    try:
        taken = env.fill(1)[0]
        rids = [env.ledger.new_receipt_id() for _ in range(40)]
        rids[17] = taken  # a reused id in the middle of a batch
        out = await asyncio.gather(
            *(env.ledger.append(r, request_fields(i)) for i, r in enumerate(rids)),
            return_exceptions=True,
        )
        assert isinstance(out[17], sqlite3.IntegrityError)
        good = [r for i, r in enumerate(out) if i != 17]
        assert sorted(r.index for r in good) == list(range(1, 40))  # type: ignore[union-attr]
        env.ledger.checkpoint()
        assert verify_log(env.store, env.ring.verifiers()).ok
    finally:
        env.close()


async def test_cancelled_caller_still_gets_its_receipt_logged(env: LedgerEnv) -> None:
    rid = env.ledger.new_receipt_id()
    task = asyncio.ensure_future(env.ledger.append(rid, request_fields()))
    await asyncio.sleep(0)
    task.cancel()
    for _ in range(200):
        if env.ledger.get_receipt(rid) is not None:
            break
        await asyncio.sleep(0.005)
    assert env.ledger.get_receipt(rid) is not None


async def test_append_after_close_fails_instead_of_hanging(env: LedgerEnv) -> None:
    env.store.close()
    with pytest.raises(ServiceUnavailable):
        await asyncio.wait_for(env.ledger.append("rcpt_after_close", request_fields()), 5)
    with pytest.raises(ServiceUnavailable):
        env.ledger.append_sync("rcpt_after_close2", request_fields(), timeout=5)
