"""What the flywheel saved, and what happened to a task: read-only summaries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from hybridgate.distill.events import EVENT_KIND
from hybridgate.distill.store import Call
from hybridgate.store.base import Store
from hybridgate.store.factory import table_exists


def _usd(v: Decimal) -> str:
    return format(v, "f")


def savings(calls: Sequence[Call]) -> dict[str, Any]:
    """Per server (teacher, adapter): calls, cost, what the teacher would have cost,
    mean latency; and the total saved by the adapter's calls."""
    out: dict[str, Any] = {}
    for side in ("teacher", "adapter"):
        mine = [c for c in calls if c.served_by == side]
        cost = sum((c.cost_usd for c in mine), Decimal(0))
        teacher_cost = sum((c.teacher_cost_usd for c in mine), Decimal(0))
        out[side] = {
            "calls": len(mine),
            "cost_usd": _usd(cost),
            "teacher_cost_usd": _usd(teacher_cost),
            "mean_latency_ms": (
                round(sum(c.latency_ms for c in mine) / len(mine), 3) if mine else None
            ),
        }
    ad = [c for c in calls if c.served_by == "adapter"]
    saved = sum((c.teacher_cost_usd - c.cost_usd for c in ad), Decimal(0))
    total = sum((c.cost_usd for c in calls), Decimal(0))
    all_teacher = sum((c.teacher_cost_usd for c in calls), Decimal(0))
    out["saved_usd"] = _usd(saved)
    out["total_cost_usd"] = _usd(total)
    out["teacher_only_cost_usd"] = _usd(all_teacher)
    out["adapter_share"] = round(len(ad) / len(calls), 4) if calls else 0.0
    return out


def history(store: Store, task: str, limit: int = 1000) -> list[dict[str, Any]]:
    """The task's signed distill events, oldest first (a scan of the log: for operators).

    Each event carries ``log_index``, its entry's place in the tree. On the shared log
    (PostgreSQL) an event still queued for the sequencer comes last, with ``log_index``
    None and ``pending`` true: it is durable and signed but has no index yet. One
    statement reads both, so an event being merged meanwhile is listed exactly once.
    """
    kind = EVENT_KIND.encode()
    if store.dialect != "postgres":
        sql = "SELECT idx, data FROM ledger_entries WHERE instr(data, ?) > 0 ORDER BY idx"
        params: tuple[Any, ...] = (kind,)
    elif table_exists(store, "ledger_queue"):
        sql = (
            "SELECT idx, 0 AS seq, data FROM ledger_entries WHERE position(? IN data) > 0"
            " UNION ALL SELECT NULL, seq, data FROM ledger_queue WHERE position(? IN data) > 0"
            " ORDER BY idx NULLS LAST, seq"
        )
        params = (kind, kind)
    else:  # a database whose log was never shared
        sql = "SELECT idx, data FROM ledger_entries WHERE position(? IN data) > 0 ORDER BY idx"
        params = (kind,)
    out: list[dict[str, Any]] = []
    for row in store.query(sql, params):
        idx, data = row[0], row[-1]
        body = json.loads(bytes(data))["receipt"]
        if body.get("kind") == EVENT_KIND and body.get("task") == task:
            event = {**body, "log_index": None if idx is None else int(idx)}
            if idx is None:
                event["pending"] = True
            out.append(event)
    return out[-limit:]
