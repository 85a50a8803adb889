"""How an exchange ended, as one frozen value, and everything derived from it.

An exchange (one authenticated request) ends in exactly one :class:`Outcome`.
The receipt's fields, the usage record, the metrics and the ``x-hybridgate-*``
response headers are each computed from it by one function here, so a new
fact about a request is added in one place and cannot disagree between the
receipt, the usage log and the headers.

Outcome kinds are an enum, decided from what ended the exchange (nothing, a
:class:`~hybridgate.errors.GatewayError`, an unexpected exception, or the
client going away) by :func:`classify` — never looked up from error strings
elsewhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from hybridgate.accounting import UsageRecord
from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig
from hybridgate.errors import (
    ClientDisconnected,
    GatewayError,
    NoRouteAvailable,
    PolicyBlocked,
    RateLimited,
)
from hybridgate.keys import KeyInfo
from hybridgate.metrics import Metrics
from hybridgate.policy import Decision
from hybridgate.providers.base import Usage

#: The HTTP status receipts record for a client that went away (nginx's convention).
CLIENT_CLOSED_STATUS = 499


class OutcomeKind(StrEnum):
    """How an exchange ended; the value is what receipts and usage rows record."""

    OK = "ok"
    #: The policy forbids sending the request anywhere.
    BLOCKED = "blocked"
    #: Nothing permitted could take it now: no route, budget or rate limit.
    REFUSED = "refused"
    #: Bad input, an upstream failure or an internal error before the answer began.
    ERROR = "error"
    #: The answer had begun streaming when something failed.
    STREAM_FAILED = "stream_failed"
    #: The client hung up (mid-body, mid-answer, or the task was cancelled).
    CLIENT_DISCONNECTED = "client_disconnected"


def classify(exc: BaseException | None, *, streaming: bool) -> tuple[OutcomeKind, int, str | None]:
    """The kind, HTTP status and error code for what ended an exchange.

    ``streaming`` is true once the response has started (headers sent), so a
    failure after it is a failed stream whatever its cause.
    """
    if exc is None:
        return OutcomeKind.OK, 200, None
    if isinstance(exc, ClientDisconnected | asyncio.CancelledError | GeneratorExit):
        return OutcomeKind.CLIENT_DISCONNECTED, CLIENT_CLOSED_STATUS, None
    if not isinstance(exc, GatewayError):
        return (
            OutcomeKind.STREAM_FAILED if streaming else OutcomeKind.ERROR,
            500,
            "internal_error",
        )
    if streaming:
        kind = OutcomeKind.STREAM_FAILED
    elif isinstance(exc, PolicyBlocked):
        kind = OutcomeKind.BLOCKED
    elif isinstance(exc, NoRouteAvailable | RateLimited):
        kind = OutcomeKind.REFUSED
    else:
        kind = OutcomeKind.ERROR
    return kind, exc.status, exc.code


class HeaderFacts(Protocol):
    """What the response headers say; a live exchange (for a stream's headers,
    sent before it ends) and a finished :class:`Outcome` both provide it."""

    @property
    def request_id(self) -> str: ...
    @property
    def receipt_id(self) -> str: ...
    @property
    def decision(self) -> Decision | None: ...
    @property
    def route(self) -> RouteConfig | None: ...
    @property
    def masked(self) -> int: ...
    @property
    def conversation_id(self) -> str | None: ...


def response_headers(facts: HeaderFacts) -> dict[str, str]:
    """The ``x-hybridgate-*`` headers of an exchange's response."""
    h = {
        "x-hybridgate-request-id": facts.request_id,
        "x-hybridgate-route": facts.route.name if facts.route else "none",
        "x-hybridgate-receipt": facts.receipt_id,
    }
    d = facts.decision
    if d is not None:
        h["x-hybridgate-action"] = d.action.value
        if d.data_classes:
            h["x-hybridgate-data-classes"] = ",".join(d.data_classes)
    if facts.route is not None:
        h["x-hybridgate-location"] = facts.route.location
    if facts.masked:
        h["x-hybridgate-masked"] = str(facts.masked)
    if facts.conversation_id:
        h["x-hybridgate-conversation"] = facts.conversation_id
    return h


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything known about an exchange once it ended. Built once, never changed."""

    kind: OutcomeKind
    status: int
    error_code: str | None
    api: str
    request_id: str
    receipt_id: str
    key: KeyInfo
    time_ns: int
    latency_ms: float
    virtual_model: str | None
    scan_complete: bool | None
    decision: Decision | None
    policy_hash: str
    masked: int
    route: RouteConfig | None
    attempts: tuple[str, ...]
    usage: Usage
    cost: Decimal
    baseline_route: str | None
    baseline_cost: Decimal
    request_commitment: str
    response_commitment: str
    #: The task adapter that answered (its registered name and content id), if any.
    adapter: Adapter | None = None
    #: The Responses conversation the exchange continues or starts.
    conversation_id: str | None = None
    #: Fields a follower of exchanges (the distill flywheel) adds to the receipt.
    extra_fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """The policy action as receipts and metrics record it."""
        if self.decision is not None:
            return self.decision.action.value
        return "block" if self.kind is OutcomeKind.BLOCKED else "none"


def receipt_fields(o: Outcome) -> dict[str, Any]:
    """The signed receipt's fields (commitments, never the prompt or the answer)."""
    r = o.route
    fields: dict[str, Any] = {
        "kind": "request",
        "api": o.api,
        "request_id": o.request_id,
        "key_id": o.key.key_id,
        "team": o.key.team,
        "request_commitment": o.request_commitment,
        "response_commitment": o.response_commitment,
        "data_classes": list(o.decision.data_classes) if o.decision else [],
        "scan_complete": o.scan_complete,
        "action": o.action,
        "masked": o.masked,
        "policy_hash": o.policy_hash,
        "virtual_model": o.virtual_model,
        "route": r.name if r else None,
        "provider": r.provider if r else None,
        "model": r.model if r else None,
        "location": r.location if r else None,
        "region": r.region if r else None,
        "attempts": list(o.attempts),
        "tokens_in": o.usage.prompt_tokens,
        "tokens_out": o.usage.completion_tokens,
        "usage_reported": o.usage.reported,
        "cost_usd": str(o.cost),
        "latency_ms": round(o.latency_ms, 3),
        "outcome": o.kind.value,
        "status": o.status,
        "error_code": o.error_code,
    }
    if o.adapter is not None:
        fields["adapter"] = o.adapter.name
        fields["adapter_sha256"] = o.adapter.sha256
    fields.update(o.extra_fields)
    if o.conversation_id is not None:
        fields["conversation_id"] = o.conversation_id
    return fields


def usage_record(o: Outcome) -> UsageRecord:
    """The usage-log row (what reports and savings are computed from)."""
    r = o.route
    return UsageRecord(
        request_id=o.request_id,
        receipt_id=o.receipt_id,
        time_ns=o.time_ns,
        key_id=o.key.key_id,
        team=o.key.team,
        virtual_model=o.virtual_model or "",
        route=r.name if r else None,
        provider=r.provider if r else None,
        location=r.location if r else None,
        prompt_tokens=o.usage.prompt_tokens,
        completion_tokens=o.usage.completion_tokens,
        usage_reported=o.usage.reported,
        cost_usd=o.cost,
        baseline_cost_usd=o.baseline_cost,
        baseline_route=o.baseline_route,
        latency_ms=o.latency_ms,
        outcome=o.kind.value,
        status=o.status,
        adapter=o.adapter.name if o.adapter else None,
        adapter_sha256=o.adapter.sha256 if o.adapter else None,
    )


def record_metrics(metrics: Metrics, o: Outcome) -> None:
    """Prometheus counters for one finished exchange (labels from config only)."""
    child = metrics.child
    if o.route is not None:
        name = o.route.name
        child(metrics.tokens, name, "in").inc(o.usage.prompt_tokens)
        child(metrics.tokens, name, "out").inc(o.usage.completion_tokens)
        child(metrics.cost, name).inc(float(o.cost))
    child(metrics.requests, o.api, o.kind.value, o.action).inc()
    child(metrics.latency, o.api).observe(o.latency_ms / 1000.0)
