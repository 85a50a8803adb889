"""Console sessions on both stores: what is stored, idle expiry, the bound, revocation.

Two :class:`SessionStore` objects on one database stand for two replicas; a
hand-driven clock stands for time passing.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

from hybridgate.console.session import IDLE_S, TOUCH_S, SessionStore
from hybridgate.keys import KeyInfo, KeyStore
from hybridgate.store.base import Store

StoreFactory = Callable[..., Store]

SECRET = secrets.token_bytes(32)
ADMIN = "admin-key-for-console-sessions"
ADMIN_INFO = KeyInfo(key_id=None, team=None, is_admin=True, name="admin")


class Clock:
    def __init__(self) -> None:
        self.ns = 1_700_000_000 * 10**9

    def __call__(self) -> int:
        return self.ns

    def advance(self, seconds: float) -> None:
        self.ns += int(seconds * 1e9)


def _open(store_factory: StoreFactory) -> tuple[KeyStore, SessionStore, SessionStore, Clock]:
    store = store_factory([*KeyStore.migrations(), *SessionStore.migrations()])
    clock = Clock()
    a = SessionStore(store, SECRET, ADMIN, clock=clock)
    b = SessionStore(store_factory([]), SECRET, ADMIN, clock=clock)
    return KeyStore(store, pepper=SECRET), a, b, clock


async def test_a_session_opened_on_one_store_object_is_known_to_another(
    store_factory: StoreFactory,
) -> None:
    keys, a, b, _ = _open(store_factory)
    team_key = keys.create("payments", name="ci")
    info = keys.authenticate(team_key)
    s = await a.create(info)
    seen = await b.get(s.sid)
    assert seen is not None and seen.key == info and seen.csrf == s.csrf and not seen.is_admin
    other = await a.create(info)
    assert other.sid != s.sid and other.csrf != s.csrf  # one CSRF token per session
    admin = await b.create(ADMIN_INFO)
    got = await a.get(admin.sid)
    assert got is not None and got.is_admin and got.who == "admin"
    assert await a.get("not-a-session") is None and await a.get("x" * 500) is None
    assert await a.get(None) is None


async def test_only_a_keyed_hash_of_the_session_id_is_stored(
    store_factory: StoreFactory,
) -> None:
    keys, a, _, _ = _open(store_factory)
    s = await a.create(keys.authenticate(keys.create("payments")))
    rows = store_factory([]).query("SELECT * FROM console_sessions")
    assert len(rows) == 1
    stored = " ".join(str(v) for v in rows[0])
    assert s.sid not in stored and s.csrf not in stored
    # a store object under another deployment secret cannot use the cookie
    foreign = SessionStore(store_factory([]), secrets.token_bytes(32), ADMIN)
    assert await foreign.get(s.sid) is None
    assert await a.get(s.sid) is not None


async def test_idle_sessions_end_and_use_keeps_them_alive(store_factory: StoreFactory) -> None:
    keys, a, b, clock = _open(store_factory)
    info = keys.authenticate(keys.create("payments"))
    kept, idle = await a.create(info), await a.create(info)
    for _ in range(3):  # used every 3 hours for 9 hours: still alive
        clock.advance(3 * 3600)
        assert await b.get(kept.sid) is not None
    assert await a.get(idle.sid) is None  # 9 idle hours > 8
    clock.advance(IDLE_S - TOUCH_S - 1)  # just under the idle limit, allowing one touch
    assert await a.get(kept.sid) is not None
    clock.advance(IDLE_S + 1)
    assert await b.get(kept.sid) is None
    assert store_factory([]).query("SELECT COUNT(*) FROM console_sessions")[0][0] == 0


async def test_sessions_are_bounded_the_stalest_go_first(store_factory: StoreFactory) -> None:
    keys = KeyStore(
        store_factory([*KeyStore.migrations(), *SessionStore.migrations()]), pepper=SECRET
    )
    clock = Clock()
    small = SessionStore(store_factory([]), SECRET, ADMIN, max_sessions=3, clock=clock)
    info = keys.authenticate(keys.create("payments"))
    opened = []
    for _ in range(5):
        opened.append(await small.create(info))
        clock.advance(TOUCH_S + 1)
    assert await small.get(opened[1].sid) is None  # the stalest of the first four went
    assert await small.get(opened[0].sid) is None
    assert [await small.get(s.sid) is not None for s in opened[2:]] == [True] * 3
    assert store_factory([]).query("SELECT COUNT(*) FROM console_sessions")[0][0] == 3


async def test_revocation_sign_out_and_a_new_admin_key_end_sessions(
    store_factory: StoreFactory,
) -> None:
    keys, a, b, _ = _open(store_factory)
    team_key = keys.create("payments")
    team = await a.create(keys.authenticate(team_key))
    admin = await a.create(ADMIN_INFO)
    out = await a.create(ADMIN_INFO)
    keys.revoke(team_key.split("-")[1])
    assert await b.get(team.sid) is None
    await b.drop(out.sid)
    assert await a.get(out.sid) is None
    assert await a.get(admin.sid) is not None
    rotated = SessionStore(store_factory([]), SECRET, "a-new-admin-key")
    assert await rotated.get(admin.sid) is None
    no_admin = SessionStore(store_factory([]), SECRET, None)
    assert await no_admin.get((await a.create(ADMIN_INFO)).sid) is None
