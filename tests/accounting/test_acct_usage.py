"""Usage log: grouping, filters and savings against hand-computed values."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hybridgate.accounting import UsageLog, UsageRecord, baseline_for, cost_usd
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.store.sqlite import SQLiteStore

D = Decimal


def route(name: str, location: str = "external", **price: float) -> RouteConfig:
    return RouteConfig(
        name=name,
        provider="openai",
        model=name,
        location=location,
        price=price,
    )


ROUTES = {
    "gpt": route("gpt", input_per_mtok=2.5, output_per_mtok=10.0),
    "mini": route("mini", input_per_mtok=0.15, output_per_mtok=0.6),
    # $0.36/h at 100 tok/s = $0.000001 per token ($1 per million)
    "llama": route("llama", "on_prem", hourly_usd=0.36, tokens_per_second=100.0),
}
AUTO = VirtualModel(routes=["mini", "llama", "gpt"], strategy="quality", strong="gpt", weak="mini")
DAY1 = int(datetime(2026, 3, 10, 12, tzinfo=UTC).timestamp() * 1e9)
DAY2 = int(datetime(2026, 3, 11, 9, tzinfo=UTC).timestamp() * 1e9)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "gateway.db")
    s.open(UsageLog.migrations())
    yield s
    s.close()


def flush(store: SQLiteStore) -> None:
    """The writer runs jobs in order: once a no-op is done, every earlier record is too."""
    store.write_sync(lambda conn: None)


def rec(
    n: int,
    *,
    team: str | None,
    route_name: str | None,
    tokens: tuple[int, int],
    latency: float,
    key: str = "k1",
    outcome: str = "ok",
    status: int = 200,
    time_ns: int = DAY1,
    model: str = "auto",
) -> UsageRecord:
    p, c = tokens
    r = ROUTES[route_name] if route_name else None
    base_route, base_cost = baseline_for(AUTO, ROUTES, p, c)
    return UsageRecord(
        request_id=f"req_{n}",
        receipt_id=f"rcpt_{n}",
        time_ns=time_ns,
        key_id=key,
        team=team,
        virtual_model=model,
        route=route_name,
        provider=r.provider if r else None,
        location=r.location if r else None,
        prompt_tokens=p,
        completion_tokens=c,
        usage_reported=True,
        cost_usd=cost_usd(r.price, p, c) if r else D(0),
        baseline_cost_usd=base_cost,
        baseline_route=base_route,
        latency_ms=latency,
        outcome=outcome,
        status=status,
    )


def scenario(log: UsageLog) -> None:
    log.record(rec(1, team="a", route_name="gpt", tokens=(1000, 500), latency=1000))
    log.record(rec(2, team="a", route_name="mini", tokens=(1000, 500), latency=400, key="k2"))
    log.record(rec(3, team="b", route_name="llama", tokens=(1000, 1000), latency=200, key="k3"))
    log.record(
        rec(
            4,
            team="b",
            route_name=None,
            tokens=(0, 0),
            latency=5,
            key="k3",
            outcome="refused",
            status=429,
        )
    )
    log.record(rec(5, team="a", route_name="gpt", tokens=(2000, 0), latency=3000, time_ns=DAY2))


def by_group(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {r["group"]: r for r in rows}


def test_baseline_is_the_most_expensive_route_of_the_model() -> None:
    assert baseline_for(AUTO, ROUTES, 1000, 500) == ("gpt", D("0.0075"))
    # priced on the request's own tokens: for input only, llama ($1/M) beats mini ($0.15/M)
    only_cheap = VirtualModel(routes=["mini", "llama"], strategy="fallback")
    assert baseline_for(only_cheap, ROUTES, 1000, 0) == ("llama", D("0.001"))
    assert baseline_for(only_cheap, ROUTES, 0, 1000) == ("llama", D("0.001"))
    # a tie goes to the route listed first
    twins = {"x": route("x", input_per_mtok=1.0), "y": route("y", input_per_mtok=1.0)}
    tied = VirtualModel(routes=["y", "x"], strategy="fallback")
    assert baseline_for(tied, twins, 10, 10) == ("y", D("0.00001"))
    free = VirtualModel(routes=["ghost"], strategy="fixed")
    assert baseline_for(free, ROUTES, 10, 10) == (None, D(0))


def test_report_by_team_hand_computed(store: SQLiteStore) -> None:
    log = UsageLog(store)
    scenario(log)
    flush(store)
    rows = by_group(log.report(by="team"))
    a, b = rows["a"], rows["b"]
    # a: cost 0.0075 + 0.00045 + 0.005; baseline 0.0075 + 0.0075 + 0.005
    assert (a["requests"], a["ok"], a["refused"], a["errors"]) == (3, 3, 0, 0)
    assert a["cost_usd"] == "0.01295"
    assert a["baseline_cost_usd"] == "0.02"
    assert a["saved_usd"] == "0.00705"
    assert a["saved_pct"] == 35.25
    assert (a["prompt_tokens"], a["completion_tokens"], a["total_tokens"]) == (4000, 1000, 5000)
    assert a["latency_ms_avg"] == pytest.approx((1000 + 400 + 3000) / 3, abs=1e-3)
    # gpt averages (1000 + 3000)/2 = 2000 ms: saved (2000-1000) + (2000-400) + (2000-3000)
    assert a["time_saved_ms"] == pytest.approx(1600.0)
    assert a["baseline_latency_ms_avg"] == pytest.approx(2000.0)
    # b: llama costs 2000 tokens * 0.000001 = 0.002 vs gpt 0.0025 + 0.01 = 0.0125
    assert (b["requests"], b["ok"], b["refused"]) == (2, 1, 1)
    assert b["cost_usd"] == "0.002"
    assert b["baseline_cost_usd"] == "0.0125"
    assert b["saved_usd"] == "0.0105"
    assert b["saved_pct"] == 84.0
    assert b["time_saved_ms"] == pytest.approx(1800.0)
    assert b["latency_ms_avg"] == pytest.approx(200.0)  # refused requests are not latency
    assert list(rows) == ["a", "b"]  # biggest spend first


def test_summary_totals_and_savings(store: SQLiteStore) -> None:
    log = UsageLog(store)
    scenario(log)
    flush(store)
    s = log.summary()
    assert s["requests"] == 5 and s["ok"] == 4 and s["refused"] == 1
    assert s["cost_usd"] == "0.01495"
    assert s["baseline_cost_usd"] == "0.0325"
    assert s["saved_usd"] == "0.01755"
    assert s["saved_pct"] == 54.0
    assert s["time_saved_ms"] == pytest.approx(3400.0)
    assert s["time_unknown"] == 0
    assert "most expensive route" in s["savings_method"]
    assert "group" not in s


def test_report_by_route_location_day_key_model(store: SQLiteStore) -> None:
    log = UsageLog(store)
    scenario(log)
    flush(store)
    routes = by_group(log.report(by="route"))
    assert set(routes) == {"gpt", "mini", "llama", None}
    assert routes["gpt"]["cost_usd"] == "0.0125"
    assert routes["gpt"]["saved_usd"] == "0"
    assert routes["mini"]["saved_usd"] == "0.00705"
    assert routes["llama"]["cost_usd"] == "0.002"
    assert routes[None]["refused"] == 1
    loc = by_group(log.report(by="location"))
    assert loc["external"]["requests"] == 3 and loc["on_prem"]["requests"] == 1
    days = by_group(log.report(by="day"))
    assert days["2026-03-10"]["requests"] == 4 and days["2026-03-11"]["requests"] == 1
    keys = by_group(log.report(by="key"))
    assert keys["k1"]["requests"] == 2 and keys["k3"]["requests"] == 2
    models = by_group(log.report(by="model"))
    assert list(models) == ["auto"]


def test_filters_by_key_and_time(store: SQLiteStore) -> None:
    log = UsageLog(store)
    scenario(log)
    flush(store)
    mine = log.summary(key_id="k1")
    assert mine["requests"] == 2 and mine["cost_usd"] == "0.0125"
    # time savings for one key still use the route's latency across all keys
    assert mine["time_saved_ms"] == pytest.approx(0.0)  # (2000-1000) + (2000-3000)
    recent = log.summary(since_ns=DAY2)
    assert recent["requests"] == 1 and recent["cost_usd"] == "0.005"
    assert log.report(by="team", key_id="nobody") == []


def test_time_saving_unknown_when_baseline_route_never_observed(store: SQLiteStore) -> None:
    log = UsageLog(store)
    for i in range(3):
        log.record(rec(i, team="a", route_name="mini", tokens=(100, 100), latency=100))
    flush(store)
    s = log.summary()
    assert s["time_saved_ms"] is None
    assert s["time_unknown"] == 3
    assert s["baseline_latency_ms_avg"] is None


def test_empty_log(store: SQLiteStore) -> None:
    s = UsageLog(store).summary()
    assert s["requests"] == 0 and s["cost_usd"] == "0" and s["saved_pct"] is None


def test_a_request_is_recorded_once(store: SQLiteStore) -> None:
    log = UsageLog(store)
    r = rec(1, team="a", route_name="gpt", tokens=(10, 10), latency=1)
    log.record(r)
    log.record(r)
    flush(store)
    assert log.summary()["requests"] == 1


def test_report_refuses_unknown_grouping(store: SQLiteStore) -> None:
    with pytest.raises(ValueError):
        UsageLog(store).report(by="prompt; DROP TABLE usage_log")  # type: ignore[arg-type]


def test_money_is_stored_as_integer_nano_dollars(store: SQLiteStore) -> None:
    log = UsageLog(store)
    log.record(rec(1, team="a", route_name="mini", tokens=(1, 1), latency=1))
    flush(store)
    rows = store.query("SELECT cost_nano, baseline_nano, typeof(cost_nano) FROM usage_log")
    # mini: 0.15e-6 + 0.6e-6 = 750 nano; gpt: 2.5e-6 + 10e-6 = 12500 nano
    assert rows == [(750, 12500, "integer")]
