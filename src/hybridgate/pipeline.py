"""The request path, top to bottom: validate, scan, policy, route, redact,
reserve, send (fallbacks only inside the plan), restore, account, receipt.

Decision logic lives in pure modules (scan, policy, routing, accounting
pricing); this module only sequences them and does the I/O. Three rules are
enforced here and nowhere else:

* an exchange is opened and closed by :meth:`Pipeline.exchange`, an async
  context manager whose exit — on success, error, client disconnect or
  cancellation — is the only place the budget is settled and the one receipt
  is appended (durable before the exit returns);
* :meth:`Pipeline._attempts` is the only place a request leaves for an
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
import hmac
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from hybridgate.accounting import BudgetManager, Reservation, UsageLog, baseline_for, cost_usd
from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.errors import (
    ErrorFormat,
    GatewayError,
    InvalidRequest,
    NoRouteAvailable,
    NotFound,
    PayloadTooLarge,
    PolicyBlocked,
    ServiceUnavailable,
    UpstreamError,
)
from hybridgate.jsonlimits import MAX_DEPTH, text_deeper_than
from hybridgate.keys import KeyInfo
from hybridgate.ledger import Ledger
from hybridgate.metrics import Metrics
from hybridgate.outcome import (
    Outcome,
    OutcomeKind,
    classify,
    receipt_fields,
    record_metrics,
    response_headers,
    usage_record,
)
from hybridgate.policy import (
    Decision,
    PolicyHolder,
    Principal,
    RedactionError,
    Restorer,
    RouteFacts,
    evaluate,
    mask_request,
)
from hybridgate.policy.model import Action, PolicyConfig
from hybridgate.providers.adapters import as_adapter_provider
from hybridgate.providers.base import Completion, Provider, Usage
from hybridgate.providers.tokens import estimate_request_tokens, estimate_tokens
from hybridgate.routing import Plan, RouteHealth, plan_routes
from hybridgate.routing.quality import QualityRouter, prompt_text
from hybridgate.routing.table import RouteTable
from hybridgate.scan import Scanner, extract_segments, scan_request
from hybridgate.scan.findings import RequestScan, Segment

if TYPE_CHECKING:
    # The shared (PostgreSQL) budgets need the `postgres` extra; only its type is used here.
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.runtime import ExchangeHook, Gateway

log = logging.getLogger("hybridgate.pipeline")
T = TypeVar("T")

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: Completion tokens reserved when neither the request nor the route bounds them.
DEFAULT_COMPLETION_ESTIMATE = 1024
#: The largest output limit a request may ask for (no model comes close).
MAX_OUTPUT_TOKENS = 2**31 - 1
#: Choices per request (OpenAI's ``n``); each is billed.
MAX_N = 128


@dataclass(eq=False)
class Exchange:
    """One request's facts as the pipeline's stages learn them.

    Only the pipeline's stages write these fields; the API layer feeds the
    response commitment (:meth:`sent`) and says when a stream has started
    (:meth:`mark_streaming`). When the exchange closes, its facts are frozen
    into :attr:`outcome`.
    """

    api: str
    key: KeyInfo
    request_id: str
    receipt_id: str
    errors: ErrorFormat
    #: HMAC over every byte sent to the client, fed as it goes (streams are not buffered).
    response_mac: hmac.HMAC
    raw_body: bytes = b""
    started: float = field(default_factory=time.perf_counter)
    virtual_model: str | None = None
    scan: RequestScan | None = None
    decision: Decision | None = None
    plan: Plan | None = None
    route: RouteConfig | None = None
    usage: Usage | None = None
    masked: int = 0
    reservation: Reservation | None = None
    attempts: list[str] = field(default_factory=list)
    streaming: bool = False
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
    #: The frozen outcome, set once, when the exchange closes.
    result: Outcome | None = None
    # Legacy closing (``Pipeline.begin``/``finish``): what the caller recorded.
    _failure: GatewayError | None = None
    _kind: str | None = None
    _status: int | None = None

    @property
    def outcome(self) -> str:
        """How the exchange ended, an :class:`OutcomeKind` value ("" while it is open)."""
        if self.result is not None:
            return self.result.kind.value
        return self._kind or ""

    @outcome.setter
    def outcome(self, kind: str) -> None:  # legacy callers of ``Pipeline.finish``
        self._kind = OutcomeKind(kind).value

    @property
    def status(self) -> int:
        if self.result is not None:
            return self.result.status
        return self._status if self._status is not None else 200

    @status.setter
    def status(self, status: int) -> None:  # legacy callers of ``Pipeline.finish``
        self._status = status

    @property
    def finished(self) -> bool:
        return self.result is not None

    def fail(self, err: GatewayError) -> None:
        """Legacy: record the error a ``Pipeline.finish`` caller refused with."""
        self._failure = err

    @property
    def cost(self) -> Decimal:
        return self.result.cost if self.result is not None else Decimal(0)

    @property
    def latency_ms(self) -> float:
        if self.result is not None:
            return self.result.latency_ms
        return (time.perf_counter() - self.started) * 1000.0

    def sent(self, data: bytes) -> None:
        """Account bytes sent to the client in the response commitment."""
        self.response_mac.update(data)

    def mark_streaming(self) -> None:
        """The response has started: a failure from now on is a failed stream."""
        self.streaming = True

    def headers(self) -> dict[str, str]:
        """The ``x-hybridgate-*`` headers as of now (a stream's, sent before it ends)."""
        return response_headers(self)


@dataclass
class Prepared:
    """What the pre-send stages decided for one request."""

    body: dict[str, Any]  # what goes upstream (masked when the decision says so)
    vm: VirtualModel
    plan: Plan
    restorer: Restorer | None
    adapter: Adapter | None = None


@dataclass(frozen=True)
class ScanLimits:
    """The per-request scan budget and the pool large scans run on."""

    inline_bytes: int = 32 * 1024
    workers: int = 2
    queue: int = 32
    max_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 10.0


@dataclass
class PipelineDeps:
    """The collaborators the request path uses, and nothing else of the gateway."""

    table: RouteTable
    scanner: Scanner
    policy: PolicyHolder
    providers: Mapping[str, Provider]
    health: RouteHealth
    budgets: BudgetManager | SharedBudgetManager
    usage: UsageLog
    ledger: Ledger
    metrics: Metrics
    quality_router: Callable[[str | None], QualityRouter]
    #: A model name -> (virtual model, candidate routes, task adapter), or None if unknown.
    resolve_model: Callable[
        [str], tuple[VirtualModel, tuple[RouteFacts, ...], Adapter | None] | None
    ] = lambda name: None
    #: A feature that follows exchanges (the distill flywheel), if configured.
    hook: ExchangeHook | None = None
    #: Why receipts cannot be written now (None: they can). Checked before sending.
    store_unavailable: Callable[[], str | None] = lambda: None
    scan_limits: ScanLimits = field(default_factory=ScanLimits)


def scan_body(scanner: Scanner, body: Any) -> tuple[list[Segment], RequestScan]:
    """Scan every string; any failure yields an *incomplete* scan, never a clean one."""
    try:
        segments, unscannable = extract_segments(body)
        return segments, scan_request(scanner, segments, unscannable)
    except Exception as exc:  # fail closed: the policy treats incomplete as sensitive
        log.error("scanner failed: %s", type(exc).__name__)
        return [], RequestScan(complete=False, errors=(f"scanner error: {type(exc).__name__}",))


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
    _check_output_limits(body)
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N):
        raise InvalidRequest(f"`n` must be an integer from 1 to {MAX_N}", param="n")
    for i, m in enumerate(msgs):
        calls = m.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str) and text_deeper_than(args):
                where = f"messages[{i}].tool_calls[{j}].function.arguments"
                raise InvalidRequest(
                    f"{where} is nested more than {MAX_DEPTH} levels deep", param=where
                )
    return body


def _check_output_limits(body: dict[str, Any]) -> None:
    """Output-token limits are positive integers no model comes close to exceeding."""
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        v = body.get(name)
        if v is not None and (
            not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_OUTPUT_TOKENS
        ):
            raise InvalidRequest(
                f"`{name}` must be an integer from 1 to {MAX_OUTPUT_TOKENS}", param=name
            )


def _confine(decision: Decision, candidates: Sequence[RouteFacts], reason: str) -> Decision:
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


def _token_ids(x: Any) -> bool:
    return (
        isinstance(x, list)
        and bool(x)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
    )


class Pipeline:
    def __init__(self, deps: PipelineDeps) -> None:
        self.deps = deps
        #: Closes still running after their caller was cancelled (kept referenced).
        self._closing: set[asyncio.Task[BaseException | None]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._scans_in_pool = 0
        #: Legacy: the whole gateway, for API modules not yet given narrow dependencies
        #: (set by ``create_app``).
        self.gw: Gateway

    @property
    def scanner(self) -> Scanner:
        return self.deps.scanner

    @scanner.setter
    def scanner(self, scanner: Scanner) -> None:
        self.deps.scanner = scanner

    # -- the exchange: open, and the one close ---------------------------------
    @contextlib.asynccontextmanager
    async def exchange(
        self, api: str, key: KeyInfo, *, errors: ErrorFormat = "openai"
    ) -> AsyncIterator[Exchange]:
        """Open an exchange; closing it settles the budget and appends the receipt.

        A :class:`GatewayError` leaving the block is re-raised carrying the
        response headers (``err.headers``) and its wire format; any other
        exception becomes a 500 ``internal_error`` (logged with its traceback);
        a client disconnect or cancellation is receipted and re-raised. On
        success, a receipt that could not be made durable raises 503.
        """
        ex = self._open(api, key, errors)
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

    def begin(self, api: str, key: KeyInfo, raw_body: bytes) -> Exchange:
        """Legacy opening, for modules not yet on :meth:`exchange`; pair with :meth:`finish`.

        The caller records its refusal (``ex.fail``), commits the bytes it sends,
        and calls :meth:`finish` exactly once; closing is the same code path.
        """
        ex = self._open(api, key, "anthropic" if api.startswith("anthropic") else "openai")
        ex.raw_body = raw_body
        return ex

    async def finish(self, ex: Exchange) -> None:
        """Legacy closing: settle and receipt through the one close (once per exchange)."""
        if ex.result is not None:
            return
        failure = ex._failure
        out = await self._close_shielded(ex, failure, legacy=True)
        if failure is None and out is not None:
            raise out  # the receipt could not be made durable

    async def _close_shielded(
        self, ex: Exchange, exc: BaseException | None, *, legacy: bool = False
    ) -> BaseException | None:
        """Close even when the caller is being cancelled: the receipt is owed regardless."""
        task = asyncio.ensure_future(self._close(ex, exc, legacy=legacy))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        out: BaseException | None = None
        with anyio.CancelScope(shield=True):
            out = await asyncio.shield(task)
        return out

    async def _close(
        self, ex: Exchange, exc: BaseException | None, *, legacy: bool = False
    ) -> BaseException | None:
        """Freeze the outcome, settle, record and append the receipt.

        Returns what the caller must raise: the error to render (with headers
        attached), the original exception, or None on a durable success.
        """
        kind, status, code = classify(exc, streaming=ex.streaming)
        if legacy:  # the caller recorded its outcome and committed its bytes itself
            kind = OutcomeKind(ex._kind) if ex._kind else kind
            status = ex._status if ex._status is not None else status
        err: GatewayError | None = None
        if isinstance(exc, GatewayError):
            err = exc
        elif exc is not None and kind is not OutcomeKind.CLIENT_DISCONNECTED:
            log.error("unhandled error in %s", ex.api, exc_info=exc)
            err = GatewayError(
                "internal error while streaming" if ex.streaming else "internal error"
            )
        if (
            err is not None
            and not legacy
            and not ex.streaming
            and kind is not OutcomeKind.CLIENT_DISCONNECTED
        ):
            ex.sent(err.render(ex.errors))
        outcome = self._outcome(ex, kind, status, code)
        ex.result = outcome
        try:
            hook = self.deps.hook
            if hook is not None and ex.task is not None:
                # A follower's fields join the receipt; it decides from the outcome.
                outcome = replace(outcome, extra_fields=hook.receipt_fields(ex))
                ex.result = outcome
            await self._record(ex, outcome)
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

    def _outcome(self, ex: Exchange, kind: OutcomeKind, status: int, code: str | None) -> Outcome:
        d = self.deps
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

    async def _record(self, ex: Exchange, o: Outcome) -> None:
        """Settle (or release) the hold, count, log usage, append the receipt (durable)."""
        d = self.deps
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
        d.metrics.receipts.labels("request").inc()
        if d.hook is not None and ex.task is not None:
            d.hook.finished(ex, appended)

    # -- the pre-send stages -------------------------------------------------
    async def prepare_chat(self, ex: Exchange, body: Any) -> Prepared:
        body = _validate_chat(body)
        return await self._prepare(ex, body, body["model"], prompt=prompt_text(body))

    async def prepare_embeddings(self, ex: Exchange, body: Any) -> Prepared:
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
        _check_output_limits(body)
        _check_output_limits(estimate)
        return await self._prepare(
            ex, body, model, prompt=prompt, estimate=estimate, confine=confine
        )

    async def send(
        self, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """Send through the plan's routes (fallbacks inside the plan only)."""
        return await self._attempts(ex, prepared, call)

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

        segments, scan = await self._scan(ex, body)
        ex.scan = scan
        policy, phash = d.policy.current
        principal = Principal(key_id=ex.key.key_id, team=ex.key.team)
        decision = decide(scan, principal, candidates, policy, phash)
        if confine:
            decision = _confine(decision, candidates, confine)
        ex.decision = decision
        for dc in decision.data_classes:
            d.metrics.findings.labels(dc).inc()
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
        ex.sent_body = sent
        ex.masked = len(decision.masks)
        ex.reservation = self._reserve(ex, body, plan, estimate)
        return Prepared(body=sent, vm=vm, plan=plan, restorer=restorer, adapter=ex.adapter)

    async def _scan(self, ex: Exchange, body: dict[str, Any]) -> tuple[list[Segment], RequestScan]:
        """Scan within the request's budget, large bodies off the event loop.

        Small bodies scan inline (a thread hand-off costs more than their scan).
        Larger ones go to a bounded pool, so one huge prompt cannot stall every
        other request; more waiting than the pool admits is a 503, more bytes
        than the scan budget a 413, a scan past its time budget a 503 — and in
        every case nothing is sent.
        """
        lim = self.deps.scan_limits
        size = len(ex.raw_body) or len(json.dumps(body, ensure_ascii=False))
        if size > lim.max_bytes:
            raise PayloadTooLarge(
                f"the request holds {size} bytes to scan, more than the scan budget of "
                f"{lim.max_bytes} bytes; nothing was sent",
                code="scan_budget_exceeded",
            )
        if size <= lim.inline_bytes:
            return scan_body(self.deps.scanner, body)
        if self._scans_in_pool >= lim.workers + lim.queue:
            raise ServiceUnavailable(
                "the scanner is busy with other large requests; nothing was sent, retry later",
                code="scanner_busy",
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(lim.workers, thread_name_prefix="hybridgate-scan")
        self._scans_in_pool += 1
        fut = asyncio.get_running_loop().run_in_executor(
            self._pool, scan_body, self.deps.scanner, body
        )
        fut.add_done_callback(self._scan_done)  # a timed-out scan holds its slot until it ends
        try:
            return await asyncio.wait_for(asyncio.shield(fut), lim.timeout_s)
        except TimeoutError:
            raise ServiceUnavailable(
                f"scanning this request took longer than its {lim.timeout_s:g} s budget; "
                "nothing was sent",
                code="scan_timeout",
            ) from None

    def _scan_done(self, _: object) -> None:
        self._scans_in_pool -= 1

    def close(self) -> None:
        """Stop the scan pool (running scans finish on their own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

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

    def _reserve(
        self,
        ex: Exchange,
        body: dict[str, Any],
        plan: Plan,
        estimate: dict[str, Any] | None = None,
    ) -> Reservation:
        """Hold an upper bound of what any route of the plan can bill for this request.

        Prompt: no tokenizer makes more tokens than the UTF-8 bytes of the text
        it is given, so the bytes of the body sent (plus the estimator's
        per-message and per-image allowances) bound it whatever the text.
        Completion: ``max_completion_tokens`` / ``max_tokens``, else the route's
        ``max_output_tokens``, else an estimate; times ``n``.
        """
        sent_bytes = len(json.dumps(body, ensure_ascii=False).encode("utf-8", "replace"))
        view = estimate if estimate is not None else body  # chat-shaped
        prompt_bound = sent_bytes + estimate_request_tokens(view)
        asked = (
            view.get("max_completion_tokens")
            or view.get("max_tokens")
            or body.get("max_output_tokens")
            or body.get("max_tokens")
        )
        n_asked = view.get("n")
        n: int = n_asked if isinstance(n_asked, int) else 1
        routes = self.deps.table.routes
        est = Decimal(0)
        completion_bound = 0
        for name in plan.routes:
            out = asked if isinstance(asked, int) else routes[name].max_output_tokens
            completion = (out or DEFAULT_COMPLETION_ESTIMATE) * n
            completion_bound = max(completion_bound, completion)
            est = max(est, cost_usd(routes[name].price, prompt_bound, completion))
        return self.deps.budgets.reserve(
            key_id=ex.key.key_id,
            team=ex.key.team,
            usd=est,
            tokens=prompt_bound + completion_bound,
            key_budget_usd=ex.key.budget_usd,
        )

    # -- send -----------------------------------------------------------------
    async def _attempts(
        self, ex: Exchange, prepared: Prepared, call: Callable[[Provider], Awaitable[T]]
    ) -> T:
        """Try the plan's routes in order; only retryable failures move on."""
        d = self.deps
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
                d.metrics.route_requests.labels(name, route.location, exc.code).inc()
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
            d.metrics.route_requests.labels(name, route.location, "ok").inc()
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

        def tag(chunk: dict[str, Any]) -> dict[str, Any]:
            chunk["model"] = ex.virtual_model
            if ex.task is not None:
                ex.answer_text = (ex.answer_text or "") + _delta_text(chunk)
            return chunk

        async def tagged() -> AsyncIterator[dict[str, Any]]:
            async for chunk in it:
                yield tag(chunk)

        head = tag(first) if first is not None else None
        async for chunk in restored_chunks(ex, prepared, head, tagged()):
            yield chunk


async def restored_chunks(
    ex: Exchange,
    prepared: Prepared,
    first: dict[str, Any] | None,
    it: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """Upstream chat chunks with their usage recorded on the exchange and masked values
    restored (a placeholder split across chunks is held back until complete), then the
    restorer's tail. Every API that streams chat chunks goes through this one loop."""
    restorer = prepared.restorer.stream() if prepared.restorer is not None else None

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        if first is not None:
            yield first
        async for c in it:
            yield c

    async for chunk in chunks():
        u = chunk.get("usage")
        if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int):
            ex.usage = Usage(
                int(u["prompt_tokens"]),
                int(u.get("completion_tokens") or 0),
                reported=not u.get("estimated"),
            )
        yield restorer.feed_chunk(chunk) if restorer is not None else chunk
    if restorer is not None:
        tail = restorer.flush()
        if tail is not None:
            yield tail


def _client_error(exc: UpstreamError) -> GatewayError:
    """A non-retryable upstream 4xx is the request's fault: answer 400, not 502."""
    s = exc.upstream_status
    if s is not None and 400 <= s < 500 and s != 429:
        return InvalidRequest(
            f"upstream rejected the request: {exc.message}", code="upstream_rejected"
        )
    return exc


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
