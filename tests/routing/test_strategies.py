"""Every routing strategy, and the rule above them all: a plan never widens."""

from __future__ import annotations

import random
import zlib
from collections import Counter
from typing import Any

import pytest

from hybridgate.config import RouteConfig, Strategy, VirtualModel
from hybridgate.errors import NoRouteAvailable
from hybridgate.routing import Plan, RouteStats, plan_routes


def route(name: str, *, pin: float = 0.0, pout: float = 0.0, weight: float = 1.0) -> RouteConfig:
    return RouteConfig(
        name=name,
        provider="openai",
        model=name,
        location="external",
        price={"input_per_mtok": pin, "output_per_mtok": pout},
        weight=weight,
    )


ROUTES = {
    "gpt": route("gpt", pin=2.5, pout=10.0, weight=1.0),
    "mini": route("mini", pin=0.15, pout=0.6, weight=3.0),
    "claude": route("claude", pin=3.0, pout=15.0, weight=0.0),
    "llama": route("llama", pin=0.0, pout=0.0, weight=6.0),
}
ALL = ("gpt", "mini", "claude", "llama")


def vm(strategy: Strategy, routes: tuple[str, ...] = ALL, **kw: Any) -> VirtualModel:
    return VirtualModel(routes=list(routes), strategy=strategy, **kw)


def plan(v: VirtualModel, permitted: tuple[str, ...] = ALL, **kw: Any) -> Plan:
    stats: dict[str, RouteStats] = kw.pop("stats", {})
    now: float = kw.pop("now", 100.0)
    return plan_routes(v, permitted, ROUTES, stats, now, **kw)


def test_fixed_is_the_first_route_only() -> None:
    p = plan(vm("fixed", ("mini", "gpt")))
    assert p.routes == ("mini",)
    assert p.strategy == "fixed"
    assert "fixed" in p.reason


def test_fixed_route_not_permitted_refuses_instead_of_falling_back() -> None:
    with pytest.raises(NoRouteAvailable) as ei:
        plan(vm("fixed", ("gpt", "mini")), ("mini",))
    assert "not permitted by policy: gpt" in ei.value.message


def test_fallback_keeps_configured_order() -> None:
    assert plan(vm("fallback", ("claude", "gpt", "llama"))).routes == ("claude", "gpt", "llama")


def test_fallback_drops_what_policy_forbids_and_says_so() -> None:
    p = plan(vm("fallback"), ("llama", "mini"))
    assert p.routes == ("mini", "llama")
    assert "not permitted by policy: gpt, claude" in p.reason


def test_least_cost_orders_by_estimated_cost() -> None:
    # for 1000 in + 500 out: llama 0, mini 0.00045, gpt 0.0075, claude 0.0105
    p = plan(vm("least_cost", ("claude", "gpt", "mini", "llama")))
    assert p.routes == ("llama", "mini", "gpt", "claude")
    assert "mini=$0.000450000" in p.reason


def test_least_cost_depends_on_the_token_mix() -> None:
    a = route("a", pin=1.0, pout=20.0)
    b = route("b", pin=5.0, pout=5.0)
    v = VirtualModel(routes=["a", "b"], strategy="least_cost")
    routes = {"a": a, "b": b}
    prompt_heavy = plan_routes(v, ["a", "b"], routes, {}, 0.0, est_tokens=(10_000, 10))
    output_heavy = plan_routes(v, ["a", "b"], routes, {}, 0.0, est_tokens=(10, 10_000))
    assert prompt_heavy.routes == ("a", "b")
    assert output_heavy.routes == ("b", "a")


def test_least_cost_ties_keep_configured_order() -> None:
    free = {n: route(n) for n in ("x", "y", "z")}
    v = VirtualModel(routes=["z", "x", "y"], strategy="least_cost")
    assert plan_routes(v, ["x", "y", "z"], free, {}, 0.0).routes == ("z", "x", "y")


def test_least_latency_fastest_first_unknown_explored_first() -> None:
    stats = {
        "gpt": RouteStats(latency_ewma_ms=900.0, open_until=0.0),
        "mini": RouteStats(latency_ewma_ms=300.0, open_until=0.0),
        "llama": RouteStats(latency_ewma_ms=50.0, open_until=0.0),
    }
    p = plan(vm("least_latency"), stats=stats)
    assert p.routes == ("claude", "llama", "mini", "gpt")
    assert "unmeasured first" in p.reason


def test_weighted_is_reproducible_with_an_injected_rng() -> None:
    v = vm("weighted")
    a = plan(v, rng=random.Random(7)).routes
    b = plan(v, rng=random.Random(7)).routes
    assert a == b
    assert sorted(a) == sorted(ALL)


def test_weighted_primary_share_follows_weights() -> None:
    # weights gpt 1, mini 3, llama 6 (claude 0): primary shares 0.1 / 0.3 / 0.6
    rng = random.Random(1234)
    v = vm("weighted")
    n = 6000
    firsts = Counter(plan(v, rng=rng).routes[0] for _ in range(n))
    assert firsts["claude"] == 0
    assert abs(firsts["gpt"] / n - 0.1) < 0.025
    assert abs(firsts["mini"] / n - 0.3) < 0.03
    assert abs(firsts["llama"] / n - 0.6) < 0.03


def test_weighted_zero_weight_is_last_resort() -> None:
    for seed in range(50):
        assert plan(vm("weighted"), rng=random.Random(seed)).routes[-1] == "claude"


def test_weighted_without_rng_still_returns_every_permitted_route() -> None:
    p = plan(vm("weighted"), ("gpt", "mini"))
    assert sorted(p.routes) == ["gpt", "mini"]


def test_quality_puts_the_chosen_route_first_then_the_other_then_the_rest() -> None:
    v = vm("quality", ("llama", "mini", "gpt"), strong="gpt", weak="mini")
    assert plan(v, quality_choice="weak").routes == ("mini", "gpt", "llama")
    assert plan(v, quality_choice="strong").routes == ("gpt", "mini", "llama")
    assert "router chose weak" in plan(v, quality_choice="weak").reason


def test_quality_without_a_choice_prefers_strong() -> None:
    v = vm("quality", ("mini", "gpt"), strong="gpt", weak="mini")
    p = plan(v)
    assert p.routes == ("gpt", "mini")
    assert "strong first" in p.reason


def test_quality_strong_not_permitted_sends_weak_even_if_strong_was_chosen() -> None:
    v = vm("quality", ("mini", "gpt"), strong="gpt", weak="mini")
    assert plan(v, ("mini",), quality_choice="strong").routes == ("mini",)


def test_quality_includes_strong_and_weak_even_if_not_listed_in_routes() -> None:
    v = vm("quality", ("llama",), strong="gpt", weak="mini")
    assert plan(v, quality_choice="weak").routes == ("mini", "gpt", "llama")


@pytest.mark.parametrize(
    "strategy", ["fixed", "fallback", "least_cost", "least_latency", "weighted", "quality"]
)
def test_open_breaker_goes_last_in_every_strategy(strategy: Strategy) -> None:
    kw: dict[str, Any] = {"strong": "gpt", "weak": "mini"} if strategy == "quality" else {}
    v = vm(strategy, ("llama", "mini", "gpt"), **kw)
    stats = {"llama": RouteStats(None, open_until=150.0), "mini": RouteStats(None, 120.0)}
    p = plan(v, stats=stats, now=100.0, rng=random.Random(0), quality_choice="weak")
    if strategy == "fixed":
        assert p.routes == ("llama",)  # nothing else to try: still planned, the breaker decides
    else:
        assert p.routes[-2:] == ("mini", "llama")  # soonest to recover first
        assert p.routes[0] == "gpt"
    assert "circuit open, tried last" in p.reason


def test_breaker_past_its_cooldown_is_not_demoted() -> None:
    stats = {"gpt": RouteStats(None, open_until=99.0)}
    assert plan(vm("fallback"), stats=stats, now=100.0).routes[0] == "gpt"


def test_unconfigured_route_is_dropped() -> None:
    v = VirtualModel(routes=["ghost", "mini"], strategy="fallback")
    p = plan_routes(v, ["ghost", "mini"], ROUTES, {}, 0.0)
    assert p.routes == ("mini",)
    assert "not configured: ghost" in p.reason


def test_nothing_permitted_raises() -> None:
    with pytest.raises(NoRouteAvailable):
        plan(vm("least_cost"), ())


def test_duplicates_in_config_are_planned_once() -> None:
    v = VirtualModel(routes=["mini", "gpt", "mini"], strategy="fallback")
    assert plan(v).routes == ("mini", "gpt")


@pytest.mark.parametrize(
    "strategy", ["fixed", "fallback", "least_cost", "least_latency", "weighted", "quality"]
)
def test_property_plans_never_widen(strategy: Strategy) -> None:
    """Random permitted subsets, breaker states, choices: the plan stays inside `permitted`."""
    rng = random.Random(zlib.crc32(strategy.encode()))
    names = list(ALL)
    for _ in range(400):
        order = rng.sample(names, rng.randint(1, len(names)))
        kw: dict[str, Any] = {}
        if strategy == "quality":
            kw = {"strong": rng.choice(names), "weak": rng.choice(names)}
        v = vm(strategy, tuple(order), **kw)
        permitted = tuple(n for n in names if rng.random() < 0.5)
        stats = {
            n: RouteStats(
                latency_ewma_ms=rng.choice([None, rng.uniform(1, 1000)]),
                open_until=rng.choice([0.0, 50.0, 150.0]),
            )
            for n in names
            if rng.random() < 0.7
        }
        choice = rng.choice(["strong", "weak", None])
        try:
            p = plan_routes(
                v,
                permitted,
                ROUTES,
                stats,
                100.0,
                quality_choice=choice,  # type: ignore[arg-type]
                rng=random.Random(rng.random()),
                est_tokens=(rng.randint(0, 5000), rng.randint(0, 5000)),
            )
        except NoRouteAvailable:
            reachable = {*order, *(kw.values())} if strategy != "fixed" else {order[0]}
            assert not (reachable & set(permitted))
            continue
        assert set(p.routes) <= set(permitted)
        assert len(p.routes) == len(set(p.routes))
        assert p.routes, "a plan returned is never empty"
        if strategy == "fixed":
            assert p.routes == (order[0],)
        else:
            # nothing of the model that is permitted is lost either
            expected = {*order, *(kw.values())} & set(permitted)
            assert set(p.routes) == expected
