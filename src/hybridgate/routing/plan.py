"""Which permitted route to try first, and which next: a pure function of its inputs.

The plan is the only list the pipeline's send loop walks, so the one rule that
matters most lives here: **fallbacks never widen**. Every strategy starts from
the virtual model's routes filtered to the policy's ``permitted`` set, and only
reorders that list; nothing is ever added to it. A route with an open circuit
breaker is kept but moved to the end, so it is tried only when every healthy
route has failed (and the breaker itself still decides whether it is called).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from hybridgate.accounting.pricing import cost_usd
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.errors import NoRouteAvailable

QualityChoice = Literal["strong", "weak"]


@dataclass(frozen=True)
class RouteStats:
    """A snapshot of one route's health: latency EWMA and when its breaker may close."""

    latency_ewma_ms: float | None
    #: monotonic seconds; the breaker is open while ``now < open_until`` (0.0 when closed)
    open_until: float


@dataclass(frozen=True)
class Plan:
    """Routes in the order to try them: primary first, then fallbacks; all within permitted."""

    routes: tuple[str, ...]
    strategy: str
    reason: str

    @property
    def primary(self) -> str:
        return self.routes[0]


def candidate_routes(vm: VirtualModel) -> list[str]:
    """The virtual model's routes, de-duplicated, in configured order.

    For the ``quality`` strategy, ``strong`` and ``weak`` belong to the model
    even when they are not repeated under ``routes``.
    """
    extra = [vm.strong, vm.weak] if vm.strategy == "quality" else []
    return list(dict.fromkeys(n for n in [*vm.routes, *extra] if n is not None))


def plan_routes(
    vm: VirtualModel,
    permitted: Sequence[str],
    routes: Mapping[str, RouteConfig],
    stats: Mapping[str, RouteStats],
    now: float,
    *,
    quality_choice: QualityChoice | None = None,
    rng: random.Random | None = None,
    est_tokens: tuple[int, int] = (1000, 500),
) -> Plan:
    """Order the permitted routes of ``vm`` by its strategy.

    Raises :class:`NoRouteAvailable` when no route of the model is permitted
    (an empty plan has nothing to send to, and saying why beats failing later).
    """
    allowed = set(permitted)
    dropped_policy: list[str] = []
    dropped_unknown: list[str] = []
    names: list[str] = []
    candidates = candidate_routes(vm)
    if vm.strategy == "fixed":
        candidates = candidates[:1]
    for n in candidates:
        if n not in routes:
            dropped_unknown.append(n)
        elif n not in allowed:
            dropped_policy.append(n)
        else:
            names.append(n)

    notes: list[str] = []
    if dropped_policy:
        notes.append("not permitted by policy: " + ", ".join(dropped_policy))
    if dropped_unknown:
        notes.append("not configured: " + ", ".join(dropped_unknown))
    if not names:
        raise NoRouteAvailable(
            f"virtual model has no permitted route ({vm.strategy}"
            + (": " + "; ".join(notes) if notes else "")
            + ")"
        )

    ordered, why = _order(vm, names, routes, stats, quality_choice, rng, est_tokens)
    healthy = [n for n in ordered if not _is_open(stats.get(n), now)]
    broken = [n for n in ordered if _is_open(stats.get(n), now)]
    broken.sort(key=lambda n: stats[n].open_until)  # the soonest to recover first
    if broken:
        notes.append("circuit open, tried last: " + ", ".join(broken))
    reason = f"{vm.strategy}: {why}" + "".join(f"; {n}" for n in notes)
    return Plan(routes=tuple(healthy + broken), strategy=vm.strategy, reason=reason)


def _is_open(s: RouteStats | None, now: float) -> bool:
    return s is not None and s.open_until > now


def _order(
    vm: VirtualModel,
    names: list[str],
    routes: Mapping[str, RouteConfig],
    stats: Mapping[str, RouteStats],
    quality_choice: QualityChoice | None,
    rng: random.Random | None,
    est_tokens: tuple[int, int],
) -> tuple[list[str], str]:
    strategy = vm.strategy
    if strategy == "fixed":
        return names, f"fixed route {names[0]}"
    if strategy == "fallback":
        return names, "configured order " + " > ".join(names)
    if strategy == "least_cost":
        return _least_cost(names, routes, est_tokens)
    if strategy == "least_latency":
        return _least_latency(names, stats)
    if strategy == "weighted":
        return _weighted(names, routes, rng or random.SystemRandom())
    if strategy == "quality":
        return _quality(vm, names, quality_choice)
    raise ValueError(f"unknown routing strategy {strategy!r}")  # config validation prevents it


def _least_cost(
    names: list[str], routes: Mapping[str, RouteConfig], est_tokens: tuple[int, int]
) -> tuple[list[str], str]:
    p, c = est_tokens
    costs: dict[str, Decimal] = {n: cost_usd(routes[n].price, p, c) for n in names}
    ordered = sorted(names, key=lambda n: costs[n])  # stable: ties keep configured order
    shown = ", ".join(f"{n}=${costs[n]:f}" for n in ordered)
    return ordered, f"cheapest first for {p}+{c} tokens ({shown})"


def _least_latency(names: list[str], stats: Mapping[str, RouteStats]) -> tuple[list[str], str]:
    def ewma(n: str) -> float | None:
        s = stats.get(n)
        return None if s is None else s.latency_ewma_ms

    unknown = [n for n in names if ewma(n) is None]
    known = sorted((n for n in names if ewma(n) is not None), key=lambda n: ewma(n) or 0.0)
    parts = [f"{n}={ewma(n):.1f}ms" for n in known]
    why = "fastest first by latency EWMA (" + ", ".join(parts) + ")" if parts else "no latency yet"
    if unknown:
        why += "; unmeasured first to explore: " + ", ".join(unknown)
    return unknown + known, why


def _weighted(
    names: list[str], routes: Mapping[str, RouteConfig], rng: random.Random
) -> tuple[list[str], str]:
    """Weighted random order without replacement (Efraimidis–Spirakis keys).

    Each route's chance of coming first is its weight over the total; a route of
    weight 0 is never primary and is kept, in configured order, as a last resort.
    """
    positive = [n for n in names if routes[n].weight > 0]
    zero = [n for n in names if routes[n].weight <= 0]
    keyed = []
    for n in positive:
        u = rng.random()
        # log(u)/w is a monotone transform of u**(1/w), without underflow for tiny weights
        key = math.log(u) / routes[n].weight if u > 0 else -math.inf
        keyed.append((key, n))
    keyed.sort(key=lambda kv: kv[0], reverse=True)
    ordered = [n for _, n in keyed] + zero
    shown = ", ".join(f"{n}:{routes[n].weight:g}" for n in names)
    return ordered, f"weighted random order (weights {shown})"


def _quality(
    vm: VirtualModel, names: list[str], choice: QualityChoice | None
) -> tuple[list[str], str]:
    if choice is None:
        # No router verdict (e.g. it could not run): prefer the answer most likely right.
        choice, why = "strong", "no router choice, strong first"
    else:
        why = f"router chose {choice}"
    first, second = (vm.strong, vm.weak) if choice == "strong" else (vm.weak, vm.strong)
    head = list(dict.fromkeys(n for n in (first, second) if n is not None and n in names))
    ordered = head + [n for n in names if n not in head]
    return ordered, f"{why} ({first}, then {second})"
