"""Every component on both stores: the same calls, the same answers (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.accounting import BudgetManager, UsageLog
from hybridgate.accounting.usage import UsageRecord
from hybridgate.actions import ActionService
from hybridgate.actions.store import ActionStore, ApprovalRecord
from hybridgate.adapters import AdapterRegistry
from hybridgate.config import BudgetConfig, LedgerConfig
from hybridgate.conversations import ConversationStore
from hybridgate.distill.store import DistillStore
from hybridgate.errors import AuthenticationError, BudgetExceeded
from hybridgate.governance.store import GovernanceStore
from hybridgate.keys import KeyStore
from hybridgate.ledger import KeyRing, Ledger
from hybridgate.ledger.audit import verify_log
from hybridgate.ledger.receipt import verify_bundle
from hybridgate.store.base import IntegrityError, Migration, Store
from hybridgate.store.postgres import to_pg

StoreFactory = Callable[..., Store]

ALL = [
    *KeyStore.migrations(),
    *Ledger.migrations(),
    *BudgetManager.migrations(),
    *UsageLog.migrations(),
    *ActionService.migrations(),
    *AdapterRegistry.migrations(),
    *GovernanceStore.migrations(),
    *DistillStore.migrations(),
    *ConversationStore.migrations(),
]
T = [Migration("t", 1, "CREATE TABLE items (id INTEGER PRIMARY KEY, v TEXT NOT NULL, b BLOB)")]


def test_migrations_apply_once_and_resume(store_factory: StoreFactory) -> None:
    s = store_factory(ALL)
    s.close()
    s2 = store_factory([*ALL, *T])  # a new step on an existing database
    rows = s2.query("SELECT component, version FROM schema_migrations ORDER BY component")
    assert {("keys", 1), ("ledger", 1), ("budgets", 1), ("usage", 1), ("t", 1)} <= set(rows)
    assert len(rows) == len(set(rows))


def test_writes_reads_bytes_and_integrity(store_factory: StoreFactory) -> None:
    s = store_factory(T)
    s.write_sync(
        lambda c: c.execute(
            "INSERT INTO items (id, v, b) VALUES (?, ?, ?)", (1, "a%?", b"\x00\xff")
        )
    )
    assert s.query("SELECT v, b FROM items WHERE id = ?", (1,)) == [("a%?", b"\x00\xff")]
    # a literal '?' and '%' inside SQL text are not placeholders
    assert s.query("SELECT count(*) FROM items WHERE v = 'a%?'") == [(1,)]
    assert s.query("SELECT count(*) FROM items WHERE v = 'a%?' AND id = ?", (1,)) == [(1,)]
    s.write_sync(lambda c: c.execute("UPDATE items SET v = 'x%' WHERE id = 1"))
    s.write_sync(lambda c: c.execute("UPDATE items SET v = v || '%?' WHERE id = ?", (1,)))
    assert s.query("SELECT v FROM items") == [("x%%?",)]
    dup = s.submit(lambda c: c.execute("INSERT INTO items (id, v) VALUES (?, ?)", (1, "b")))
    good = s.submit(lambda c: c.execute("INSERT INTO items (id, v) VALUES (?, ?)", (2, "c")))
    with pytest.raises(sqlite3.IntegrityError):  # the store's error subclasses SQLite's
        dup.result(10)
    good.result(10)
    assert s.query("SELECT id FROM items ORDER BY id") == [(1,), (2,)]


def test_keys(store_factory: StoreFactory) -> None:
    s = store_factory(KeyStore.migrations())
    ks = KeyStore(s, pepper=b"p" * 32)
    key = ks.create("payments", name="svc", budget_usd=Decimal("12.5"))
    info = ks.authenticate(key)
    assert info.team == "payments" and info.budget_usd == Decimal("12.5")
    # a second store on the same database (another replica) sees the key
    ks2 = KeyStore(store_factory(KeyStore.migrations()), pepper=b"p" * 32)
    assert ks2.authenticate(key).key_id == info.key_id
    assert info.key_id is not None
    ks.revoke(info.key_id)
    with pytest.raises(AuthenticationError):
        ks.authenticate(key)
    # other replicas stop accepting it once their short auth cache expires; a fresh one at once
    with pytest.raises(AuthenticationError):
        KeyStore(store_factory(KeyStore.migrations()), pepper=b"p" * 32).authenticate(key)
    assert [r.key_id for r in ks.list()] == [info.key_id]


def _usage(i: int, outcome: str = "ok") -> UsageRecord:
    return UsageRecord(
        request_id=f"req{i}",
        receipt_id=f"rcpt_{i:08d}",
        time_ns=time.time_ns(),
        key_id="k1",
        team="t",
        virtual_model="vm",
        route="cheap" if i % 2 else "dear",
        provider="openai",
        location="external",
        prompt_tokens=10,
        completion_tokens=5,
        usage_reported=bool(i % 3),
        cost_usd=Decimal("0.001"),
        baseline_cost_usd=Decimal("0.003"),
        baseline_route="dear",
        latency_ms=12.5,
        outcome=outcome,
        status=200 if outcome == "ok" else 403,
    )


def test_usage_report_same_on_both(store_factory: StoreFactory) -> None:
    s = store_factory(UsageLog.migrations())
    log = UsageLog(s)
    for i in range(6):
        log.record(_usage(i, "ok" if i < 5 else "refused"))
    log.record(_usage(0))  # a duplicate request id is ignored
    s.write_sync(lambda c: None)  # flush the deferred rows
    summary = log.summary()
    assert summary["requests"] == 6 and summary["ok"] == 5 and summary["refused"] == 1
    assert summary["cost_usd"] == "0.006" and summary["saved_usd"] == "0.012"
    assert summary["tokens_counted_by_gateway"] == 2
    assert isinstance(summary["time_saved_ms"], float)
    by_route = {r["group"]: r["requests"] for r in log.report(by="route")}
    assert by_route == {"cheap": 3, "dear": 3}


def test_budgets_persist_and_reload(store_factory: StoreFactory) -> None:
    s = store_factory(BudgetManager.migrations())
    cfg = [BudgetConfig(scope="team", name="t", usd_per_day=1.0)]
    bm = BudgetManager(s, cfg)
    r = bm.reserve(key_id="k", team="t", usd=Decimal("0.6"), tokens=10)
    bm.settle(r, usd=Decimal("0.4"), tokens=8)
    bm.settle(
        bm.reserve(key_id="k", team="t", usd=Decimal("0.1"), tokens=1), usd=Decimal("0.1"), tokens=1
    )
    s.write_sync(lambda c: None)
    bm2 = BudgetManager(s, cfg)
    bm2.load()
    assert bm2.status("team", "t")["day"]["usd"] == "0.5"
    with pytest.raises(BudgetExceeded):
        bm2.reserve(key_id="k", team="t", usd=Decimal("0.6"), tokens=1)


async def test_actions_store(store_factory: StoreFactory) -> None:
    s = store_factory(ActionService.migrations())
    st_ = ActionStore(s)
    assert await st_.burn_nonce("n1", "rcpt_00000001", 1) is True
    assert await st_.burn_nonce("n1", "rcpt_00000002", 2) is False  # replay refused
    assert st_.nonce_used("n1")
    now = time.time_ns()
    rec = ApprovalRecord("ap1", "refund", "h" * 64, "agent", "t", "k", "pending", now, now + 10**9)
    await st_.add_approval(rec)
    got = st_.get_approval("ap1")
    assert got is not None and got.status == "pending"
    assert st_.expire_all_pending() == 1
    assert await st_.add_approver("alice", "pk") is True
    assert await st_.add_approver("alice", "pk2") is False
    assert st_.list_approvers() == [("alice", "pk")]


async def test_ledger_on_both(store_factory: StoreFactory, tmp_path: Path) -> None:
    s = store_factory(Ledger.migrations())
    ring = KeyRing.load_or_create(tmp_path / "keys", "test.local/log")
    cfg = LedgerConfig(origin="test.local/log")
    led = Ledger(s, ring, cfg, b"s" * 32)
    ids = [led.new_receipt_id() for _ in range(13)]
    res = await asyncio.gather(
        *(led.append(r, {"kind": "request", "n": i}) for i, r in enumerate(ids))
    )
    assert sorted(r.index for r in res) == list(range(13))
    with pytest.raises(sqlite3.IntegrityError):
        await led.append(ids[0], {"kind": "request"})
    bundle = led.bundle(ids[5])
    assert bundle is not None and verify_bundle(bundle, ring.verifiers()) is None
    assert led.consistency(3, 13)["second"] == 13
    report = verify_log(s, ring.verifiers())
    assert report.ok and report.size == 13, report.error


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ab?%'\" ", max_size=12))
def test_placeholder_translation_keeps_quoted_text(text: str) -> None:
    q = "'" + text.replace("'", "''") + "'"
    out = to_pg(f"SELECT ? , {q}")
    assert out.startswith("SELECT %s , ")
    # inside the literal, '?' survives and '%' is escaped for psycopg
    assert out.count("%s") >= 1


def _open_sqlite(path: str, q: Any) -> None:
    from hybridgate.store.sqlite import SQLiteStore

    try:
        s = SQLiteStore(path)
        s.open(ALL)
        s.close()
        q.put("ok")
    except Exception as exc:  # reported to the parent, which fails the test
        q.put(repr(exc))


def test_two_fresh_processes_migrate_once_sqlite(tmp_path: Path) -> None:
    """The race the old migrator lost: both read 'nothing applied', both CREATE TABLE."""
    ctx = mp.get_context("spawn")
    for round_ in range(3):
        path = str(tmp_path / f"race{round_}.db")
        q = ctx.Queue()
        procs = [ctx.Process(target=_open_sqlite, args=(path, q)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert sorted(q.get(timeout=5) for _ in procs) == ["ok"] * 4


def _open_pg(dsn: str, q: Any) -> None:
    from hybridgate.store.postgres import PostgresStore

    try:
        s = PostgresStore(dsn)
        s.open(ALL)
        s.close()
        q.put("ok")
    except Exception as exc:
        q.put(repr(exc))


def test_replicas_starting_together_migrate_once_postgres(pg_dsn: str) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_open_pg, args=(pg_dsn, q)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(q.get(timeout=5) for _ in procs) == ["ok"] * 4


def test_integrity_error_type() -> None:
    assert issubclass(IntegrityError, sqlite3.IntegrityError)
