"""Shared budgets decided in batches: exact across replicas, refusals isolated, fail closed.

Each "replica" is its own :class:`SharedBudgetManager` with its own store and
connections on one real PostgreSQL (and Redis for rate limits), as replicas are."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal as D
from typing import Any

import psycopg
import pytest

from hybridgate.accounting.budgets import Reservation
from hybridgate.accounting.ratelimit import RedisRateLimiter
from hybridgate.accounting.shared_budgets import SharedBudgetManager
from hybridgate.config import BudgetConfig
from hybridgate.errors import GatewayError
from hybridgate.store.postgres import PostgresStore
from hybridgate.testing.services import free_port


@contextmanager
def replicas(
    dsn: str, budgets: list[dict[str, Any]], n: int, redis: str | None = None
) -> Iterator[list[SharedBudgetManager]]:
    prefix = f"hgt:{secrets.token_hex(4)}:"
    cfg = [BudgetConfig(**b) for b in budgets]
    with ExitStack() as stack:
        out = []
        for _ in range(n):
            store = PostgresStore(dsn, pool_size=2)
            store.open(SharedBudgetManager.migrations())
            stack.callback(store.close)
            rates = RedisRateLimiter(redis, prefix=prefix) if redis else None
            bm = SharedBudgetManager(store, cfg, rates=rates)
            bm.load()
            stack.callback(bm.close)
            out.append(bm)
        yield out


async def _reserve(bm: SharedBudgetManager, **kw: Any) -> Reservation | str:
    try:
        return await bm.areserve(**kw)
    except GatewayError as exc:
        return exc.code


def _burst(bms: list[SharedBudgetManager], per_replica: int, **kw: Any) -> list[Reservation | str]:
    async def run() -> list[Reservation | str]:
        return await asyncio.gather(
            *(_reserve(bms[i % len(bms)], **kw) for i in range(per_replica * len(bms)))
        )

    return asyncio.run(run())


def test_three_replicas_600_concurrent_reservations_budget_for_100(pg_dsn: str) -> None:
    budgets = [{"scope": "team", "name": "t", "usd_per_day": 1.0}]
    with replicas(pg_dsn, budgets, 3) as bms:
        got = _burst(bms, 200, key_id=None, team="t", usd=D("0.01"), tokens=1)
        held = [r for r in got if isinstance(r, Reservation)]
        # nothing settles during the burst, so exactly the budget's worth is held
        assert len(held) == 100
        assert [r for r in got if not isinstance(r, Reservation)] == ["budget_exceeded"] * 500
        status = bms[0].status("team", "t")["day"]
        assert status == {"usd": "0", "usd_reserved": "1", "tokens": 0, "tokens_reserved": 100}
        # the reservations were decided in batches, not one statement each
        assert sum(b.reserve_batches for b in bms) < 600
        by_id = {r.id: r for r in held}
        for bm in bms:
            for rid in list(bm._live):
                bm.settle(by_id[rid], usd=D("0.004"), tokens=1)
            bm.close()
        status = bms[0].status("team", "t")["day"]
        assert status == {"usd": "0.4", "usd_reserved": "0", "tokens": 100, "tokens_reserved": 0}


def test_a_refusal_in_a_batch_refuses_that_reservation_alone(pg_dsn: str) -> None:
    budgets = [
        {"scope": "team", "name": "small", "usd_per_day": 0.05},
        {"scope": "team", "name": "big", "tokens_per_month": 10_000},
    ]
    with replicas(pg_dsn, budgets, 1) as (bm,):

        async def run() -> list[Reservation | str]:
            asks = [
                _reserve(bm, key_id="k1", team="small", usd=D("0.02"), tokens=10),
                _reserve(bm, key_id="k2", team="big", usd=D(1), tokens=6_000),
                _reserve(bm, key_id="k1", team="small", usd=D("0.02"), tokens=10),
                _reserve(bm, key_id="k3", team="big", usd=D(1), tokens=6_000),
                _reserve(bm, key_id="k1", team="small", usd=D("0.02"), tokens=10),
                _reserve(bm, key_id="k4", team="big", usd=D(2), tokens=1, key_budget_usd=D("1.5")),
            ]
            return await asyncio.gather(*asks)

        a, b, c, d, e, f = asyncio.run(run())
        assert isinstance(a, Reservation) and isinstance(c, Reservation)
        assert isinstance(b, Reservation)
        assert d == "budget_exceeded"  # 12,000 tokens would cross big's 10,000 a month
        assert e == "budget_exceeded"  # $0.06 would cross small's $0.05 a day
        assert f == "budget_exceeded"  # $2 would cross k4's lifetime cap of $1.50
        assert bm.status("team", "small")["day"]["usd_reserved"] == "0.04"
        assert bm.status("team", "big")["month"]["tokens_reserved"] == 6_000
        assert bm.status("key", "k4")["lifetime"]["usd_reserved"] == "0"
        with pytest.raises(GatewayError, match=r"tokens_per_month limit 10000"):
            bm.reserve(key_id="k5", team="big", usd=D(0), tokens=4_001)
        with pytest.raises(GatewayError, match=r"lifetime budget \$1.5"):
            bm.reserve(key_id="k4", team=None, usd=D(2), tokens=0, key_budget_usd=D("1.5"))


def test_rate_limits_exact_across_replicas_in_pipelined_batches(pg_dsn: str, redis: str) -> None:
    budgets = [{"scope": "key", "name": "k", "requests_per_minute": 60}]
    with replicas(pg_dsn, budgets, 3, redis) as bms:
        got = _burst(bms, 50, key_id="k", team=None, usd=D(0), tokens=1)
        assert sum(isinstance(r, Reservation) for r in got) == 60
        assert [r for r in got if isinstance(r, str)] == ["rate_limited"] * 90


def test_unreachable_postgres_refuses_budgeted_keys_only(pg_dsn: str) -> None:
    budgets = [{"scope": "team", "name": "t", "usd_per_day": 1.0}]
    with replicas(pg_dsn, budgets, 1) as (bm,):
        # the same manager, its store now pointing at a port nothing listens on
        bm._store.dsn = f"postgresql://127.0.0.1:{free_port()}/test"
        bm._reserver.stop(5)  # drop its live connection: the next batch reconnects
        before = bm.reserve_batches
        got = _burst([bm], 3, key_id=None, team="t", usd=D("0.01"), tokens=1)
        assert got == ["budget_unavailable"] * 3
        tried = bm.reserve_batches
        assert tried > before
        free = _burst([bm], 3, key_id="k", team="other", usd=D("0.01"), tokens=1)
        assert all(isinstance(r, Reservation) for r in free)
        assert bm.reserve_batches == tried  # no limit applies: PostgreSQL is not asked


def test_an_abandoned_reservation_is_released(pg_dsn: str) -> None:
    budgets = [{"scope": "team", "name": "t", "usd_per_day": 1.0}]
    with replicas(pg_dsn, budgets, 1) as (bm,):
        # another session holds the budget table: the first batch waits inside PostgreSQL
        blocker = psycopg.connect(pg_dsn)
        blocker.execute("LOCK TABLE budget_spend IN EXCLUSIVE MODE")

        async def run() -> list[Any]:
            tasks = [
                asyncio.create_task(bm.areserve(key_id=None, team="t", usd=D("0.1"), tokens=1))
                for _ in range(20)
            ]
            for _ in range(3000):  # until a batch is running (bounded)
                if bm.reserve_batches:
                    break
                await asyncio.sleep(0.01)
            assert bm.reserve_batches == 1
            for t in tasks:  # the clients leave while their holds are being taken
                t.cancel()
            out = await asyncio.gather(*tasks, return_exceptions=True)
            blocker.rollback()  # the batch now commits its holds, for nobody
            return out

        got = asyncio.run(run())
        assert all(isinstance(r, asyncio.CancelledError) for r in got)
        assert bm.outstanding == 0
        bm.close()  # whatever the batch held for the cancelled requests is released
        day = bm.status("team", "t")["day"]
        assert day["usd_reserved"] == "0" and day["usd"] == "0"
        blocker.close()


def test_settles_gathered_into_few_statements_and_every_spend_counted(pg_dsn: str) -> None:
    budgets = [{"scope": "team", "name": "t", "usd_per_day": 100.0}]
    with replicas(pg_dsn, budgets, 1) as (bm,):
        held = [bm.reserve(key_id=None, team="t", usd=D("0.5"), tokens=10) for _ in range(40)]
        for res in held:  # a millisecond apart, as requests finishing one after another
            bm.settle(res, usd=D("0.25"), tokens=7)
            time.sleep(0.001)
        for _ in range(500):  # bounded wait for the settle thread to commit
            day = bm.status("team", "t")["day"]
            if day["usd_reserved"] == "0":
                break
            time.sleep(0.01)
        assert day["usd"] == "10"  # 40 x $0.25, each once
        assert day["tokens"] == 280
        assert day["usd_reserved"] == "0"
        # gathered: a statement per 10 ms window (about 5 here), not one per settle (40)
        assert 1 <= bm.settle_batches <= 12
