"""The request path, top to bottom: validate, scan, policy, route, redact,
reserve, send (fallbacks only inside the plan), restore, account, receipt.

Decision logic lives in pure modules (scan, policy, routing, accounting
pricing); :class:`Pipeline` only sequences them and does the I/O. Three rules
are enforced in this package and nowhere else:

* an exchange is opened and closed by :meth:`Pipeline.exchange`, an async
  context manager whose exit — on success, error, client disconnect or
  cancellation — is the only place the budget is settled and the one receipt
  is appended (durable before the exit returns);
* :func:`~hybridgate.pipeline.send.attempts` is the only place a request leaves for an
  upstream, and it only walks ``plan.routes``, which the router built from the
  policy's permitted set, so a fallback can never widen where data goes;
* the exchange ends in one frozen :class:`~hybridgate.outcome.Outcome`; the
  receipt, usage row, metrics and headers are derived from it.

The pipeline receives the collaborators it uses (:class:`PipelineDeps`), not
the whole gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio

from hybridgate.config import VirtualModel
from hybridgate.errors import (
    ErrorFormat,
    GatewayError,
    NoRouteAvailable,
    NotFound,
    PolicyBlocked,
    ServiceUnavailable,
)
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import budget, send, stream
from hybridgate.pipeline.checks import check_output_limits, validate_chat, validate_embeddings
from hybridgate.pipeline.close import close_exchange
from hybridgate.pipeline.decision import confine as confine_decision
from hybridgate.pipeline.decision import decide
from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange, Prepared
from hybridgate.pipeline.scanning import ScanPool
from hybridgate.policy import Decision, Principal, RedactionError, Restorer, mask_request
from hybridgate.policy.model import Action
from hybridgate.providers.base import Provider
from hybridgate.routing import Plan, plan_routes
from hybridgate.routing.quality import prompt_text
from hybridgate.scan import Scanner
from hybridgate.scan.findings import Segment

T = TypeVar("T")


class Pipeline:
    """The request path: opens and closes exchanges and runs the stages in order."""

    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps
        #: Closes still running after their caller was cancelled (kept referenced).
        self._closing: set[asyncio.Task[BaseException | None]] = set()
        self._scans = ScanPool(self._count_scan)

    def _count_scan(self, where: str) -> None:
        m = self.deps.metrics
        m.child(m.scans, where).inc()

    @property
    def scanner(self) -> Scanner:
        return self.deps.scanner

    @scanner.setter
    def scanner(self, scanner: Scanner) -> None:
        self.deps.scanner = scanner

    # -- the exchange: open, and the one close ---------------------------------
    @contextlib.asynccontextmanager
    async def exchange(
        self,
        api: str,
        key: KeyInfo,
        *,
        errors: ErrorFormat = "openai",
        error_bytes: Callable[[GatewayError], bytes] | None = None,
    ) -> AsyncIterator[Exchange]:
        """Open an exchange; closing it settles the budget and appends the receipt.

        A :class:`GatewayError` leaving the block is re-raised carrying the
        response headers (``err.headers``) and its wire format; any other
        exception becomes a 500 ``internal_error`` (logged with its traceback);
        a client disconnect or cancellation is receipted and re-raised. On
        success, a receipt that could not be made durable raises 503.
        A refusal is committed as ``err.render(errors)`` unless ``error_bytes``
        says what the client is sent instead.
        """
        ex = self._open(api, key, errors)
        ex.error_bytes = error_bytes
        try:
            yield ex
        except BaseException as exc:
            out = await self._close_shielded(ex, exc)
            if out is exc:
                raise
            assert out is not None
            raise out from exc
        out = await self._close_shielded(ex, None)
        if out is not None:
            raise out

    def _open(self, api: str, key: KeyInfo, errors: ErrorFormat) -> Exchange:
        ledger = self.deps.ledger
        return Exchange(
            api=api,
            key=key,
            request_id="req_" + secrets.token_hex(12),
            receipt_id=ledger.new_receipt_id(),
            errors=errors,
            response_mac=ledger.committer(),
        )

    async def _close_shielded(
        self, ex: Exchange, exc: BaseException | None
    ) -> BaseException | None:
        """Close even when the caller is being cancelled: the receipt is owed regardless."""
        task = asyncio.ensure_future(close_exchange(self.deps, ex, exc))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        out: BaseException | None = None
        with anyio.CancelScope(shield=True):
            out = await asyncio.shield(task)
        return out

    # -- the pre-send stages -------------------------------------------------
    async def prepare_chat(self, ex: Exchange, body: Any) -> Prepared:
        body = validate_chat(body)
        return await self._prepare(ex, body, body["model"], prompt=prompt_text(body))

    async def prepare_embeddings(self, ex: Exchange, body: Any) -> Prepared:
        body, model, unreadable = validate_embeddings(body)
        return await self._prepare(
            ex,
            body,
            model,
            prompt="",
            confine="embedding input given as token ids cannot be scanned" if unreadable else None,
        )

    async def prepare_native(
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
        check_output_limits(body)
        check_output_limits(estimate)
        return await self._prepare(
            ex, body, model, prompt=prompt, estimate=estimate, confine=confine
        )

    async def send(
        self, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """Send through the plan's routes (fallbacks inside the plan only)."""
        return await send.attempts(self.deps, ex, prepared, call)

    async def _prepare(
        self,
        ex: Exchange,
        body: dict[str, Any],
        model: str,
        *,
        prompt: str,
        estimate: dict[str, Any] | None = None,
        confine: str | None = None,
    ) -> Prepared:
        d = self.deps
        ex.virtual_model = model
        resolved = d.resolve_model(model)
        if resolved is None:
            raise NotFound(
                f"model {model!r} does not exist or is not available", code="model_not_found"
            )
        vm, candidates, ex.adapter = resolved

        segments, scan = await self._scans.scan(d.scanner, d.scan_limits, ex.raw_body, body)
        ex.scan = scan
        policy, phash = d.policy.current
        principal = Principal(key_id=ex.key.key_id, team=ex.key.team)
        decision = decide(scan, principal, candidates, policy, phash)
        if confine:
            decision = confine_decision(decision, candidates, confine)
        ex.decision = decision
        for dc in decision.data_classes:
            d.metrics.child(d.metrics.findings, dc).inc()
        if decision.action is Action.BLOCK:
            raise PolicyBlocked(
                "request blocked by policy: it contains data of class "
                + ", ".join(decision.data_classes or ("unknown",))
            )
        if not decision.permitted:
            raise NoRouteAvailable("no permitted route: " + "; ".join(decision.reasons))

        plan = self._plan(vm, decision, prompt)
        if d.hook is not None:  # task routing (distill): may put an adapter first
            plan = d.hook.prepare(ex, body, decision, plan)
        ex.plan = plan
        sent, restorer = self._redact(body, segments, decision)
        # a spend-capped key: the upstream may bill no more than is held
        sent, cap = budget.cap_output(d, ex, body, sent, plan, estimate)
        ex.sent_body = sent
        ex.masked = len(decision.masks)
        ex.reservation = await budget.reserve(d, ex, body, plan, estimate, cap)
        return Prepared(body=sent, vm=vm, plan=plan, restorer=restorer, adapter=ex.adapter)

    def close(self) -> None:
        """Stop the scan pool (running scans finish on their own)."""
        self._scans.close()

    def _plan(self, vm: VirtualModel, decision: Decision, prompt: str) -> Plan:
        choice = None
        if vm.strategy == "quality":
            router = self.deps.quality_router(vm.router)
            choice = router.choose(
                prompt, strong_share=vm.strong_share, quality_floor=vm.quality_floor
            )
        return plan_routes(
            vm,
            decision.permitted,
            self.deps.table.routes,
            self.deps.health.snapshot(),
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

    # -- send -----------------------------------------------------------------
    async def complete(self, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
        return await send.complete(self.deps, ex, prepared)

    async def embed(self, ex: Exchange, prepared: Prepared) -> dict[str, Any]:
        return await send.embed(self.deps, ex, prepared)

    def stream(self, ex: Exchange, prepared: Prepared) -> AsyncIterator[dict[str, Any]]:
        """Restored chunks. Fails over only before the first chunk; later failures raise."""
        return stream.stream(self.deps, ex, prepared)
