"""Budgets and rate limits: periods, windows, caps, the concurrent race, restarts."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hybridgate.accounting import BudgetManager
from hybridgate.config import BudgetConfig
from hybridgate.errors import BudgetExceeded, InvalidRequest, RateLimited
from hybridgate.store.sqlite import SQLiteStore

D = Decimal


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[arg-type, misc]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "g.db")
    s.open(BudgetManager.migrations())
    yield s
    s.close()


def manager(store: SQLiteStore, clock: Clock, *budgets: dict[str, Any]) -> BudgetManager:
    bm = BudgetManager(store, [BudgetConfig(**b) for b in budgets], clock=clock)
    bm.load()
    return bm


def test_day_budget_refuses_what_would_cross_it(store: SQLiteStore) -> None:
    bm = manager(
        store, Clock(at(2026, 3, 10, 12)), {"scope": "team", "name": "eng", "usd_per_day": 1.0}
    )
    held = [bm.reserve(key_id="k1", team="eng", usd=D("0.3"), tokens=10) for _ in range(3)]
    with pytest.raises(BudgetExceeded) as ei:
        bm.reserve(key_id="k2", team="eng", usd=D("0.2"), tokens=10)
    err = ei.value
    assert err.status == 429 and err.code == "budget_exceeded"
    assert "usd_per_day" in err.message and "team 'eng'" in err.message
    # exactly up to the limit is fine
    bm.reserve(key_id="k2", team="eng", usd=D("0.1"), tokens=10)
    assert len(held) == 3


def test_settle_replaces_the_hold_by_the_actual(store: SQLiteStore) -> None:
    bm = manager(
        store, Clock(at(2026, 3, 10, 12)), {"scope": "key", "name": "k1", "usd_per_day": 1.0}
    )
    r = bm.reserve(key_id="k1", team=None, usd=D("0.9"), tokens=100)
    with pytest.raises(BudgetExceeded):
        bm.reserve(key_id="k1", team=None, usd=D("0.2"), tokens=1)
    bm.settle(r, usd=D("0.25"), tokens=40)
    st = bm.status("key", "k1")
    assert st["day"] == {"usd": "0.25", "usd_reserved": "0", "tokens": 40, "tokens_reserved": 0}
    bm.reserve(key_id="k1", team=None, usd=D("0.75"), tokens=1)
    with pytest.raises(BudgetExceeded):
        bm.reserve(key_id="k1", team=None, usd=D("0.000000001"), tokens=1)


def test_release_gives_the_hold_back(store: SQLiteStore) -> None:
    bm = manager(store, Clock(at(2026, 3, 10)), {"scope": "key", "name": "k", "usd_per_day": 1.0})
    r = bm.reserve(key_id="k", team=None, usd=D(1), tokens=0)
    bm.release(r)
    assert bm.outstanding == 0
    bm.reserve(key_id="k", team=None, usd=D(1), tokens=0)


def test_settling_twice_counts_once(store: SQLiteStore) -> None:
    bm = manager(store, Clock(at(2026, 3, 10)), {"scope": "key", "name": "k", "usd_per_day": 1.0})
    r = bm.reserve(key_id="k", team=None, usd=D("0.5"), tokens=0)
    bm.settle(r, usd=D("0.5"), tokens=0)
    bm.settle(r, usd=D("0.5"), tokens=0)
    bm.release(r)
    assert bm.status("key", "k")["day"]["usd"] == "0.5"


def test_day_rolls_over_at_utc_midnight_month_does_not(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 3, 10, 23, 59, 59))
    bm = manager(
        store,
        clock,
        {"scope": "team", "name": "t", "usd_per_day": 1.0, "usd_per_month": 1.5},
    )
    bm.settle(bm.reserve(key_id=None, team="t", usd=D(1), tokens=0), usd=D(1), tokens=0)
    with pytest.raises(BudgetExceeded, match="usd_per_day"):
        bm.reserve(key_id=None, team="t", usd=D("0.01"), tokens=0)
    clock.t = at(2026, 3, 11, 0, 0, 0)
    bm.settle(bm.reserve(key_id=None, team="t", usd=D("0.5"), tokens=0), usd=D("0.5"), tokens=0)
    with pytest.raises(BudgetExceeded, match="usd_per_month"):
        bm.reserve(key_id=None, team="t", usd=D("0.01"), tokens=0)
    clock.t = at(2026, 4, 1, 0, 0, 1)
    bm.reserve(key_id=None, team="t", usd=D(1), tokens=0)
    assert bm.status("team", "t")["month"]["usd_reserved"] == "1"


def test_a_hold_taken_before_midnight_settles_to_its_own_day(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 3, 10, 23, 59, 59))
    bm = manager(store, clock, {"scope": "team", "name": "t", "usd_per_day": 1.0})
    r = bm.reserve(key_id=None, team="t", usd=D("0.6"), tokens=0)
    clock.t = at(2026, 3, 11, 0, 0, 5)
    bm.reserve(key_id=None, team="t", usd=D(1), tokens=0)  # new day: the old hold is not here
    bm.settle(r, usd=D("0.6"), tokens=0)
    assert bm.status("team", "t")["day"]["usd"] == "0"
    store.close()  # drains the writer
    s2 = SQLiteStore(store.path)
    s2.open(BudgetManager.migrations())
    try:
        rows = s2.query("SELECT period, usd_nano FROM budget_spend WHERE scope='team'")
    finally:
        s2.close()
    assert sorted(rows) == [("d:2026-03-10", 600_000_000), ("m:2026-03", 600_000_000)]


def test_token_budgets_per_day_and_month(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 5, 31, 10))
    bm = manager(
        store,
        clock,
        {"scope": "key", "name": "k", "tokens_per_day": 1000, "tokens_per_month": 1500},
    )
    r = bm.reserve(key_id="k", team=None, usd=D(0), tokens=1000)
    with pytest.raises(BudgetExceeded, match="tokens_per_day limit 1000"):
        bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)
    bm.settle(r, usd=D(0), tokens=700)
    bm.settle(bm.reserve(key_id="k", team=None, usd=D(0), tokens=300), usd=D(0), tokens=300)
    clock.t = at(2026, 5, 31, 23)
    with pytest.raises(BudgetExceeded, match="tokens_per_day"):
        bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)
    clock.t = at(2026, 6, 1, 0, 0, 1)  # new day and new month
    bm.reserve(key_id="k", team=None, usd=D(0), tokens=1000)


def test_requests_per_minute_is_a_sliding_window(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 3, 10, 12))
    bm = manager(store, clock, {"scope": "key", "name": "k", "requests_per_minute": 3})
    for i in range(3):
        clock.t += 10
        r = bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)
        if i == 0:
            bm.release(r)  # a failed request still counted as a request
    with pytest.raises(RateLimited) as ei:
        bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)
    assert not isinstance(ei.value, BudgetExceeded)
    assert ei.value.code == "rate_limited" and "requests_per_minute 3" in ei.value.message
    clock.t += 40  # the first request (at +10) is now 60 s old
    bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)
    with pytest.raises(RateLimited):
        bm.reserve(key_id="k", team=None, usd=D(0), tokens=1)


def test_tokens_per_minute_counts_actual_tokens_after_settle(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 3, 10, 12))
    bm = manager(store, clock, {"scope": "team", "name": "t", "tokens_per_minute": 1000})
    r = bm.reserve(key_id="a", team="t", usd=D(0), tokens=900)
    with pytest.raises(RateLimited, match="tokens_per_minute"):
        bm.reserve(key_id="b", team="t", usd=D(0), tokens=200)
    bm.settle(r, usd=D(0), tokens=100)  # it used far less than it held
    r2 = bm.reserve(key_id="b", team="t", usd=D(0), tokens=900)
    bm.release(r2)
    bm.reserve(key_id="b", team="t", usd=D(0), tokens=900)
    clock.t += 61
    bm.reserve(key_id="b", team="t", usd=D(0), tokens=1000)


def test_key_lifetime_cap_counts_all_spend_of_the_key(store: SQLiteStore) -> None:
    clock = Clock(at(2026, 1, 1))
    bm = manager(store, clock)  # no configured budgets: the cap comes with the key
    cap = D("2.00")
    for day in range(1, 4):
        clock.t = at(2026, 1, day, 12)
        r = bm.reserve(key_id="k", team="t", usd=D("0.6"), tokens=0, key_budget_usd=cap)
        bm.settle(r, usd=D("0.6"), tokens=0)
    with pytest.raises(BudgetExceeded, match="lifetime budget") as ei:
        bm.reserve(key_id="k", team="t", usd=D("0.3"), tokens=0, key_budget_usd=cap)
    assert "$2" in ei.value.message and "$1.8" in ei.value.message
    bm.reserve(key_id="k", team="t", usd=D("0.2"), tokens=0, key_budget_usd=cap)
    # another key of the same team is not affected
    bm.reserve(key_id="other", team="t", usd=D(1), tokens=0, key_budget_usd=cap)


def test_team_budget_is_shared_by_its_keys_and_key_budget_is_not(store: SQLiteStore) -> None:
    bm = manager(
        store,
        Clock(at(2026, 3, 10)),
        {"scope": "team", "name": "t", "usd_per_day": 1.0},
        {"scope": "key", "name": "k1", "usd_per_day": 0.5},
    )
    bm.reserve(key_id="k1", team="t", usd=D("0.5"), tokens=0)
    with pytest.raises(BudgetExceeded, match="key 'k1'"):
        bm.reserve(key_id="k1", team="t", usd=D("0.1"), tokens=0)
    bm.reserve(key_id="k2", team="t", usd=D("0.5"), tokens=0)
    with pytest.raises(BudgetExceeded, match="team 't'"):
        bm.reserve(key_id="k3", team="t", usd=D("0.1"), tokens=0)
    bm.reserve(key_id="k3", team="other", usd=D(5), tokens=0)


def test_a_refused_request_takes_nothing(store: SQLiteStore) -> None:
    bm = manager(
        store,
        Clock(at(2026, 3, 10)),
        {"scope": "team", "name": "t", "usd_per_day": 1.0, "requests_per_minute": 2},
    )
    with pytest.raises(BudgetExceeded):
        bm.reserve(key_id="k", team="t", usd=D(2), tokens=5)
    assert bm.status("key", "k")["day"]["usd_reserved"] == "0"
    bm.reserve(key_id="k", team="t", usd=D(0), tokens=0)
    bm.reserve(key_id="k", team="t", usd=D(0), tokens=0)  # the refused one did not use a slot


def test_tighter_of_two_budgets_for_one_team_wins(store: SQLiteStore) -> None:
    bm = manager(
        store,
        Clock(at(2026, 3, 10)),
        {"scope": "team", "name": "t", "usd_per_day": 5.0},
        {"scope": "team", "name": "t", "usd_per_day": 1.0},
    )
    with pytest.raises(BudgetExceeded):
        bm.reserve(key_id=None, team="t", usd=D("1.5"), tokens=0)


def test_negative_reservation_is_invalid(store: SQLiteStore) -> None:
    bm = manager(store, Clock(at(2026, 3, 10)))
    with pytest.raises(InvalidRequest):
        bm.reserve(key_id="k", team=None, usd=D(-1), tokens=0)


async def test_200_concurrent_requests_never_overspend_a_budget_for_100(
    store: SQLiteStore,
) -> None:
    bm = manager(
        store, Clock(at(2026, 3, 10, 12)), {"scope": "team", "name": "race", "usd_per_day": 1.0}
    )
    rnd = random.Random(42)
    in_flight = 0
    peak_held = D(0)

    async def one(i: int) -> str:
        nonlocal in_flight, peak_held
        await asyncio.sleep(rnd.random() / 1000)
        try:
            r = bm.reserve(key_id=f"k{i % 7}", team="race", usd=D("0.01"), tokens=10)
        except BudgetExceeded:
            return "refused"
        in_flight += 1
        st = bm.status("team", "race")["day"]
        peak_held = max(peak_held, D(st["usd"]) + D(st["usd_reserved"]))
        await asyncio.sleep(rnd.random() / 100)  # interleave with other tasks
        in_flight -= 1
        if i % 10 == 0:
            bm.release(r)  # failed upstream: nothing spent
            return "failed"
        bm.settle(r, usd=D("0.01"), tokens=10)
        return "ok"

    results = await asyncio.gather(*(one(i) for i in range(200)))
    ok, failed, refused = (results.count(k) for k in ("ok", "failed", "refused"))
    assert ok + failed + refused == 200
    assert refused >= 90  # 100 fit in flight at most; releases may admit a few more
    assert peak_held <= D(1)
    spent = D(bm.status("team", "race")["day"]["usd"])
    assert spent <= D(1)
    assert spent == D("0.01") * ok
    assert bm.outstanding == 0


async def test_concurrent_without_releases_admits_exactly_100(store: SQLiteStore) -> None:
    bm = manager(
        store, Clock(at(2026, 3, 10, 12)), {"scope": "key", "name": "k", "usd_per_day": 1.0}
    )

    async def one() -> bool:
        await asyncio.sleep(0)
        try:
            r = bm.reserve(key_id="k", team=None, usd=D("0.01"), tokens=1)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0.001)
        bm.settle(r, usd=D("0.01"), tokens=1)
        return True

    admitted = await asyncio.gather(*(one() for _ in range(200)))
    assert sum(admitted) == 100
    assert bm.status("key", "k")["day"]["usd"] == "1"


def test_spend_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock(at(2026, 3, 10, 12))
    budgets = [
        {"scope": "team", "name": "t", "usd_per_day": 1.0, "tokens_per_month": 10_000},
    ]
    s1 = SQLiteStore(tmp_path / "g.db")
    s1.open(BudgetManager.migrations())
    bm = manager(s1, clock, *budgets)
    for _ in range(3):
        r = bm.reserve(key_id="k", team="t", usd=D("0.3"), tokens=3000, key_budget_usd=D(5))
        bm.settle(r, usd=D("0.3"), tokens=3000)
    bm.reserve(key_id="k", team="t", usd=D("0.1"), tokens=1)  # in flight at the "crash"
    s1.close()

    s2 = SQLiteStore(tmp_path / "g.db")
    s2.open(BudgetManager.migrations())
    try:
        clock.t += 3600
        bm2 = manager(s2, clock, *budgets)
        assert bm2.status("team", "t")["day"] == {
            "usd": "0.9",
            "usd_reserved": "0",
            "tokens": 9000,
            "tokens_reserved": 0,
        }
        assert bm2.status("key", "k")["lifetime"]["usd"] == "0.9"
        with pytest.raises(BudgetExceeded, match="usd_per_day"):
            bm2.reserve(key_id="k", team="t", usd=D("0.2"), tokens=1)
        with pytest.raises(BudgetExceeded, match="tokens_per_month"):
            bm2.reserve(key_id="k", team="t", usd=D(0), tokens=1001)
        with pytest.raises(BudgetExceeded, match="lifetime"):
            bm2.reserve(key_id="k", team="t", usd=D("0.1"), tokens=1, key_budget_usd=D("0.95"))
        # the next day, the day's spend no longer counts but the month's tokens still do
        clock.t = at(2026, 3, 11, 1)
        bm3 = manager(s2, clock, *budgets)
        assert bm3.status("team", "t")["day"]["usd"] == "0"
        assert bm3.status("team", "t")["month"]["tokens"] == 9000
    finally:
        s2.close()
