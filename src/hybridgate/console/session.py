"""Console sessions: opaque random tokens mapped to who signed in, with a CSRF token each.

Sessions live in memory, per app (a restart signs everyone out; replicas do
not share them). The cookie holds only the random session id; the key that
signed in is never stored in the browser or in the session.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hybridgate.keys import KeyInfo

COOKIE = "hg_console"
LOGIN_COOKIE = "hg_console_login"
IDLE_S = 8 * 3600.0
MAX_SESSIONS = 10_000


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


class Sessions:
    """A bounded, idle-expiring session table."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, idle_s: float = IDLE_S) -> None:
        self._clock = clock
        self._idle = idle_s
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def create(self, key: KeyInfo) -> Session:
        now = self._clock()
        s = Session(secrets.token_urlsafe(32), key, secrets.token_urlsafe(32), now)
        with self._lock:
            self._expire(now)
            if len(self._by_id) >= MAX_SESSIONS:  # drop the stalest rather than grow forever
                oldest = min(self._by_id.values(), key=lambda x: x.last_seen)
                del self._by_id[oldest.sid]
            self._by_id[s.sid] = s
        return s

    def get(self, sid: str | None) -> Session | None:
        if not sid or len(sid) > 128:
            return None
        now = self._clock()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            if now - s.last_seen > self._idle:
                del self._by_id[sid]
                return None
            s.last_seen = now
            return s

    def drop(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def _expire(self, now: float) -> None:
        for sid in [k for k, s in self._by_id.items() if now - s.last_seen > self._idle]:
            del self._by_id[sid]


def same_token(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))
