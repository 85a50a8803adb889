from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from hybridgate.errors import AuthenticationError, InvalidRequest, NotFound, ServiceUnavailable
from hybridgate.keys import KeyStore
from hybridgate.store.sqlite import Migration, SQLiteStore

M = [Migration("t", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")]


def _store(tmp_path: Path, **kw: object) -> SQLiteStore:
    s = SQLiteStore(tmp_path / "g.db", **kw)  # type: ignore[arg-type]
    s.open([*M, *KeyStore.migrations()])
    return s


def test_migrations_apply_once(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.close()
    s2 = _store(tmp_path)  # re-opening must not re-run CREATE TABLE
    rows = s2.query("SELECT component, version FROM schema_migrations ORDER BY component")
    assert ("t", 1) in rows and ("keys", 1) in rows
    s2.close()


def test_group_commit_many_writers(tmp_path: Path) -> None:
    s = _store(tmp_path, commit_window_s=0.002)

    def put(i: int) -> None:
        s.write_sync(lambda c: c.execute("INSERT INTO items (v) VALUES (?)", (str(i),)))

    threads = [threading.Thread(target=put, args=(i,)) for i in range(200)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert s.query("SELECT count(*) FROM items")[0][0] == 200
    s.close()


def test_failing_job_does_not_sink_its_batch(tmp_path: Path) -> None:
    s = _store(tmp_path)

    def bad(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO items (v) VALUES (NULL)")  # NOT NULL violation

    good = s.submit(lambda c: c.execute("INSERT INTO items (v) VALUES ('ok')"))
    failed = s.submit(bad)
    good.result(5)
    with pytest.raises(sqlite3.IntegrityError):
        failed.result(5)
    assert s.query("SELECT v FROM items") == [("ok",)]
    s.close()


def test_closed_store_fails_closed(tmp_path: Path) -> None:
    s = _store(tmp_path)
    s.close()
    with pytest.raises(ServiceUnavailable):
        s.write_sync(lambda c: None)
    with pytest.raises(ServiceUnavailable):
        s.query("SELECT 1")


def test_keys_are_stored_hashed_and_authenticate(tmp_path: Path) -> None:
    s = _store(tmp_path)
    ks = KeyStore(s, pepper=b"p" * 32, admin_key="admin-secret")
    key = ks.create("research", name="bot", budget_usd=Decimal("5"))
    assert key.startswith("hg-")
    raw = (tmp_path / "g.db").read_bytes() + (tmp_path / "g.db-wal").read_bytes()
    secret = key.split("-", 2)[2]
    assert secret.encode() not in raw  # only the hash is at rest
    info = ks.authenticate(key)
    assert info.team == "research" and info.budget_usd == Decimal("5") and not info.is_admin
    assert ks.authenticate("admin-secret").is_admin
    for bad in (None, "", "hg-nope", key + "x", "hg-" + key.split("-")[1] + "-wrong", "x" * 500):
        with pytest.raises(AuthenticationError):
            ks.authenticate(bad)
    s.close()


def test_revoke_takes_effect_at_once(tmp_path: Path) -> None:
    s = _store(tmp_path)
    ks = KeyStore(s, pepper=b"p" * 32)
    key = ks.create("t1")
    key_id = key.split("-")[1]
    ks.authenticate(key)
    ks.revoke(key_id)
    with pytest.raises(AuthenticationError):
        ks.authenticate(key)
    with pytest.raises(NotFound):
        ks.revoke(key_id)
    assert ks.list()[0].revoked_ns is not None
    s.close()


def test_team_names_are_validated(tmp_path: Path) -> None:
    s = _store(tmp_path)
    ks = KeyStore(s, pepper=b"p" * 32)
    with pytest.raises(InvalidRequest):
        ks.create("bad team; drop")
    s.close()


def test_deferred_writes_ride_with_the_next_batch_or_flush_alone(tmp_path: Path) -> None:
    s = _store(tmp_path)
    deferred = s.defer(lambda c: c.execute("INSERT INTO items (v) VALUES ('deferred')"))
    # Nothing else comes: the writer still commits it within its flush interval.
    deferred.result(5)
    carried = s.defer(lambda c: c.execute("INSERT INTO items (v) VALUES ('carried')"))
    s.write_sync(lambda c: c.execute("INSERT INTO items (v) VALUES ('trigger')"))
    assert carried.done()  # it committed in the trigger's transaction
    assert sorted(v for (v,) in s.query("SELECT v FROM items")) == [
        "carried",
        "deferred",
        "trigger",
    ]
    s.close()
    with pytest.raises(ServiceUnavailable):
        s.defer(lambda c: None).result(1)
