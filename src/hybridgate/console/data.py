"""What the console shows, read from the gateway's services. Reads only.

A team session sees only what its own key did (the same scope as
``/v1/usage`` and ``/v1/receipts``); the admin sees everything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hybridgate.accounting import BudgetManager, UsageLog
from hybridgate.actions import ActionService
from hybridgate.config import BudgetConfig, ConsoleConfig
from hybridgate.console.session import Session, SessionStore
from hybridgate.console.throttle import Throttle
from hybridgate.keys import KeyStore
from hybridgate.ledger import Ledger, VerifierKey
from hybridgate.policy import PolicyHolder
from hybridgate.routing import RouteHealth
from hybridgate.routing.table import RouteTable
from hybridgate.store import Store

if TYPE_CHECKING:
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.governance.service import GovernanceService

SCAN_LIMIT = 2000


@dataclass(frozen=True)
class ConsoleDeps:
    """What the console reads and acts through, and nothing else of the gateway."""

    store: Store
    keys: KeyStore
    #: Console sessions, in the store every replica shares.
    sessions: SessionStore
    usage: UsageLog
    budget_configs: Sequence[BudgetConfig]
    budgets: BudgetManager | SharedBudgetManager
    health: RouteHealth
    table: RouteTable
    policy: PolicyHolder
    actions: ActionService
    ledger: Ledger
    #: Public keys receipts verify with, the active one first.
    verifiers: Callable[[], list[VerifierKey]]
    governance: GovernanceService | None = None
    settings: ConsoleConfig = field(default_factory=ConsoleConfig)
    #: Sign-in attempts per client address; None: this process's own buckets.
    throttle: Throttle | None = None


def recent_receipts(deps: ConsoleDeps, s: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest receipt bodies this session may see, newest first."""
    rows = deps.store.query(
        "SELECT data FROM ledger_entries ORDER BY idx DESC LIMIT ?", (SCAN_LIMIT,)
    )
    out: list[dict[str, Any]] = []
    for (data,) in rows:
        try:
            body = json.loads(bytes(data))["receipt"]
        except (ValueError, KeyError, TypeError):
            continue
        if not isinstance(body, dict):
            continue
        if not s.is_admin and body.get("key_id") != s.key.key_id:
            continue
        out.append(body)
        if len(out) >= limit:
            break
    return out


TRAFFIC_FIELDS = (
    "receipt_id",
    "time_ns",
    "team",
    "virtual_model",
    "route",
    "location",
    "data_classes",
    "action",
    "masked",
    "status",
    "outcome",
)


def traffic(deps: ConsoleDeps, s: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """Recent request receipts, reduced to what the traffic table shows."""
    return [
        {k: b.get(k) for k in TRAFFIC_FIELDS}
        for b in recent_receipts(deps, s, limit=limit)
        if b.get("kind") == "request"
    ]


def usage(deps: ConsoleDeps, s: Session) -> dict[str, Any]:
    scope = None if s.is_admin else s.key.key_id
    return {
        "summary": deps.usage.summary(key_id=scope),
        "days": deps.usage.report(by="day", key_id=scope),
        "locations": deps.usage.report(by="location", key_id=scope),
        "routes": deps.usage.report(by="route", key_id=scope),
    }


def budgets(deps: ConsoleDeps, s: Session) -> list[dict[str, Any]]:
    out = []
    for b in deps.budget_configs:
        if not s.is_admin and not (
            (b.scope == "team" and b.name == s.key.team)
            or (b.scope == "key" and b.name == s.key.key_id)
        ):
            continue
        st = deps.budgets.status(b.scope, b.name)
        out.append({"config": b.model_dump(mode="json"), "status": st})
    return out


def route_health(deps: ConsoleDeps) -> list[dict[str, Any]]:
    snap = deps.health.snapshot()
    out = []
    for name, r in deps.table.routes.items():
        stats = snap.get(name)
        out.append(
            {
                "name": name,
                "provider": r.provider,
                "location": r.location,
                "region": r.region,
                "breaker": deps.health.state(name),
                "latency_ewma_ms": None
                if stats is None or stats.latency_ewma_ms is None
                else round(stats.latency_ewma_ms, 1),
            }
        )
    return out
