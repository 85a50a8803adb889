"""Sending: the one place a request leaves for an upstream.

:func:`attempts` walks only ``plan.routes``, which the router built from the
policy's permitted set, so a fallback can never widen where data goes. Only
retryable failures move on to the next route.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from hybridgate.errors import (
    GatewayError,
    InvalidRequest,
    NoRouteAvailable,
    ServiceUnavailable,
    UpstreamError,
)
from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange, Prepared
from hybridgate.policy.model import Action
from hybridgate.providers.adapters import as_adapter_provider
from hybridgate.providers.base import Completion, Provider, Usage
from hybridgate.providers.tokens import estimate_tokens

log = logging.getLogger("hybridgate.pipeline")
T = TypeVar("T")


async def attempts(
    d: PipelineDeps, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
) -> T:
    """Try the plan's routes in order; only retryable failures move on."""
    reason = d.store_unavailable()
    if reason is not None:  # fail closed: nothing leaves without a receipt to prove it
        raise ServiceUnavailable(
            f"the receipt store is unavailable ({reason}); nothing was sent",
            code="store_unavailable",
        )
    failures: list[str] = []
    for name in prepared.plan.routes:
        route = d.table.routes[name]
        if not d.health.allow(name):
            failures.append(f"{name}: circuit open")
            continue
        ex.attempts.append(name)
        t0 = time.perf_counter()
        try:
            result = await call(d.providers[name])
        except UpstreamError as exc:
            d.metrics.child(d.metrics.route_requests, name, route.location, exc.code).inc()
            if not exc.retryable:
                raise _client_error(exc) from exc
            # A 5xx *answer* may be this request's fault: attribute it to the key,
            # so one client cannot open the route for everyone.
            answered = exc.upstream_status is not None and exc.upstream_status >= 500
            source = (ex.key.key_id or "admin") if answered else None
            d.health.record_failure(name, source)
            failures.append(f"{name}: {exc.code}")
            log.warning("route %s failed (%s); trying the next permitted route", name, exc.code)
            continue
        d.health.record_success(name, (time.perf_counter() - t0) * 1000)
        d.metrics.child(d.metrics.route_requests, name, route.location, "ok").inc()
        ex.route = route
        return result
    confined = ex.decision is not None and ex.decision.action is Action.ON_PREM_ONLY
    scope = (
        "request is confined to on-prem routes ("
        + ", ".join(ex.decision.reasons if ex.decision else ())
        + "); "
        if confined
        else ""
    )
    raise NoRouteAvailable(
        f"{scope}every permitted route failed: " + "; ".join(failures or ["none tried"])
    )


async def complete(d: PipelineDeps, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
    """A chat completion through the plan, restored and named by the virtual model."""

    def call(p: Provider) -> Awaitable[Completion]:
        if prepared.adapter is not None:
            return as_adapter_provider(p).chat(prepared.body, adapter=prepared.adapter)
        return p.chat(prepared.body)

    completion = await attempts(d, ex, prepared, call)
    ex.usage = completion.usage
    body = completion.body
    if ex.task is not None:
        ex.answer_text = answer_text(body)
    if prepared.restorer is not None:
        body = prepared.restorer.restore_completion(body)
    body["model"] = ex.virtual_model or body.get("model")
    return body


async def embed(d: PipelineDeps, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
    """Embeddings through the plan; usage estimated when the upstream reports none."""

    def call(p: Provider) -> Awaitable[dict[str, Any]]:
        return p.embeddings(prepared.body)

    body = await attempts(d, ex, prepared, call)
    u = body.get("usage") if isinstance(body, dict) else None
    pt = u.get("prompt_tokens") if isinstance(u, dict) else None
    if isinstance(pt, int):
        ex.usage = Usage(pt, 0, reported=True)
    else:
        inp = prepared.body.get("input")
        texts = [inp] if isinstance(inp, str) else [str(x) for x in inp or []]
        ex.usage = Usage(sum(estimate_tokens(t) for t in texts), 0, reported=False)
    body["model"] = ex.virtual_model
    return body


def _client_error(exc: UpstreamError) -> GatewayError:
    """A non-retryable upstream 4xx is the request's fault: answer 400, not 502."""
    s = exc.upstream_status
    if s is not None and 400 <= s < 500 and s != 429:
        return InvalidRequest(
            f"upstream rejected the request: {exc.message}", code="upstream_rejected"
        )
    return exc


def answer_text(body: dict[str, Any]) -> str | None:
    """The first choice's text of a chat completion (what distill capture keeps)."""
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        msg = choices[0].get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            return str(msg["content"])
    return None
