"""The console's sign-in throttle shared by replicas through Redis (real PostgreSQL and
Redis; each test has its own database and key prefix), and what happens when Redis
cannot be reached: each replica falls back to its own bucket, never to no limit."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from asgi_harness import ADMIN_KEY
from console.replica_fixtures import Browser, replicas
from hybridgate.console.shared_throttle import SharedSignInThrottle
from hybridgate.testing.services import free_port, pg_database, redis_url, throwaway_redis

WRONG = "hg-guess-guess"


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with pg_database() as dsn:
        yield dsn


@pytest.fixture
def prefix() -> Iterator[str]:
    """A private key prefix on the shared Redis, its keys deleted afterwards."""
    p = f"hgt:{secrets.token_hex(4)}:"
    yield p
    r = redis.Redis.from_url(redis_url())
    try:
        keys = list(r.scan_iter(match=p + "*"))
        if keys:
            r.delete(*keys)
    finally:
        r.close()


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


async def _statuses(browser: Browser, tries: list[tuple[int, str]]) -> list[int]:
    return [(await browser.sign_in(replica, key)).status_code for replica, key in tries]


async def test_two_replicas_sharing_redis_allow_one_burst_per_client_address(
    tmp_path: Path, pg_dsn: str, prefix: str
) -> None:
    store = {"redis_url": redis_url(), "redis_prefix": prefix}
    console = {"signin_burst": 3, "signin_per_minute": 0.001}
    async with replicas(tmp_path, pg_dsn, store=store, console=console) as (a, b):
        guesser, other = Browser([a, b]), Browser([a, b], address="192.0.2.7")
        try:
            tries = [(0, WRONG), (1, WRONG), (0, WRONG), (1, WRONG), (0, ADMIN_KEY)]
            assert await _statuses(guesser, tries) == [401, 401, 401, 429, 429]
            r = await guesser.sign_in(1, ADMIN_KEY)
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
            assert "too many sign-in attempts" in r.text
            # another address has its own bucket, on either replica
            assert await _statuses(other, [(1, WRONG), (0, ADMIN_KEY)]) == [401, 303]
        finally:
            await guesser.aclose()
            await other.aclose()
        assert (
            "hybridgate_console_signin_throttle_fallbacks_total 0.0"
            in (await a.client.get("/metrics")).text
        )
    db = redis.Redis.from_url(redis_url())
    try:  # one bucket per address, expiring (a missing bucket is a full one)
        assert sorted(db.scan_iter(match=prefix + "signin:*")) == [
            f"{prefix}signin:127.0.0.1".encode(),
            f"{prefix}signin:192.0.2.7".encode(),
        ]
        assert db.pttl(f"{prefix}signin:127.0.0.1") > 0
    finally:
        db.close()


async def test_without_redis_each_replica_counts_alone(tmp_path: Path, pg_dsn: str) -> None:
    """The contrast: PostgreSQL without ``redis_url`` keeps a bucket per replica."""
    console = {"signin_burst": 3, "signin_per_minute": 0.001}
    async with replicas(tmp_path, pg_dsn, console=console) as (a, b):
        guesser = Browser([a, b])
        try:
            tries = [(0, WRONG), (1, WRONG)] * 3 + [(0, WRONG), (1, WRONG)]
            assert await _statuses(guesser, tries) == [401] * 6 + [429, 429]
        finally:
            await guesser.aclose()


async def test_redis_unreachable_each_replica_falls_back_to_its_own_bucket(
    tmp_path: Path, pg_dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    store = {"redis_url": closed, "redis_prefix": "hgt:closed:"}
    console = {"signin_burst": 2, "signin_per_minute": 0.001}
    caplog.set_level(logging.WARNING, "hybridgate.console")
    async with replicas(tmp_path, pg_dsn, store=store, console=console) as (a, b):
        guesser, operator = Browser([a, b]), Browser([a, b], address="192.0.2.9")
        try:
            # still a throttle: two tries on each replica, then 429, never unlimited
            tries = [(0, WRONG), (0, WRONG), (0, WRONG), (1, WRONG), (1, WRONG), (1, ADMIN_KEY)]
            assert await _statuses(guesser, tries) == [401, 401, 429, 401, 401, 429]
            # and the console stays open to an operator with the right key
            assert await _statuses(operator, [(1, ADMIN_KEY)]) == [303]
            assert (await operator.request(0, "GET", "/console")).status_code == 200
        finally:
            await guesser.aclose()
            await operator.aclose()
        metrics = (await a.client.get("/metrics")).text
        assert "hybridgate_console_signin_throttle_fallbacks_total 3.0" in metrics
    assert any("Redis unavailable" in r.getMessage() for r in caplog.records)


async def test_the_bucket_in_redis_refills_at_the_rate_and_expires(prefix: str) -> None:
    t = SharedSignInThrottle(redis_url(), 1, 6.0, prefix=prefix)  # one attempt per 10 s
    r = redis.Redis.from_url(redis_url())
    try:
        assert await t.atake("a") is None
        wait = await t.atake("a")
        assert wait is not None and 9.0 < wait <= 10.0
        assert 0 < r.pttl(t.key("a")) <= 11_000  # refilled in 10 s; expires soon after
        assert await t.atake("b") is None  # another client, another bucket
        # ten seconds on: what Redis' clock would have shown, moved back instead
        at = int(r.hget(t.key("a"), "at") or 0)
        r.hset(t.key("a"), "at", at - 10_000)
        assert await t.atake("a") is None
        assert await t.atake("a") is not None
    finally:
        r.close()
        await t.aclose()


async def test_an_outage_is_bridged_by_the_local_bucket_then_redis_is_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "hybridgate.console")
    clock, fallbacks = Clock(), []
    with throwaway_redis() as srv:
        t = SharedSignInThrottle(
            srv.dsn, 2, 0.001, retry_s=5.0, clock=clock, on_fallback=lambda: fallbacks.append(1)
        )
        try:
            assert [await t.atake("a") for _ in range(3)][:2] == [None, None]
            assert await t.atake("a") is not None and fallbacks == []
            srv.stop()
            # the replica's own bucket: a full one for "a", but still a bucket
            got = [await t.atake("a") for _ in range(3)]
            assert got[:2] == [None, None] and got[2] is not None
            assert len(fallbacks) == 3
            srv.start()  # back (empty: it keeps nothing on disk), but not asked yet
            clock.t += 4.0
            assert await t.atake("a") is not None and len(fallbacks) == 4
            clock.t += 1.0  # retry_s after the last failure: Redis again
            assert [await t.atake("a") for _ in range(3)][:2] == [None, None]
            assert await t.atake("a") is not None and len(fallbacks) == 4
        finally:
            await t.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("Redis unavailable" in m for m in messages) == 1  # once per outage
    assert sum("answers again" in m for m in messages) == 1
