"""Shared pieces of the flywheel tests: a gateway with the ticket-triage task."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway_harness import Harness, running_gateway
from hybridgate.distill.service import DistillService
from hybridgate.distill.tickets import teacher_label

TERMS = [
    {
        "model": "gpt-4o",
        "training_use": "restricted",
        "allowed_purposes": ["internal-task-model"],
        "source": "https://openai.com/policies/services-agreement (output use, test copy)",
    },
    {
        "model": "llama-3.1-8b",
        "training_use": "allowed",
        "source": "https://llama.meta.com/llama3_1/license (test copy)",
    },
]


def distill_section(
    claude_capture: dict[str, Any] | None = None, **task_overrides: Any
) -> dict[str, Any]:
    task: dict[str, Any] = {
        "model": "any",
        "check": {"kind": "label_set", "labels": ["billing", "technical", "account", "shipping"]},
        "quality_floor": 0.8,
        "capture": {"teams": ["support"], "retention_days": 7},
    }
    task.update(task_overrides)
    return {
        "tasks": {
            "ticket-triage": task,
            "claude-triage": {
                "model": "claude",
                "check": {"kind": "label_set", "labels": ["billing", "technical"]},
                "capture": claude_capture or {"teams": ["support"]},
            },
        },
        "terms": TERMS,
    }


@contextmanager
def triage_gateway(
    tmp: Path,
    claude_capture: dict[str, Any] | None = None,
    *,
    store: dict[str, Any] | None = None,
    **task_overrides: Any,
) -> Iterator[Harness]:
    """``store``: the gateway's ``store:`` section (default: SQLite in the home)."""
    with running_gateway(
        tmp,
        distill=distill_section(claude_capture, **task_overrides),
        scanner={"terms": ["project-zephyr"]},
        store=store or {"kind": "sqlite"},
    ) as h:
        for up in (h.external, h.onprem):
            up.configure(respond=teacher_label)
        h.claude.configure(respond=teacher_label)
        yield h


def service(h: Harness) -> DistillService:
    hook = h.gw.hook
    assert isinstance(hook, DistillService)
    return hook


def settle(h: Harness, until: Callable[[], bool] | None = None, limit_s: float = 60.0) -> None:
    """Wait for the gateway's background captures/comparisons and, on the shared log
    (PostgreSQL), for the sequencer to merge every queued receipt (bounded; not a
    timing check)."""
    svc = service(h)
    queued = getattr(h.gw.ledger, "queued", lambda: 0)
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if svc.busy == 0 and queued() == 0 and (until is None or until()):
            return
        time.sleep(0.02)
    raise AssertionError("background distill work did not settle")
