"""Promotion steps and overrides as signed receipts in the log, plus the state they change.

Synchronous (the CLI and the service's worker threads call them): each step
first appends its receipt, then moves the state, so no state exists that the
log does not show.
"""

from __future__ import annotations

import time
from typing import Any

from hybridgate.distill.store import DistillStore, TaskState
from hybridgate.ledger import Ledger

EVENT_KIND = "distill_event"


def log_event(ledger: Ledger, task: str, event: str, **fields: Any) -> str:
    receipt_id = ledger.new_receipt_id()
    ledger.append_sync(receipt_id, {"kind": EVENT_KIND, "task": task, "event": event, **fields})
    return receipt_id


def transition(
    ledger: Ledger,
    store: DistillStore,
    task: str,
    to_stage: str,
    *,
    reason: str,
    actor: str,
    adapter_id: str | None = None,
    adapter_path: str | None = None,
    manifest_sha256: str | None = None,
    quality: float | None = None,
    samples: int | None = None,
) -> TaskState:
    """Move ``task`` to ``to_stage`` (keeping its adapter unless a new one is given)."""
    cur = store.state(task)
    new = TaskState(
        task=task,
        stage=to_stage,
        adapter_id=adapter_id or (cur.adapter_id if cur else None),
        adapter_path=adapter_path or (cur.adapter_path if cur else None),
        manifest_sha256=manifest_sha256 or (cur.manifest_sha256 if cur else None),
        since_ns=time.time_ns(),
    )
    log_event(
        ledger,
        task,
        "rollback" if to_stage == "rolled_back" else "stage",
        from_stage=cur.stage if cur else None,
        to_stage=to_stage,
        adapter=new.adapter_id,
        adapter_manifest=new.manifest_sha256,
        quality=None if quality is None else round(quality, 6),
        samples=samples,
        reason=reason[:500],
        actor=actor[:100],
    )
    store.set_state(new)
    return new


def record_override(
    ledger: Ledger, store: DistillStore, task: str, model: str, reason: str, operator: str
) -> str:
    """An operator's decision to capture a teacher whose terms do not clearly allow it."""
    if not reason.strip() or not operator.strip():
        raise ValueError("an override needs a reason and the operator's name")
    rid = log_event(
        ledger, task, "terms_override", model=model, reason=reason[:1000], operator=operator[:100]
    )
    store.add_override(task, model, rid, reason, operator)
    return rid
