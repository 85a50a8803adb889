"""Scan a request and decide where it may go: the policy's view of one body.

``policy explain`` calls these same two functions, so what it shows is what
the request path does. Both fail closed: a scanner failure is an incomplete
scan (treated as sensitive), a policy failure a 503 with nothing sent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from hybridgate.errors import ServiceUnavailable
from hybridgate.policy import Decision, Principal, RouteFacts, evaluate
from hybridgate.policy.model import Action, PolicyConfig
from hybridgate.scan import Scanner, seen
from hybridgate.scan.findings import RequestScan, Segment

log = logging.getLogger("hybridgate.pipeline")


def scan_body(
    scanner: Scanner, body: Any, looked: seen.Looked | None = None
) -> tuple[list[Segment], RequestScan]:
    """Scan every string; any failure yields an *incomplete* scan, never a clean one.

    With the gateway's cached scanner, a message seen before costs one lookup
    (:mod:`hybridgate.scan.seen`); the result is the same either way.
    """
    try:
        return seen.scan_body(scanner, body, looked=looked)
    except Exception as exc:  # fail closed: the policy treats incomplete as sensitive
        log.error("scanner failed: %s", type(exc).__name__)
        return [], RequestScan(complete=False, errors=(f"scanner error: {type(exc).__name__}",))


def look_up(scanner: Scanner, body: Any) -> seen.Looked | None:
    """What of ``body`` the scan cache holds (:func:`hybridgate.scan.seen.look_up`).

    None when it cannot say, a failure included: the body is then scanned as its size
    says, and a failure there is reported by the scan itself.
    """
    try:
        return seen.look_up(scanner, body)
    except Exception as exc:
        log.warning("scan cache lookup failed: %s", type(exc).__name__)
        return None


def decide(
    scan: RequestScan,
    principal: Principal,
    candidates: Sequence[RouteFacts],
    policy: PolicyConfig,
    phash: str,
) -> Decision:
    """The policy's decision for a scanned request (also what ``policy explain`` shows).

    An evaluation error answers 503 and nothing is sent.
    """
    try:
        return evaluate(scan, principal, tuple(candidates), policy, phash)
    except Exception as exc:  # fail closed: no decision, nothing is sent
        log.error("policy evaluation failed: %s", type(exc).__name__)
        raise ServiceUnavailable(
            "policy evaluation failed; nothing was sent", code="policy_unavailable"
        ) from exc


def confine(decision: Decision, candidates: Sequence[RouteFacts], reason: str) -> Decision:
    """Keep a decision on on-prem routes for ``reason`` (never loosens a block)."""
    if decision.action is Action.BLOCK:
        return decision
    facts = {f.name: f for f in candidates}
    permitted = tuple(n for n in decision.permitted if facts[n].location == "on_prem")
    return replace(
        decision,
        action=Action.ON_PREM_ONLY,
        permitted=permitted,
        reasons=(*decision.reasons, reason),
    )
