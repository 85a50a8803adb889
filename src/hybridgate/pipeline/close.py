"""The one close of an exchange: freeze the outcome, settle, record, append the receipt.

:meth:`Pipeline.exchange <hybridgate.pipeline.Pipeline.exchange>` calls
:func:`close_exchange` on every exit (success, error, client disconnect,
cancellation); nothing else settles a budget hold or appends a request receipt.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from decimal import Decimal

from hybridgate.accounting import baseline_for, cost_usd
from hybridgate.errors import GatewayError
from hybridgate.outcome import (
    Outcome,
    OutcomeKind,
    classify,
    receipt_fields,
    record_metrics,
    response_headers,
    usage_record,
)
from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange
from hybridgate.providers.base import Usage
from hybridgate.providers.tokens import estimate_tokens

log = logging.getLogger("hybridgate.pipeline")


async def close_exchange(
    d: PipelineDeps, ex: Exchange, exc: BaseException | None
) -> BaseException | None:
    """Freeze the outcome, settle, record and append the receipt.

    Returns what the caller must raise: the error to render (with headers
    attached), the original exception, or None on a durable success.
    """
    kind, status, code = classify(exc, streaming=ex.streaming)
    err: GatewayError | None = None
    if isinstance(exc, GatewayError):
        err = exc
    elif exc is not None and kind is not OutcomeKind.CLIENT_DISCONNECTED:
        log.error("unhandled error in %s", ex.api, exc_info=exc)
        err = GatewayError("internal error while streaming" if ex.streaming else "internal error")
    if err is not None and not ex.streaming and kind is not OutcomeKind.CLIENT_DISCONNECTED:
        ex.sent(ex.error_bytes(err) if ex.error_bytes is not None else err.render(ex.errors))
    outcome = build_outcome(d, ex, kind, status, code)
    ex.result = outcome
    try:
        hook = d.hook
        if hook is not None and ex.task is not None:
            # A follower's fields join the receipt; it decides from the outcome.
            outcome = replace(outcome, extra_fields=hook.receipt_fields(ex))
            ex.result = outcome
        await record(d, ex, outcome)
    except GatewayError as receipt_err:
        if exc is None:
            err = receipt_err
        else:
            log.error("receipt for %s not written: %s", ex.request_id, receipt_err.message)
    if err is not None:
        err.headers = response_headers(outcome)
        err.error_format = ex.errors
        return err
    return exc


def build_outcome(
    d: PipelineDeps, ex: Exchange, kind: OutcomeKind, status: int, code: str | None
) -> Outcome:
    """Freeze what the exchange learnt into its one :class:`Outcome`."""
    usage = ex.usage
    if usage is None:
        if ex.route is not None and status < 400:
            raw = ex.raw_body.decode("utf-8", "replace")
            usage = Usage(estimate_tokens(raw), 0, reported=False)
        else:
            usage = Usage(0, 0, reported=False)
    cost = (
        cost_usd(ex.route.price, usage.prompt_tokens, usage.completion_tokens)
        if ex.route is not None
        else Decimal(0)
    )
    vm = d.table.virtual_models.get(ex.virtual_model) if ex.virtual_model else None
    baseline_route, baseline_cost = (
        baseline_for(vm, d.table.routes, usage.prompt_tokens, usage.completion_tokens)
        if vm is not None
        else (None, Decimal(0))
    )
    replaced = ex.adapter.replaces if ex.adapter is not None else None
    if replaced is not None and replaced in d.table.routes:
        # An adapter's savings are measured against the route it took over from.
        baseline_route = replaced
        baseline_cost = cost_usd(
            d.table.routes[replaced].price, usage.prompt_tokens, usage.completion_tokens
        )
    return Outcome(
        kind=kind,
        status=status,
        error_code=code,
        api=ex.api,
        request_id=ex.request_id,
        receipt_id=ex.receipt_id,
        key=ex.key,
        time_ns=time.time_ns(),
        latency_ms=(time.perf_counter() - ex.started) * 1000.0,
        virtual_model=ex.virtual_model,
        scan_complete=ex.scan.complete if ex.scan else None,
        decision=ex.decision,
        policy_hash=ex.decision.policy_hash if ex.decision else d.policy.current[1],
        masked=ex.masked,
        route=ex.route,
        attempts=tuple(ex.attempts),
        usage=usage,
        cost=cost,
        baseline_route=baseline_route,
        baseline_cost=baseline_cost,
        request_commitment=d.ledger.commit(ex.raw_body),
        response_commitment=ex.response_mac.hexdigest(),
        adapter=ex.adapter,
        conversation_id=ex.conversation_id,
    )


async def record(d: PipelineDeps, ex: Exchange, o: Outcome) -> None:
    """Settle (or release) the hold, count, log usage, append the receipt (durable)."""
    reservation = ex.reservation
    if reservation is not None:
        if o.route is not None:
            d.budgets.settle(
                reservation,
                usd=o.cost,
                tokens=o.usage.prompt_tokens + o.usage.completion_tokens,
            )
        else:
            d.budgets.release(reservation)
    record_metrics(d.metrics, o)
    d.usage.record(usage_record(o))
    appended = await d.ledger.append(o.receipt_id, receipt_fields(o))
    d.metrics.child(d.metrics.receipts, "request").inc()
    if d.hook is not None and ex.task is not None:
        d.hook.finished(ex, appended)
