"""Virtual API keys: shown once, stored only as a hash.

A key looks like ``hg-<key_id>-<secret>``. The id is public (it appears in
receipts and usage records); the secret is never stored: we keep
SHA-256(pepper ‖ secret) where the pepper is the deployment secret, so a
stolen database alone cannot be used to test guesses offline. Comparison is
constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from decimal import Decimal

from hybridgate.errors import AuthenticationError, InvalidRequest, NotFound
from hybridgate.store.base import Migration, Store

KEY_PREFIX = "hg-"
#: Longer than any virtual key (``hg-`` + 12 hex + ``-`` + 32 url-safe chars) with room.
MAX_KEY_CHARS = 200
#: A revocation made by another process (the CLI) takes effect within this many seconds.
CACHE_TTL_S = 2.0

MIGRATIONS = [
    Migration(
        "keys",
        1,
        """
        CREATE TABLE virtual_keys (
            key_id TEXT PRIMARY KEY,
            secret_hash TEXT NOT NULL,
            team TEXT NOT NULL,
            name TEXT,
            budget_usd TEXT,
            created_ns INTEGER NOT NULL,
            revoked_ns INTEGER
        )
        """,
    )
]


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """Who is calling. ``key_id`` is None only for the admin key."""

    key_id: str | None
    team: str | None
    budget_usd: Decimal | None = None
    is_admin: bool = False
    name: str | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    key_id: str
    team: str
    name: str | None
    budget_usd: Decimal | None
    created_ns: int
    revoked_ns: int | None


def _valid_team(team: str) -> str:
    if not team or len(team) > 64 or not all(c.isalnum() or c in "-_." for c in team):
        raise InvalidRequest("team must be 1-64 characters of letters, digits, '-', '_' or '.'")
    return team


class KeyStore:
    """Creates, checks and revokes virtual keys in the shared store.

    Lookups are cached briefly in memory per app because every request
    authenticates. A revocation through this object clears the cache at once;
    one made by another process (``hybridgate keys revoke``) is seen within
    :data:`CACHE_TTL_S`.
    """

    def __init__(self, store: Store, pepper: bytes, admin_key: str | None = None) -> None:
        self._store = store
        self._pepper = pepper
        self._admin_key = admin_key
        self._cache: dict[str, tuple[float, KeyInfo | None]] = {}
        self._max_presented = max(MAX_KEY_CHARS, len(admin_key or ""))

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    def _hash(self, secret: str) -> str:
        return hashlib.sha256(self._pepper + secret.encode("utf-8")).hexdigest()

    def create(
        self, team: str, *, name: str | None = None, budget_usd: Decimal | None = None
    ) -> str:
        """Create a key and return it; this is the only time the full key exists."""
        _valid_team(team)
        if budget_usd is not None and budget_usd < 0:
            raise InvalidRequest("budget must not be negative")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(24)
        h = self._hash(secret)

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO virtual_keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                (
                    key_id,
                    h,
                    team,
                    name,
                    None if budget_usd is None else str(budget_usd),
                    time.time_ns(),
                ),
            )

        self._store.write_sync(insert)
        return f"{KEY_PREFIX}{key_id}-{secret}"

    def list(self) -> list[KeyRecord]:
        rows = self._store.query(
            "SELECT key_id, team, name, budget_usd, created_ns, revoked_ns FROM virtual_keys"
            " ORDER BY created_ns"
        )
        return [
            KeyRecord(r[0], r[1], r[2], None if r[3] is None else Decimal(r[3]), r[4], r[5])
            for r in rows
        ]

    def revoke(self, key_id: str) -> None:
        def upd(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE virtual_keys SET revoked_ns = ? WHERE key_id = ? AND revoked_ns IS NULL",
                (time.time_ns(), key_id),
            )
            return cur.rowcount

        if self._store.write_sync(upd) == 0:
            raise NotFound(f"no active key with id {key_id}")
        self._cache.clear()

    def authenticate(self, presented: str | None) -> KeyInfo:
        """Map a presented bearer value to its key; 401 for anything else."""
        if not presented:
            raise AuthenticationError("missing API key")
        if len(presented) > self._max_presented:
            # Longer than any key this store can issue: refused before the cache,
            # so junk bearer values cannot grow memory.
            raise AuthenticationError("invalid API key")
        if self._admin_key and hmac.compare_digest(
            presented.encode("utf-8", "replace"), self._admin_key.encode("utf-8")
        ):
            return KeyInfo(key_id=None, team=None, is_admin=True, name="admin")
        now = time.monotonic()
        cached = self._cache.get(presented)
        if cached is not None and now - cached[0] < CACHE_TTL_S:
            info = cached[1]
        else:
            info = self._lookup(presented)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[presented] = (now, info)
        if info is None:
            raise AuthenticationError("invalid API key")
        return info

    def _lookup(self, presented: str) -> KeyInfo | None:
        if not presented.startswith(KEY_PREFIX) or len(presented) > MAX_KEY_CHARS:
            return None
        key_id, sep, secret = presented[len(KEY_PREFIX) :].partition("-")
        if not sep or not key_id or not secret:
            return None
        rows = self._store.query(
            "SELECT secret_hash, team, name, budget_usd, revoked_ns"
            " FROM virtual_keys WHERE key_id = ?",
            (key_id,),
        )
        if not rows:
            return None
        secret_hash, team, name, budget, revoked = rows[0]
        if revoked is not None or not hmac.compare_digest(secret_hash, self._hash(secret)):
            return None
        return KeyInfo(
            key_id=key_id,
            team=team,
            name=name,
            budget_usd=None if budget is None else Decimal(budget),
        )
