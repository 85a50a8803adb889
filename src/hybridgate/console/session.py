"""Console sessions kept in the gateway's store, so every replica sharing it knows them.

Why the store (``console_sessions``, SQLite or PostgreSQL) and not Redis: Redis is
optional even on PostgreSQL (only rate limits need it), a session must end when its key
is revoked and the keys live in the store (one join answers both questions), and a Redis
restart would sign every user out. Console traffic is a person clicking, so one indexed
read per request is nothing beside the gateway's own writes.

What is stored is never a credential:

* the cookie holds a random 256-bit session id; the table holds only its keyed hash
  (HMAC-SHA256 under a key derived from the deployment secret), so a copy of the
  database cannot be replayed as a cookie;
* the CSRF token is derived from the session id under another derived key, so it is
  one per session, the same on every replica, and stored nowhere;
* a team session records its key id (revoking the key ends the session: the lookup
  joins ``virtual_keys``); an admin session records a keyed fingerprint of the admin
  key that opened it, so changing the admin key ends every admin session.

A session ends after :data:`IDLE_S` without a request (``last_seen_ns`` is written at
most once per :data:`TOUCH_S`, so it may end up to that much early), at sign-out, on
revocation, or when it is the stalest of more than :data:`MAX_SESSIONS`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hybridgate.keys import KeyInfo
from hybridgate.store.base import Migration, Store

COOKIE = "hg_console"
LOGIN_COOKIE = "hg_console_login"
IDLE_S = 8 * 3600.0
#: ``last_seen_ns`` is rewritten only when older than this (one write per minute of use).
TOUCH_S = 60.0
MAX_SESSIONS = 10_000
#: Longer than any id :meth:`SessionStore.create` issues; longer values are not looked up.
MAX_SID_CHARS = 128

MIGRATIONS = [
    Migration(
        "console",
        1,
        """
        CREATE TABLE console_sessions (
            sid_hash TEXT PRIMARY KEY,
            key_id TEXT,
            admin_fp TEXT,
            created_ns INTEGER NOT NULL,
            last_seen_ns INTEGER NOT NULL
        );
        CREATE INDEX console_sessions_seen ON console_sessions (last_seen_ns)
        """,
    )
]


@dataclass
class Session:
    sid: str
    key: KeyInfo
    csrf: str
    last_seen: float

    @property
    def is_admin(self) -> bool:
        return self.key.is_admin

    @property
    def who(self) -> str:
        if self.key.is_admin:
            return "admin"
        return f"team {self.key.team} (key {self.key.key_id})"


def _derive(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, b"hybridgate console " + purpose.encode(), hashlib.sha256).digest()


class SessionStore:
    """Console sessions in the shared store; every method is safe on any replica.

    ``clock`` returns wall-clock nanoseconds (replicas compare each other's times).
    """

    def __init__(
        self,
        store: Store,
        secret: bytes,
        admin_key: str | None,
        *,
        idle_s: float = IDLE_S,
        max_sessions: int = MAX_SESSIONS,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._store = store
        self._sid_key = _derive(secret, "session id")
        self._csrf_key = _derive(secret, "csrf")
        self._admin_fp = (
            None if not admin_key else self._mac(_derive(secret, "admin key"), admin_key)
        )
        self._idle_ns = int(idle_s * 1e9)
        self._touch_ns = int(min(TOUCH_S, idle_s / 2) * 1e9)
        self._max = max_sessions
        self._clock = clock

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    @staticmethod
    def _mac(key: bytes, value: str) -> str:
        return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()

    def _csrf(self, sid: str) -> str:
        mac = hmac.new(self._csrf_key, sid.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    async def create(self, key: KeyInfo) -> Session:
        """Open a session for ``key`` (committed before this returns)."""
        sid = secrets.token_urlsafe(32)
        now = self._clock()
        row = (
            self._mac(self._sid_key, sid),
            None if key.is_admin else key.key_id,
            self._admin_fp if key.is_admin else None,
            now,
            now,
        )
        idle_ns, bound = self._idle_ns, self._max

        def insert(conn: Any) -> None:
            conn.execute("DELETE FROM console_sessions WHERE last_seen_ns < ?", (now - idle_ns,))
            (n,) = conn.execute("SELECT COUNT(*) FROM console_sessions").fetchone()
            if n >= bound:  # drop the stalest rather than grow forever
                conn.execute(
                    "DELETE FROM console_sessions WHERE sid_hash IN (SELECT sid_hash"
                    " FROM console_sessions ORDER BY last_seen_ns LIMIT ?)",
                    (n - bound + 1,),
                )
            conn.execute("INSERT INTO console_sessions VALUES (?, ?, ?, ?, ?)", row)

        await self._store.write(insert)
        return Session(sid, key, self._csrf(sid), now / 1e9)

    async def get(self, sid: str | None) -> Session | None:
        """The live session ``sid`` names, or None (unknown, idle too long, key revoked)."""
        if not sid or len(sid) > MAX_SID_CHARS:
            return None
        h = self._mac(self._sid_key, sid)
        rows = await asyncio.to_thread(
            self._store.query,
            "SELECT s.key_id, s.admin_fp, s.last_seen_ns, k.team, k.name, k.budget_usd,"
            " k.revoked_ns FROM console_sessions s"
            " LEFT JOIN virtual_keys k ON k.key_id = s.key_id WHERE s.sid_hash = ?",
            (h,),
        )
        if not rows:
            return None
        key_id, admin_fp, last_seen, team, name, budget, revoked = rows[0]
        now = self._clock()
        key = self._key(key_id, admin_fp, team, name, budget, revoked)
        if key is None or now - last_seen > self._idle_ns:
            await self._delete(h)
            return None
        if now - last_seen > self._touch_ns:
            await self._store.write(
                lambda conn: conn.execute(
                    "UPDATE console_sessions SET last_seen_ns = ?"
                    " WHERE sid_hash = ? AND last_seen_ns < ?",
                    (now, h, now),
                )
            )
            last_seen = now
        return Session(sid, key, self._csrf(sid), last_seen / 1e9)

    def _key(
        self,
        key_id: str | None,
        admin_fp: str | None,
        team: str | None,
        name: str | None,
        budget: str | None,
        revoked: int | None,
    ) -> KeyInfo | None:
        """Who the session is for, if that key still may sign in."""
        if key_id is None:
            if self._admin_fp is None or not same_token(admin_fp, self._admin_fp):
                return None  # the admin key changed (or was removed) since sign-in
            return KeyInfo(key_id=None, team=None, is_admin=True, name="admin")
        if team is None or revoked is not None:
            return None  # the key was revoked (or deleted)
        return KeyInfo(
            key_id=key_id,
            team=team,
            name=name,
            budget_usd=None if budget is None else Decimal(budget),
        )

    async def drop(self, sid: str | None) -> None:
        if sid and len(sid) <= MAX_SID_CHARS:
            await self._delete(self._mac(self._sid_key, sid))

    async def _delete(self, sid_hash: str) -> None:
        await self._store.write(
            lambda conn: conn.execute(
                "DELETE FROM console_sessions WHERE sid_hash = ?", (sid_hash,)
            )
        )


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
