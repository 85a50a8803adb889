"""What the console shows, read from the gateway's services. Reads only.

A team session sees only what its own key did (the same scope as
``/v1/usage`` and ``/v1/receipts``); the admin sees everything.
"""

from __future__ import annotations

import json
from typing import Any

from hybridgate.console.session import Session
from hybridgate.runtime import Gateway

SCAN_LIMIT = 2000


def recent_receipts(gw: Gateway, s: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """The newest receipt bodies this session may see, newest first."""
    rows = gw.store.query(
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


def key_active(gw: Gateway, key_id: str | None) -> bool:
    """False once a team's key is revoked: its console sessions end with it."""
    rows = gw.store.query("SELECT revoked_ns FROM virtual_keys WHERE key_id = ?", (key_id,))
    return bool(rows) and rows[0][0] is None


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


def traffic(gw: Gateway, s: Session, *, limit: int = 50) -> list[dict[str, Any]]:
    """Recent request receipts, reduced to what the traffic table shows."""
    return [
        {k: b.get(k) for k in TRAFFIC_FIELDS}
        for b in recent_receipts(gw, s, limit=limit)
        if b.get("kind") == "request"
    ]


def usage(gw: Gateway, s: Session) -> dict[str, Any]:
    scope = None if s.is_admin else s.key.key_id
    return {
        "summary": gw.usage.summary(key_id=scope),
        "days": gw.usage.report(by="day", key_id=scope),
        "locations": gw.usage.report(by="location", key_id=scope),
        "routes": gw.usage.report(by="route", key_id=scope),
    }


def budgets(gw: Gateway, s: Session) -> list[dict[str, Any]]:
    out = []
    for b in gw.config.budgets:
        if not s.is_admin and not (
            (b.scope == "team" and b.name == s.key.team)
            or (b.scope == "key" and b.name == s.key.key_id)
        ):
            continue
        st = gw.budgets.status(b.scope, b.name)
        out.append({"config": b.model_dump(mode="json"), "status": st})
    return out


def route_health(gw: Gateway) -> list[dict[str, Any]]:
    snap = gw.health.snapshot()
    out = []
    for name, r in gw.routes.items():
        stats = snap.get(name)
        out.append(
            {
                "name": name,
                "provider": r.provider,
                "location": r.location,
                "region": r.region,
                "breaker": gw.health.state(name),
                "latency_ewma_ms": None
                if stats is None or stats.latency_ewma_ms is None
                else round(stats.latency_ewma_ms, 1),
            }
        )
    return out
