"""The conversation store on both stores: sealed at rest, team-scoped, chained, expiring."""

from __future__ import annotations

import time

import pytest

from hybridgate.conversations import ConversationStore, Sealer, StoredTurn
from hybridgate.errors import InvalidRequest
from hybridgate.store.base import Store
from store.conftest import StoreFactory


def _turn(rid: str, prev: str | None, team: str = "t", *, ttl_s: float = 3600) -> StoredTurn:
    now = time.time_ns()
    return StoredTurn(
        response_id=rid,
        team=team,
        key_id="k1",
        previous_id=prev,
        conversation_id="resp_1",
        created_ns=now,
        expires_ns=now + int(ttl_s * 1e9),
        confined=rid == "resp_2",
        input=[{"role": "user", "content": f"SSN 536-22-123{rid[-1]}"}],
        output=[{"type": "message", "content": [{"type": "output_text", "text": "ok"}]}],
        response={"id": rid},
    )


async def test_conversation_turns_on_both_stores(store_factory: StoreFactory) -> None:
    store: Store = store_factory(ConversationStore.migrations())
    convs = ConversationStore(store, Sealer(b"s" * 32), retention_s=3600)
    await convs.put(_turn("resp_1", None))
    await convs.put(_turn("resp_2", "resp_1"))
    await convs.put(_turn("resp_3", "resp_2"))
    chain = convs.history("resp_3", "t")
    assert [t.response_id for t in chain] == ["resp_1", "resp_2", "resp_3"]
    assert [t.confined for t in chain] == [False, True, False]
    assert chain[1].input[0]["content"] == "SSN 536-22-1232"
    # sealed at rest: the plain value is nowhere in the table
    raw = store.query("SELECT sealed FROM conversation_turns")
    assert all(b"536-22" not in bytes(r[0]) for r in raw)
    # team-scoped
    assert convs.get("resp_3", "other") is None
    with pytest.raises(InvalidRequest):
        convs.history("resp_3", "other")
    # a broken chain is refused, not replayed in part
    assert await convs.delete("resp_2", "t")
    with pytest.raises(InvalidRequest, match="resp_2"):
        convs.history("resp_3", "t")
    # expiry: unreadable at once, purged on demand
    await convs.put(_turn("resp_9", None, ttl_s=-1))
    assert convs.get("resp_9", "t") is None
    assert await convs.purge_expired() == 1
