"""The request path, top to bottom: validate, scan, policy, route, redact,
reserve, send (fallbacks only inside the plan), restore, account, receipt.

Decision logic lives in pure modules (scan, policy, routing, accounting
pricing); this module only sequences them and does the I/O. Two rules are
enforced here and nowhere else:

* :meth:`Pipeline._attempts` is the only place a request leaves for an
  upstream, and it only walks ``plan.routes``, which the router built from the
  policy's permitted set, so a fallback can never widen where data goes.
* every exchange that got past authentication ends in :meth:`Pipeline.finish`,
  which appends exactly one receipt.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, TypeVar

from hybridgate.accounting import Reservation, UsageRecord, baseline_for, cost_usd
from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.errors import (
    GatewayError,
    InvalidRequest,
    NoRouteAvailable,
    NotFound,
    PolicyBlocked,
    ServiceUnavailable,
    UpstreamError,
)
from hybridgate.keys import KeyInfo
from hybridgate.policy import (
    Decision,
    Principal,
    RedactionError,
    Restorer,
    RouteFacts,
    evaluate,
    mask_request,
)
from hybridgate.policy.model import Action
from hybridgate.providers.adapters import as_adapter_provider
from hybridgate.providers.base import Completion, Provider, Usage
from hybridgate.providers.tokens import estimate_request_tokens, estimate_tokens
from hybridgate.routing import Plan, plan_routes
from hybridgate.routing.quality import prompt_text
from hybridgate.runtime import Gateway
from hybridgate.scan import extract_segments, scan_request
from hybridgate.scan.findings import RequestScan, Segment

log = logging.getLogger("hybridgate.pipeline")
T = TypeVar("T")

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
DEFAULT_COMPLETION_ESTIMATE = 1024


@dataclass
class Exchange:
    """One request's facts as they accumulate; the receipt and usage record come from it."""

    api: str
    key: KeyInfo
    raw_body: bytes
    request_id: str
    receipt_id: str
    started: float = field(default_factory=time.perf_counter)
    virtual_model: str | None = None
    scan: RequestScan | None = None
    decision: Decision | None = None
    plan: Plan | None = None
    route: RouteConfig | None = None
    usage: Usage | None = None
    cost: Decimal = Decimal(0)
    masked: int = 0
    status: int = 200
    outcome: str = "ok"
    error_code: str | None = None
    #: HMAC over every byte sent to the client, fed as it goes (streams are not buffered).
    response_mac: hmac.HMAC | None = None
    reservation: Reservation | None = None
    attempts: list[str] = field(default_factory=list)
    finished: bool = False
    #: the ``x-hybridgate-task`` header, and the task the exchange belongs to (distill)
    task_header: str | None = None
    task: str | None = None
    #: what went upstream (masked) and the answer text before restore: what capture may keep
    sent_body: dict[str, Any] | None = None
    answer_text: str | None = None
    #: The task adapter a ``<base>:<adapter>`` model name asked for.
    adapter: Adapter | None = None
    #: the Responses conversation this exchange continues or starts (named in its receipt)
    conversation_id: str | None = None

    @property
    def latency_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0

    def sent(self, data: bytes) -> None:
        """Account bytes sent to the client in the response commitment."""
        if self.response_mac is not None:
            self.response_mac.update(data)

    def fail(self, err: GatewayError) -> None:
        self.status = err.status
        self.error_code = err.code
        self.outcome = {
            "policy_blocked": "blocked",
            "no_route_available": "refused",
            "budget_exceeded": "refused",
            "rate_limited": "refused",
        }.get(err.code, "error")


@dataclass
class Prepared:
    """What the pre-send stages decided for one request."""

    body: dict[str, Any]  # what goes upstream (masked when the decision says so)
    vm: VirtualModel
    plan: Plan
    restorer: Restorer | None
    adapter: Adapter | None = None


def _validate_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > 256:
        raise InvalidRequest("`model` must be a non-empty string", param="model")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InvalidRequest("`messages` must be a non-empty array", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if m.get("role") not in _ROLES:
            raise InvalidRequest(
                f"messages[{i}].role is missing or unknown", param=f"messages[{i}]"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"messages[{i}].content must be a string or an array", param=f"messages[{i}]"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    for name in ("max_tokens", "max_completion_tokens"):
        v = body.get(name)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise InvalidRequest(f"`{name}` must be a positive integer", param=name)
    return body


def _token_ids(x: Any) -> bool:
    return (
        isinstance(x, list)
        and bool(x)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
    )


class Pipeline:
    def __init__(self, gw: Gateway) -> None:
        self.gw = gw

    # -- start -------------------------------------------------------------
    def begin(self, api: str, key: KeyInfo, raw_body: bytes) -> Exchange:
        return Exchange(
            api=api,
            key=key,
            raw_body=raw_body,
            request_id="req_" + secrets.token_hex(12),
            receipt_id=self.gw.ledger.new_receipt_id(),
            response_mac=self.gw.ledger.committer(),
        )

    # -- the pre-send stages -------------------------------------------------
    def prepare_chat(self, ex: Exchange, body: Any) -> Prepared:
        body = _validate_chat(body)
        return self._prepare(ex, body, body["model"], prompt=prompt_text(body))

    def prepare_embeddings(self, ex: Exchange, body: Any) -> Prepared:
        if not isinstance(body, dict):
            raise InvalidRequest("request body must be a JSON object")
        model, inp = body.get("model"), body.get("input")
        if not isinstance(model, str) or not model:
            raise InvalidRequest("`model` must be a non-empty string", param="model")
        if not (
            isinstance(inp, str)
            or (isinstance(inp, list) and inp and all(isinstance(x, str | int) for x in inp))
            or (isinstance(inp, list) and inp and all(_token_ids(x) for x in inp))
        ):
            raise InvalidRequest("`input` must be a string or a non-empty array", param="input")
        # Token ids are text the scanner cannot read without the client's tokenizer.
        unreadable = isinstance(inp, list) and any(not isinstance(x, str) for x in inp)
        return self._prepare(
            ex,
            body,
            model,
            prompt="",
            confine="embedding input given as token ids cannot be scanned" if unreadable else None,
        )

    def prepare_native(
        self,
        ex: Exchange,
        body: dict[str, Any],
        model: str,
        *,
        prompt: str,
        estimate: dict[str, Any],
        confine: str | None = None,
    ) -> Prepared:
        """Scan, decide, route, mask and reserve a body kept in its own wire format.

        ``estimate`` is a chat-shaped view used only to estimate tokens;
        ``confine``, a reason, keeps the exchange on on-prem routes whatever
        the scan found (a conversation an earlier turn confined stays confined;
        a document the scanner cannot read is unknown data).
        """
        return self._prepare(ex, body, model, prompt=prompt, estimate=estimate, confine=confine)

    async def send(
        self, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """Send through the plan's routes (fallbacks inside the plan only)."""
        return await self._attempts(ex, prepared, call)

    def _prepare(
        self,
        ex: Exchange,
        body: dict[str, Any],
        model: str,
        *,
        prompt: str,
        estimate: dict[str, Any] | None = None,
        confine: str | None = None,
    ) -> Prepared:
        gw = self.gw
        ex.virtual_model = model
        resolved = gw.resolve_model(model)
        if resolved is None:
            raise NotFound(
                f"model {model!r} does not exist or is not available", code="model_not_found"
            )
        vm, candidates, ex.adapter = resolved

        segments, scan = self._scan(body)
        ex.scan = scan
        decision = self._decide(ex, scan, candidates)
        if confine:
            decision = self._confine(decision, candidates, confine)
        ex.decision = decision
        for dc in decision.data_classes:
            gw.metrics.findings.labels(dc).inc()
        if decision.action is Action.BLOCK:
            raise PolicyBlocked(
                "request blocked by policy: it contains data of class "
                + ", ".join(decision.data_classes or ("unknown",))
            )
        if not decision.permitted:
            raise NoRouteAvailable("no permitted route: " + "; ".join(decision.reasons))

        plan = self._plan(vm, decision, prompt)
        if self.gw.hook is not None:  # task routing (distill): may put an adapter first
            plan = self.gw.hook.prepare(ex, body, decision, plan)
        ex.plan = plan
        sent, restorer = self._redact(body, segments, decision)
        ex.sent_body = sent
        ex.masked = len(decision.masks)
        ex.reservation = self._reserve(ex, estimate if estimate is not None else body, plan)
        return Prepared(body=sent, vm=vm, plan=plan, restorer=restorer, adapter=ex.adapter)

    def _scan(self, body: dict[str, Any]) -> tuple[list[Segment], RequestScan]:
        """Scan every string; any failure yields an *incomplete* scan, never a clean one."""
        try:
            segments, unscannable = extract_segments(body)
            return segments, scan_request(self.gw.scanner, segments, unscannable)
        except Exception as exc:  # fail closed: the policy treats incomplete as sensitive
            log.error("scanner failed: %s", type(exc).__name__)
            return [], RequestScan(complete=False, errors=(f"scanner error: {type(exc).__name__}",))

    def _decide(
        self, ex: Exchange, scan: RequestScan, candidates: tuple[RouteFacts, ...]
    ) -> Decision:
        policy, phash = self.gw.policy.current
        principal = Principal(key_id=ex.key.key_id, team=ex.key.team)
        try:
            return evaluate(scan, principal, candidates, policy, phash)
        except Exception as exc:  # fail closed: no decision, nothing is sent
            log.error("policy evaluation failed: %s", type(exc).__name__)
            raise ServiceUnavailable(
                "policy evaluation failed; nothing was sent", code="policy_unavailable"
            ) from exc

    def _confine(
        self, decision: Decision, candidates: tuple[RouteFacts, ...], reason: str
    ) -> Decision:
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

    def _plan(self, vm: VirtualModel, decision: Decision, prompt: str) -> Plan:
        choice = None
        if vm.strategy == "quality":
            router = self.gw.quality_router(vm.router)
            choice = router.choose(
                prompt, strong_share=vm.strong_share, quality_floor=vm.quality_floor
            )
        return plan_routes(
            vm,
            decision.permitted,
            self.gw.routes,
            self.gw.health.snapshot(),
            time.monotonic(),
            quality_choice=choice,
        )

    @staticmethod
    def _redact(
        body: dict[str, Any], segments: list[Segment], decision: Decision
    ) -> tuple[dict[str, Any], Restorer | None]:
        if not decision.masks:
            return body, None
        try:
            return mask_request(body, segments, decision)
        except RedactionError as exc:  # fail closed: never send what could not be masked
            raise ServiceUnavailable(
                "redaction failed; nothing was sent", code="redaction_failed"
            ) from exc

    def _reserve(self, ex: Exchange, body: dict[str, Any], plan: Plan) -> Reservation:
        prompt_est = estimate_request_tokens(body)
        out = body.get("max_completion_tokens") or body.get("max_tokens")
        completion_est = out if isinstance(out, int) else DEFAULT_COMPLETION_ESTIMATE
        routes = self.gw.routes
        est = max(cost_usd(routes[n].price, prompt_est, completion_est) for n in plan.routes)
        return self.gw.budgets.reserve(
            key_id=ex.key.key_id,
            team=ex.key.team,
            usd=est,
            tokens=prompt_est + completion_est,
            key_budget_usd=ex.key.budget_usd,
        )

    # -- send -----------------------------------------------------------------
    async def _attempts(
        self, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """Try the plan's routes in order; only retryable failures move on."""
        gw = self.gw
        failures: list[str] = []
        for name in prepared.plan.routes:
            route = gw.routes[name]
            if not gw.health.allow(name):
                failures.append(f"{name}: circuit open")
                continue
            ex.attempts.append(name)
            t0 = time.perf_counter()
            try:
                result = await call(gw.providers[name])
            except UpstreamError as exc:
                gw.metrics.route_requests.labels(name, route.location, exc.code).inc()
                if not exc.retryable:
                    raise _client_error(exc) from exc
                gw.health.record_failure(name)
                failures.append(f"{name}: {exc.code}")
                log.warning("route %s failed (%s); trying the next permitted route", name, exc.code)
                continue
            gw.health.record_success(name, (time.perf_counter() - t0) * 1000)
            gw.metrics.route_requests.labels(name, route.location, "ok").inc()
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

    async def complete(self, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
        def call(p: Provider) -> Awaitable[Completion]:
            if prepared.adapter is not None:
                return as_adapter_provider(p).chat(prepared.body, adapter=prepared.adapter)
            return p.chat(prepared.body)

        completion = await self._attempts(ex, prepared, call)
        ex.usage = completion.usage
        body = completion.body
        if ex.task is not None:
            ex.answer_text = _answer_text(body)
        if prepared.restorer is not None:
            body = prepared.restorer.restore_completion(body)
        body["model"] = ex.virtual_model or body.get("model")
        return body

    async def embed(self, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
        def call(p: Provider) -> Awaitable[dict[str, Any]]:
            return p.embeddings(prepared.body)

        body = await self._attempts(ex, prepared, call)
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

    async def stream(self, ex: Exchange, prepared: Prepared) -> AsyncIterator[dict[str, Any]]:
        """Restored chunks. Fails over only before the first chunk; later failures raise."""

        async def open_stream(
            p: Provider,
        ) -> tuple[dict[str, Any] | None, AsyncIterator[dict[str, Any]]]:
            if prepared.adapter is not None:
                source = as_adapter_provider(p).chat_stream(prepared.body, adapter=prepared.adapter)
            else:
                source = p.chat_stream(prepared.body)
            it = source.__aiter__()
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                return None, it
            return first, it

        first, it = await self._attempts(ex, prepared, open_stream)
        restorer = prepared.restorer.stream() if prepared.restorer is not None else None

        def emit(chunk: dict[str, Any]) -> dict[str, Any]:
            u = chunk.get("usage")
            if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int):
                ex.usage = Usage(
                    int(u["prompt_tokens"]),
                    int(u.get("completion_tokens") or 0),
                    reported=not u.get("estimated"),
                )
            chunk["model"] = ex.virtual_model
            if ex.task is not None:
                ex.answer_text = (ex.answer_text or "") + _delta_text(chunk)
            return restorer.feed_chunk(chunk) if restorer is not None else chunk

        if first is not None:
            yield emit(first)
        async for chunk in it:
            yield emit(chunk)
        if restorer is not None:
            tail = restorer.flush()
            if tail is not None:
                yield tail

    # -- account and prove ------------------------------------------------------
    async def finish(self, ex: Exchange) -> None:
        """Settle the budget, record usage, and append the one receipt (durable on return)."""
        if ex.finished:
            return
        ex.finished = True
        gw = self.gw
        usage = ex.usage
        if usage is None and ex.route is not None and ex.status < 400:
            usage = Usage(
                estimate_tokens(ex.raw_body.decode("utf-8", "replace")), 0, reported=False
            )
        tokens_in = usage.prompt_tokens if usage else 0
        tokens_out = usage.completion_tokens if usage else 0
        if ex.route is not None:
            ex.cost = cost_usd(ex.route.price, tokens_in, tokens_out)
        if ex.reservation is not None:
            if ex.route is not None:
                gw.budgets.settle(ex.reservation, usd=ex.cost, tokens=tokens_in + tokens_out)
            else:
                gw.budgets.release(ex.reservation)
        vm = gw.virtual_models.get(ex.virtual_model) if ex.virtual_model else None
        baseline_route, baseline_cost = (
            baseline_for(vm, gw.routes, tokens_in, tokens_out)
            if vm is not None
            else (None, Decimal(0))
        )
        replaced = ex.adapter.replaces if ex.adapter is not None else None
        if replaced is not None and replaced in gw.routes:
            # An adapter's savings are measured against the route it took over from.
            baseline_route = replaced
            baseline_cost = cost_usd(gw.routes[replaced].price, tokens_in, tokens_out)
        latency = ex.latency_ms
        decision = ex.decision
        action = (
            decision.action.value if decision else ("block" if ex.outcome == "blocked" else "none")
        )
        if ex.route is not None:
            gw.metrics.tokens.labels(ex.route.name, "in").inc(tokens_in)
            gw.metrics.tokens.labels(ex.route.name, "out").inc(tokens_out)
            gw.metrics.cost.labels(ex.route.name).inc(float(ex.cost))
        gw.metrics.requests.labels(ex.api, ex.outcome, action).inc()
        gw.metrics.latency.labels(ex.api).observe(latency / 1000.0)
        gw.usage.record(
            UsageRecord(
                request_id=ex.request_id,
                receipt_id=ex.receipt_id,
                time_ns=time.time_ns(),
                key_id=ex.key.key_id,
                team=ex.key.team,
                virtual_model=ex.virtual_model or "",
                route=ex.route.name if ex.route else None,
                provider=ex.route.provider if ex.route else None,
                location=ex.route.location if ex.route else None,
                prompt_tokens=tokens_in,
                completion_tokens=tokens_out,
                usage_reported=usage.reported if usage else False,
                cost_usd=ex.cost,
                baseline_cost_usd=baseline_cost,
                baseline_route=baseline_route,
                latency_ms=latency,
                outcome=ex.outcome,
                status=ex.status,
                adapter=ex.adapter.name if ex.adapter else None,
                adapter_sha256=ex.adapter.sha256 if ex.adapter else None,
            )
        )
        fields: dict[str, Any] = {
            "kind": "request",
            "api": ex.api,
            "request_id": ex.request_id,
            "key_id": ex.key.key_id,
            "team": ex.key.team,
            "request_commitment": gw.ledger.commit(ex.raw_body),
            "response_commitment": (ex.response_mac or gw.ledger.committer()).hexdigest(),
            "data_classes": list(decision.data_classes) if decision else [],
            "scan_complete": ex.scan.complete if ex.scan else None,
            "action": action,
            "masked": ex.masked,
            "policy_hash": decision.policy_hash if decision else gw.policy.current[1],
            "virtual_model": ex.virtual_model,
            "route": ex.route.name if ex.route else None,
            "provider": ex.route.provider if ex.route else None,
            "model": ex.route.model if ex.route else None,
            "location": ex.route.location if ex.route else None,
            "region": ex.route.region if ex.route else None,
            "attempts": ex.attempts,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "usage_reported": usage.reported if usage else False,
            "cost_usd": str(ex.cost),
            "latency_ms": round(latency, 3),
            "outcome": ex.outcome,
            "status": ex.status,
            "error_code": ex.error_code,
        }
        if ex.adapter is not None:
            fields["adapter"] = ex.adapter.name
            fields["adapter_sha256"] = ex.adapter.sha256
        if gw.hook is not None and ex.task is not None:
            fields.update(gw.hook.receipt_fields(ex))
        if ex.conversation_id is not None:
            fields["conversation_id"] = ex.conversation_id
        appended = await gw.ledger.append(ex.receipt_id, fields)
        gw.metrics.receipts.labels("request").inc()
        if gw.hook is not None and ex.task is not None:
            gw.hook.finished(ex, appended)


def _answer_text(body: dict[str, Any]) -> str | None:
    choices = body.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        msg = choices[0].get("message")
        if isinstance(msg, dict) and isinstance(msg.get("content"), str):
            return str(msg["content"])
    return None


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return str(delta["content"])
    return ""


def _client_error(exc: UpstreamError) -> GatewayError:
    """A non-retryable upstream 4xx is the request's fault: answer 400, not 502."""
    s = exc.upstream_status
    if s is not None and 400 <= s < 500 and s != 429:
        return InvalidRequest(
            f"upstream rejected the request: {exc.message}", code="upstream_rejected"
        )
    return exc
