"""The flywheel's tables (pairs, promotion state, comparisons, calls, overrides) and its
event history on both stores: the SQL the distill components write is the SQL both run."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hybridgate.config import LedgerConfig
from hybridgate.distill.events import EVENT_KIND
from hybridgate.distill.provenance import PendingReceipts, covering_bundles, proved_index
from hybridgate.distill.report import history
from hybridgate.distill.store import Call, Comparison, DistillStore, StoredPair, TaskState
from hybridgate.ledger import KeyRing, Ledger, verify_bundle
from hybridgate.ledger.ledger import StaleCheckpoint
from hybridgate.ledger.shared import SharedLedger
from hybridgate.store.base import Store

StoreFactory = Callable[..., Store]


def _open(store_factory: StoreFactory) -> DistillStore:
    return DistillStore(store_factory([*Ledger.migrations(), *DistillStore.migrations()]))


def _pair(task: str, n: int, sealed: bytes = b"\x00sealed\xff") -> StoredPair:
    return StoredPair(task, "support", f"rcpt_{task}_{n}", n, f"hash{n}", sealed)


async def test_pairs_are_numbered_bounded_and_expire(store_factory: StoreFactory) -> None:
    ds = _open(store_factory)
    for n in (3, 1, 2):
        assert await ds.add_pair(_pair("triage", n, bytes([n, 0, 255])), 3600, max_pairs=3)
    assert not await ds.add_pair(_pair("triage", 4), 3600, max_pairs=3)  # the task is full
    assert await ds.add_pair(_pair("other", 9), 3600, max_pairs=3)  # per task
    got = ds.pairs("triage")
    assert [p.log_index for p in got] == [1, 2, 3]  # in log order
    assert got[0] == StoredPair("triage", "support", "rcpt_triage_1", 1, "hash1", b"\x01\x00\xff")
    assert ds.count("triage") == 3 and ds.count("other") == 1 and ds.count("none") == 0
    ids = ds.store.query("SELECT id FROM distill_pairs ORDER BY id")
    assert len({r[0] for r in ids}) == 4  # every row got its own id
    assert ds.purge_expired(time.time_ns() + 7200 * 10**9) == 4
    assert ds.pairs("triage") == [] and ds.count("other") == 0
    assert await ds.add_pair(_pair("triage", 5), 0, max_pairs=3)  # retention 0: gone at once
    assert ds.count("triage") == 0


async def test_state_comparisons_calls_and_overrides(store_factory: StoreFactory) -> None:
    ds = _open(store_factory)
    assert ds.state("triage") is None
    ds.set_state(TaskState("triage", "shadow", "ad1", "/a/1", "sha", 10))
    ds.set_state(TaskState("triage", "canary", "ad1", "/a/1", "sha", 20))  # upsert
    assert ds.state("triage") == TaskState("triage", "canary", "ad1", "/a/1", "sha", 20)
    since = time.time_ns() - 10**9
    for i in range(4):
        await ds.add_comparison("triage", "ad1", "shadow", Comparison(i % 2 == 0, True, 1.5, None))
    await ds.add_comparison("triage", "ad2", "shadow", Comparison(True, False, None, 2.0))
    got = ds.comparisons("triage", "ad1", "shadow", since, limit=3)
    assert [c.agree for c in got] == [False, True, False]  # newest first
    assert got[0] == Comparison(False, True, 1.5, None)
    assert ds.comparisons("triage", "ad2", "shadow", since) == [Comparison(True, False, None, 2.0)]
    assert ds.comparisons("triage", "ad1", "canary", since) == []
    teacher = Call("teacher", None, Decimal("0.0125"), Decimal("0.0125"), 12.5)
    adapter = Call("adapter", "ad1", Decimal("0.0001"), Decimal("0.0125"), 3.25)
    await ds.add_call("triage", teacher)
    await ds.add_call("triage", adapter)
    assert ds.calls("triage") == [teacher, adapter] and ds.calls("other") == []
    assert ds.override("triage", "GPT-4o") is None
    ds.add_override("triage", "GPT-4o", "rcpt_a", "agreement 4", "ops@example.org")
    ds.add_override("triage", "gpt-4o", "rcpt_b", "agreement 5", "ops@example.org")  # replaces
    assert ds.override("triage", "gpt-4o") == "rcpt_b"
    assert ds.store.query("SELECT COUNT(*) FROM distill_overrides")[0][0] == 1


async def test_history_reads_the_tasks_events_from_the_log(store_factory: StoreFactory) -> None:
    ds = _open(store_factory)
    bodies: list[dict[str, Any]] = [
        {"kind": EVENT_KIND, "task": "triage", "event": "registered"},
        {"kind": "request", "task": "triage"},
        {"kind": EVENT_KIND, "task": "other", "event": "registered"},
        {"kind": EVENT_KIND, "task": "triage", "event": "promoted"},
    ]

    def insert(conn: Any) -> None:
        for i, body in enumerate(bodies):
            data = json.dumps({"receipt": body}).encode()
            conn.execute("INSERT INTO ledger_entries VALUES (?, ?, ?)", (i, f"rcpt_{i}", data))

    ds.store.write_sync(insert)
    assert [e["event"] for e in history(ds.store, "triage")] == ["registered", "promoted"]
    assert [e["event"] for e in history(ds.store, "triage", limit=1)] == ["promoted"]


async def test_a_pair_captured_on_the_shared_log_takes_its_index_once_merged(
    store_factory: StoreFactory,
) -> None:
    ds = _open(store_factory)
    for n in (1, 2):  # captured before the sequencer merged their receipts: no index yet
        pair = StoredPair("triage", None, f"rcpt_q{n}", -1, f"h{n}", b"sealed")
        assert await ds.add_pair(pair, 3600, max_pairs=10)
    assert [p.index for p in ds.pairs("triage")] == [None, None]
    ds.store.write_sync(
        lambda conn: conn.execute(
            "INSERT INTO ledger_entries VALUES (?, ?, ?)", (7, "rcpt_q2", b"{}")
        )
    )
    got = ds.pairs("triage")
    assert [(p.receipt_id, p.log_index, p.index) for p in got] == [
        ("rcpt_q2", -1, 7),  # merged: ordered by its place in the log
        ("rcpt_q1", -1, None),  # still queued: last, and left out of datasets
    ]


def test_provenance_cites_only_indices_its_proofs_verify(
    store_factory: StoreFactory, store_kind: str, tmp_path: Path
) -> None:
    """SQLite indexes a receipt when it signs it. The shared log merges it later: until
    then covering the receipt names it as pending instead of citing an index."""
    shared = store_kind == "postgres"
    s = store_factory(SharedLedger.migrations() if shared else Ledger.migrations())
    ring = KeyRing.load_or_create(tmp_path / "keys", "test.local/log")
    cfg = LedgerConfig(origin="test.local/log")
    led = SharedLedger(s, ring, cfg, b"s" * 32) if shared else Ledger(s, ring, cfg, b"s" * 32)  # type: ignore[arg-type]

    def append() -> str:
        rid = led.new_receipt_id()
        led.append_sync(rid, {"kind": "request"})
        return rid

    try:
        ids = [append(), append()]
        if shared:
            assert led.sequencer.step() == 2  # type: ignore[attr-defined]
        first, _ = covering_bundles(led, ids)
        ids.append(append())
        if shared:  # the third is durable and signed, but has no place in the tree yet
            with pytest.raises(PendingReceipts) as got:
                covering_bundles(led, ids)
            assert got.value.receipt_ids == [ids[2]] and "still queued" in str(got.value)
            assert led.prove(ids[2], first) is None
            assert led.sequencer.step() == 1  # type: ignore[attr-defined]
        note, bundles = covering_bundles(led, ids)
        assert [proved_index(b) for b in bundles] == [0, 1, 2]
        assert all(
            b["checkpoint"] == note and verify_bundle(b, ring.verifiers()) is None for b in bundles
        )
        assert ("log_index" in bundles[2]["receipt"]) is not shared  # the shared log signs no index
        with pytest.raises(StaleCheckpoint):  # a checkpoint from before it proves nothing of it
            led.prove(ids[2], first)
    finally:
        if shared:
            led.sequencer._drop()  # type: ignore[attr-defined]
