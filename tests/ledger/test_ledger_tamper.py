"""Altering, deleting or reordering stored receipts: verification fails and names the index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hybridgate.ledger import audit, export_log, verify_log
from hybridgate.ledger.merkle import leaf_hash
from hybridgate.ledger.note import sign_checkpoint
from ledger.ledger_env import LedgerEnv


def _db(env: LedgerEnv) -> sqlite3.Connection:
    return sqlite3.connect(env.root / "gateway.db", isolation_level=None)


def _data(db: sqlite3.Connection, idx: int) -> bytes:
    return bytes(db.execute("SELECT data FROM ledger_entries WHERE idx = ?", (idx,)).fetchone()[0])


@pytest.fixture
def logged(env: LedgerEnv) -> LedgerEnv:
    env.fill(20)
    env.ledger.checkpoint()
    assert verify_log(env.store, env.ring.verifiers()).ok
    return env


def test_one_changed_byte_is_named(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        data = bytearray(_data(db, 7))
        pos = data.index(b'"tokens_in":17') + len(b'"tokens_in":1')
        data[pos] = ord("8")
        db.execute("UPDATE ledger_entries SET data = ? WHERE idx = 7", (bytes(data),))
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 7 and "signature" in (r.error or "")


def test_changed_signature_byte_is_named(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        data = _data(db, 3)
        db.execute(
            "UPDATE ledger_entries SET data = ? WHERE idx = 3",
            (data[:-10] + (b"A" if data[-10:-9] != b"A" else b"B") + data[-9:],),
        )
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 3


def test_deleted_receipt_is_named(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        db.execute("DELETE FROM ledger_entries WHERE idx = 11")
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 11 and "missing" in (r.error or "")


def test_deleted_last_receipt_is_named(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        db.execute("DELETE FROM ledger_entries WHERE idx = 19")
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 19


def test_swapped_receipts_are_named(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        a, b = _data(db, 4), _data(db, 9)
        db.execute("UPDATE ledger_entries SET data = ? WHERE idx = 4", (b,))
        db.execute("UPDATE ledger_entries SET data = ? WHERE idx = 9", (a,))
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 4 and "reordered" in (r.error or "")


def test_altered_stored_nodes_are_found(logged: LedgerEnv) -> None:
    with _db(logged) as db:
        db.execute("UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 2")
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and "(1, 2)" in (r.error or "")
    with _db(logged) as db:
        db.execute("UPDATE ledger_nodes SET hash = zeroblob(32) WHERE level = 0 AND idx = 5")
    r = verify_log(logged.store, logged.ring.verifiers())
    assert not r.ok and r.bad_index == 5


def test_forged_checkpoint_is_refused(logged: LedgerEnv, tmp_path: Path) -> None:
    from hybridgate.ledger import SigningKey

    mallory = SigningKey.generate(logged.ring.active.name)
    forged = sign_checkpoint(logged.config.origin, 20, b"\x00" * 32, mallory)
    r = verify_log(logged.store, logged.ring.verifiers(), checkpoint=forged)
    assert not r.ok and "checkpoint" in (r.error or "")
    honest_key_wrong_root = sign_checkpoint(
        logged.config.origin, 20, b"\x00" * 32, logged.ring.active
    )
    r = verify_log(logged.store, logged.ring.verifiers(), checkpoint=honest_key_wrong_root)
    assert not r.ok and "root" in (r.error or "")


def test_export_then_tamper_the_copy(logged: LedgerEnv, tmp_path: Path) -> None:
    out = tmp_path / "export"
    note = logged.ledger.checkpoint()
    keys = logged.ring.verifiers()
    assert export_log(logged.root / "gateway.db", out, note, keys) == 20
    assert verify_log(out, keys).ok
    lines = (out / "receipts.jsonl").read_bytes().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    (out / "receipts.jsonl").write_bytes(b"".join(lines))
    r = verify_log(out, keys)
    assert not r.ok and r.bad_index == 2
    (out / "receipts.jsonl").write_bytes(b"".join(lines[:2] + lines[4:]))
    r = verify_log(out, keys)
    assert not r.ok and r.bad_index == 2


def test_parallel_verification_names_the_same_index(
    logged: LedgerEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit, "CHUNK", 3)
    monkeypatch.setattr(audit, "PARALLEL_MIN", 6)
    keys = logged.ring.verifiers()
    good = verify_log(logged.store, keys, workers=2)
    assert good.ok and good.size == 20
    with _db(logged) as db:
        db.execute("DELETE FROM ledger_entries WHERE idx = 13")
    bad = verify_log(logged.store, keys, workers=2)
    assert not bad.ok and bad.bad_index == 13


def test_uncovered_mode_still_names_the_index(logged: LedgerEnv, tmp_path: Path) -> None:
    keys = logged.ring.verifiers()
    logged.fill(3)  # 20 covered by the checkpoint, 3 after it
    assert verify_log(logged.store, keys, signatures="uncovered").ok
    out = tmp_path / "export"
    export_log(logged.root / "gateway.db", out, logged.ledger.checkpoint(), keys)
    lines = (out / "receipts.jsonl").read_bytes().splitlines(keepends=True)
    lines[8] = lines[8].replace(b'"tokens_in":18', b'"tokens_in":19')
    (out / "receipts.jsonl").write_bytes(b"".join(lines))
    r = verify_log(out, keys, signatures="uncovered")
    assert not r.ok and r.bad_index == 8


def test_uncovered_mode_checks_signatures_after_the_checkpoint(logged: LedgerEnv) -> None:
    logged.fill(2)
    with _db(logged) as db:
        data = _data(db, 21)
        db.execute(
            "UPDATE ledger_entries SET data = ? WHERE idx = 21",
            (data.replace(b'"tokens_in":11', b'"tokens_in":12'),),
        )
        db.execute(
            "UPDATE ledger_nodes SET hash = ? WHERE level = 0 AND idx = 21",
            (leaf_hash(_data(db, 21)),),
        )
    r = verify_log(logged.store, logged.ring.verifiers(), signatures="uncovered")
    assert not r.ok and r.bad_index == 21 and "signature" in (r.error or "")
