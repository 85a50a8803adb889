"""Where conversation turns live: one table, sealed payloads, team-scoped reads.

All storage access for conversations is in this module (a store backend
ports these few statements). A turn is readable as soon as :meth:`put`
returns: the write is durable before the answer leaves the gateway, so a
client may continue the conversation at once.

Each row holds one turn (its input items, output items and the ``response``
object); :meth:`history` follows ``previous_id`` links back to the first
turn. ``confined`` remembers that some turn of the conversation was confined
to on-prem routes, so later turns stay there even if the sensitive value no
longer appears verbatim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from hybridgate.conversations.sealing import Sealer
from hybridgate.errors import InvalidRequest
from hybridgate.store.base import Conn, Migration, Store

#: A conversation longer than this many turns is refused rather than replayed.
MAX_TURNS = 1000

_MIGRATIONS = [
    Migration(
        component="conversations",
        version=1,
        sql="""
        CREATE TABLE conversation_turns (
            response_id TEXT PRIMARY KEY,
            team TEXT NOT NULL,
            key_id TEXT NOT NULL,
            previous_id TEXT,
            conversation_id TEXT NOT NULL,
            created_ns INTEGER NOT NULL,
            expires_ns INTEGER NOT NULL,
            confined INTEGER NOT NULL DEFAULT 0,
            sealed BLOB NOT NULL
        );
        CREATE INDEX conversation_turns_expiry ON conversation_turns (expires_ns);
        """,
    )
]


@dataclass(frozen=True)
class StoredTurn:
    response_id: str
    team: str
    key_id: str
    previous_id: str | None
    #: the id of the conversation's first response: names the conversation in receipts
    conversation_id: str
    created_ns: int
    expires_ns: int
    confined: bool
    input: list[Any] = field(default_factory=list)
    output: list[Any] = field(default_factory=list)
    response: dict[str, Any] = field(default_factory=dict)


class ConversationStore:
    def __init__(self, store: Store, sealer: Sealer, retention_s: float) -> None:
        self._store = store
        self._sealer = sealer
        self.retention_s = retention_s

    @staticmethod
    def migrations() -> list[Migration]:
        return list(_MIGRATIONS)

    def expiry(self, now_ns: int | None = None) -> int:
        return (now_ns if now_ns is not None else time.time_ns()) + int(self.retention_s * 1e9)

    async def put(self, turn: StoredTurn) -> None:
        sealed = self._sealer.seal(
            turn.response_id,
            turn.team,
            {"input": turn.input, "output": turn.output, "response": turn.response},
        )
        row = (
            turn.response_id,
            turn.team,
            turn.key_id,
            turn.previous_id,
            turn.conversation_id,
            turn.created_ns,
            turn.expires_ns,
            1 if turn.confined else 0,
            sealed,
        )

        def write(conn: Conn) -> None:
            conn.execute("INSERT INTO conversation_turns VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", row)

        await self._store.write(write)

    def get(self, response_id: str, team: str, now_ns: int | None = None) -> StoredTurn | None:
        """The turn, or None when it is unknown, expired or another team's."""
        now = now_ns if now_ns is not None else time.time_ns()
        rows = self._store.query(
            "SELECT response_id, team, key_id, previous_id, conversation_id, created_ns,"
            " expires_ns, confined, sealed FROM conversation_turns"
            " WHERE response_id = ? AND team = ? AND expires_ns > ?",
            (response_id, team, now),
        )
        if not rows:
            return None
        r = rows[0]
        payload = self._sealer.open(r[0], r[1], bytes(r[8]))
        return StoredTurn(
            response_id=r[0],
            team=r[1],
            key_id=r[2],
            previous_id=r[3],
            conversation_id=r[4],
            created_ns=int(r[5]),
            expires_ns=int(r[6]),
            confined=bool(r[7]),
            input=list(payload.get("input") or []),
            output=list(payload.get("output") or []),
            response=dict(payload.get("response") or {}),
        )

    def history(self, response_id: str, team: str) -> list[StoredTurn]:
        """Every turn up to and including ``response_id``, oldest first.

        Raises :class:`InvalidRequest` when the id (or a turn it links to) is
        unknown to this team, so a broken chain is never replayed partially.
        """
        now = time.time_ns()
        turns: list[StoredTurn] = []
        cursor: str | None = response_id
        while cursor is not None:
            if len(turns) >= MAX_TURNS:
                raise InvalidRequest(
                    f"conversation is longer than {MAX_TURNS} turns", param="previous_response_id"
                )
            turn = self.get(cursor, team, now)
            if turn is None:
                raise InvalidRequest(
                    f"previous response {cursor!r} not found (unknown, expired, deleted, "
                    "or stored by another team)",
                    param="previous_response_id",
                    code="previous_response_not_found",
                )
            turns.append(turn)
            cursor = turn.previous_id
        turns.reverse()
        return turns

    async def delete(self, response_id: str, team: str) -> bool:
        def write(conn: Conn) -> int:
            cur = conn.execute(
                "DELETE FROM conversation_turns WHERE response_id = ? AND team = ?",
                (response_id, team),
            )
            return int(cur.rowcount)

        return bool(await self._store.write(write))

    async def purge_expired(self, now_ns: int | None = None) -> int:
        now = now_ns if now_ns is not None else time.time_ns()

        def write(conn: Conn) -> int:
            cur = conn.execute("DELETE FROM conversation_turns WHERE expires_ns <= ?", (now,))
            return int(cur.rowcount)

        return int(await self._store.write(write))
