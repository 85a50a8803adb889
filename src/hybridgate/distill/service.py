"""The flywheel inside a running gateway: task routing, capture, shadow and audit
comparisons, and automatic promotion or rollback.

The pipeline calls three hooks (see :class:`hybridgate.runtime.ExchangeHook`):

* ``prepare`` names the exchange's task and, when the task's adapter is in
  canary or full, puts the adapter route first - only if the policy permits
  that route for this request;
* ``receipt_fields`` decides capture (pure rules in :mod:`.capture`) and adds
  ``task``, ``capture`` (and ``capture_hash``) and, when the adapter served,
  ``adapter`` and ``adapter_manifest`` to the receipt;
* ``finished`` (after the receipt is durable) stores the sealed pair with its
  receipt id and log index, and runs comparisons in the background, so the
  client never waits for them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from hybridgate.accounting import cost_usd
from hybridgate.config import LocalModel, Price, RouteConfig
from hybridgate.distill.capture import (
    CaptureDecision,
    ExchangeFacts,
    chat_messages_of,
    decide_capture,
    pair_hash,
    pair_record,
)
from hybridgate.distill.checks import OutputCheck
from hybridgate.distill.config import TaskConfig
from hybridgate.distill.crypto import Sealer
from hybridgate.distill.dataset import pair_aad
from hybridgate.distill.events import transition
from hybridgate.distill.promote import SERVING, adapter_serves, draw, judge_stage
from hybridgate.distill.store import Call, Comparison, DistillStore, StoredPair, TaskState
from hybridgate.distill.tasks import task_of
from hybridgate.distill.terms import ChainTerms, ListTerms, TermsSource, catalog_terms
from hybridgate.errors import GatewayError
from hybridgate.ledger.canonical import canonical_json
from hybridgate.policy import Principal, RouteFacts, evaluate
from hybridgate.providers.registry import build_provider
from hybridgate.routing import Plan

if TYPE_CHECKING:
    from hybridgate.ledger import AppendResult
    from hybridgate.pipeline import Exchange
    from hybridgate.policy import Decision
    from hybridgate.runtime import Gateway

log = logging.getLogger("hybridgate.distill")

ADAPTER_ROUTE_PREFIX = "adapter."


_STREAM_KEYS = ("stream", "stream_options")


def comparison_body(api: str, sent: dict[str, Any]) -> dict[str, Any]:
    """The Chat Completions body a shadow or audit comparison sends, from what was sent.

    Comparisons call a route's chat interface (the adapter's, or the teacher's),
    but a Responses or Messages exchange sent its own wire format upstream; such a
    body is translated here, as the gateway translates it for a chat route.
    """
    if "messages" not in sent and "input" in sent:  # the Responses API, sent natively
        from hybridgate.translate.responses_request import responses_to_chat

        sent = responses_to_chat(sent)
    elif api == "anthropic.messages":
        from hybridgate.api.messages import to_chat

        sent = to_chat(sent)
    return {k: v for k, v in sent.items() if k not in _STREAM_KEYS}


def default_terms(gw: Gateway) -> TermsSource:
    """The ``distill.terms`` config entries (they take precedence), then the catalog's."""
    sources: list[TermsSource] = [ListTerms(gw.config.distill.terms)]
    catalog = catalog_terms(gw.config)
    if catalog is not None:
        sources.append(catalog)
    return ChainTerms(sources)


def student_route(task: str, cfg: TaskConfig, st: TaskState) -> RouteConfig | None:
    """The in-process route that serves ``st``'s adapter on the task's base model."""
    if not st.adapter_id or not st.adapter_path or not cfg.student.base_model:
        return None
    s = cfg.student
    price = (
        Price(hourly_usd=s.hourly_usd, tokens_per_second=s.tokens_per_second)
        if s.hourly_usd is not None and s.tokens_per_second is not None
        else Price()
    )
    return RouteConfig(
        name=ADAPTER_ROUTE_PREFIX + task,
        provider="local",
        model=st.adapter_id,
        location="on_prem",
        licence=None,
        price=price,
        local=LocalModel(
            model_path=s.base_model,
            adapter_path=st.adapter_path,
            device=s.device,
            max_new_tokens=s.max_new_tokens,
            dtype="float32",
        ),
    )


class DistillService:
    def __init__(self, gw: Gateway, secret: bytes, terms: TermsSource | None = None) -> None:
        self.gw = gw
        self.cfg = gw.config.distill
        self.store = DistillStore(gw.store)
        self.sealer = Sealer(secret)
        self.checks = {name: OutputCheck(t.check) for name, t in self.cfg.tasks.items()}
        self.terms: TermsSource = terms if terms is not None else default_terms(gw)
        self._pending: set[asyncio.Task[None]] = set()
        self._decisions: dict[str, tuple[CaptureDecision, dict[str, Any] | None]] = {}
        self._judging: dict[str, asyncio.Lock] = {}
        for name, t in self.cfg.tasks.items():
            vname = "task:" + name
            self.gw.virtual_models[vname] = gw.virtual_models[t.model]
            self.gw.candidates[vname] = gw.candidates[t.model]

    # -- hook: prepare ---------------------------------------------------------
    def prepare(self, ex: Exchange, body: dict[str, Any], decision: Decision, plan: Plan) -> Plan:
        task = task_of(ex.task_header, body, ex.virtual_model, self.cfg.tasks)
        if task is None:
            return plan
        ex.task = task
        st = self.store.state(task)
        if st is None or st.stage not in SERVING:
            return plan
        cfg = self.cfg.tasks[task]
        if not adapter_serves(st.stage, ex.request_id, cfg.promotion.canary_share):
            return plan
        route = self._ensure_route(task, st)
        if route is None or not self._permits(ex, route):
            return plan
        rest = tuple(r for r in plan.routes if r != route.name)
        return Plan(
            (route.name, *rest), plan.strategy, f"task {task}: adapter {st.adapter_id} ({st.stage})"
        )

    def _ensure_route(self, task: str, st: TaskState) -> RouteConfig | None:
        route = student_route(task, self.cfg.tasks[task], st)
        if route is None:
            return None
        current = self.gw.routes.get(route.name)
        if current is None or current.model != route.model or current.local != route.local:
            old = self.gw.providers.get(route.name)
            self.gw.routes[route.name] = route
            self.gw.providers[route.name] = build_provider(route)
            if old is not None:
                self._spawn(old.aclose())
        return route

    def _permits(self, ex: Exchange, route: RouteConfig) -> bool:
        """The policy decides for the adapter route as it would for any other route."""
        if ex.scan is None:
            return False
        policy, phash = self.gw.policy.current
        try:
            d = evaluate(
                ex.scan,
                Principal(key_id=ex.key.key_id, team=ex.key.team),
                (RouteFacts.from_route(route),),
                policy,
                phash,
            )
        except Exception:  # fail closed: no decision, no adapter
            log.exception("policy evaluation for the adapter route failed")
            return False
        return route.name in d.permitted

    def _served_by_adapter(self, ex: Exchange) -> bool:
        return ex.route is not None and ex.route.name.startswith(ADAPTER_ROUTE_PREFIX)

    # -- hook: receipt fields ------------------------------------------------------
    def receipt_fields(self, ex: Exchange) -> dict[str, Any]:
        task = ex.task
        assert task is not None
        cfg = self.cfg.tasks[task]
        served_by_adapter = self._served_by_adapter(ex)
        decision = ex.decision
        teacher = ex.route.model if ex.route is not None else None
        facts = ExchangeFacts(
            team=ex.key.team,
            outcome=ex.outcome,
            served_by_adapter=served_by_adapter,
            scan_complete=ex.scan.complete if ex.scan is not None else None,
            data_classes=tuple(decision.data_classes) if decision else (),
            action=decision.action.value if decision else None,
            teacher_model=teacher,
            has_answer=ex.answer_text is not None and ex.sent_body is not None,
        )
        terms = self.terms.output_terms(teacher) if teacher else None
        override = self.store.override(task, teacher) if teacher else None
        cd = decide_capture(cfg, facts, terms, override)
        record: dict[str, Any] | None = None
        if cd.capture:
            messages = chat_messages_of(ex.sent_body or {})
            if messages is None:
                cd = CaptureDecision(False, "the request is not a plain text chat")
            else:
                record = pair_record(messages, ex.answer_text or "", teacher or "")
                if self._residual(record):
                    cd, record = (
                        CaptureDecision(False, "the scanner still finds sensitive data in it"),
                        None,
                    )
        fields: dict[str, Any] = {"task": task, "capture": cd.status}
        if record is not None:
            fields["capture_hash"] = pair_hash(record)
            if cd.override:
                fields["capture_override"] = cd.override
        if served_by_adapter and ex.route is not None:
            st = self.store.state(task)
            fields["adapter"] = ex.route.model
            fields["adapter_manifest"] = st.manifest_sha256 if st else None
        if len(self._decisions) > 10_000:  # receipts that failed to append never finish
            self._decisions.clear()
        self._decisions[ex.receipt_id] = (cd, record)
        return fields

    def _residual(self, record: dict[str, Any]) -> bool:
        """Defence in depth: scan what would be stored; placeholders are not findings."""
        texts = [m["content"] for m in record["messages"]] + [record["answer"]]
        try:
            for t in texts:
                r = self.gw.scanner.scan(t)
                if r.findings or not r.complete:
                    return True
        except Exception:  # fail closed: an unscannable pair is not captured
            log.exception("residual scan of a captured pair failed")
            return True
        return False

    # -- hook: finished ----------------------------------------------------------------
    def finished(self, ex: Exchange, appended: AppendResult) -> None:
        _, record = self._decisions.pop(ex.receipt_id, (None, None))
        if ex.task is None:
            return
        self._spawn(self._after(ex, appended, record))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.get_running_loop().create_task(coro)
        self._pending.add(t)
        t.add_done_callback(self._pending.discard)

    @property
    def busy(self) -> int:
        """Background captures and comparisons still running."""
        return len(self._pending)

    async def drain(self) -> None:
        """Wait for every background capture and comparison (tests, shutdown)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def aclose(self) -> None:
        await self.drain()

    async def _after(
        self, ex: Exchange, appended: AppendResult, record: dict[str, Any] | None
    ) -> None:
        task = ex.task
        assert task is not None
        cfg = self.cfg.tasks[task]
        try:
            if record is not None:
                aad = pair_aad(task, appended.receipt_id, appended.index)
                sealed = self.sealer.seal(canonical_json(record), aad)
                await self.store.add_pair(
                    StoredPair(
                        task,
                        ex.key.team,
                        appended.receipt_id,
                        appended.index,
                        pair_hash(record),
                        sealed,
                    ),
                    cfg.capture.retention_days * 86400.0,
                    cfg.capture.max_pairs,
                )
            if ex.outcome != "ok" or ex.route is None:
                return
            by_adapter = self._served_by_adapter(ex)
            teacher_cost = ex.cost
            if by_adapter:
                teacher_cost = self._teacher_cost(ex)
            await self.store.add_call(
                task,
                Call(
                    "adapter" if by_adapter else "teacher",
                    ex.route.model if by_adapter else None,
                    ex.cost,
                    teacher_cost,
                    ex.latency_ms,
                ),
            )
            await self._compare(ex, task, by_adapter)
        except Exception:  # never the client's problem; the receipt is already written
            log.exception("distill follow-up for %s failed", ex.receipt_id)

    def _teacher_route(self, ex: Exchange) -> RouteConfig | None:
        plan = ex.plan
        for name in plan.routes if plan else ():
            if not name.startswith(ADAPTER_ROUTE_PREFIX):
                return self.gw.routes.get(name)
        return None

    def _teacher_cost(self, ex: Exchange) -> Decimal:
        route = self._teacher_route(ex)
        u = ex.usage
        if route is None or u is None:
            return Decimal(0)
        return cost_usd(route.price, u.prompt_tokens, u.completion_tokens)

    # -- comparisons ---------------------------------------------------------------------
    async def _compare(self, ex: Exchange, task: str, by_adapter: bool) -> None:
        st = self.store.state(task)
        if st is None or st.adapter_id is None or ex.sent_body is None:
            return
        cfg = self.cfg.tasks[task]
        check = self.checks[task]
        try:
            body = comparison_body(ex.api, ex.sent_body)
        except GatewayError as exc:  # a body no chat route could take: nothing to compare
            log.warning("comparison for %s skipped: %s", task, exc.code)
            return
        if st.stage == "shadow" and not by_adapter:
            route = self._ensure_route(task, st)
            if route is None:
                return
            body["max_tokens"] = cfg.student.max_new_tokens
            t0 = time.perf_counter()
            answer = await self._ask(route.name, body)
            ms = (time.perf_counter() - t0) * 1000
            c = Comparison(
                check.agree(answer, ex.answer_text), check.judge(answer).valid, ms, ex.latency_ms
            )
        elif st.stage in SERVING and by_adapter:
            if draw(ex.request_id, "audit") >= cfg.promotion.audit_share:
                return
            teacher = self._teacher_route(ex)
            if teacher is None:
                return
            t0 = time.perf_counter()
            reference = await self._ask(teacher.name, body)
            ms = (time.perf_counter() - t0) * 1000
            c = Comparison(
                check.agree(ex.answer_text, reference),
                check.judge(ex.answer_text).valid,
                ex.latency_ms,
                ms,
            )
        else:
            return
        await self.store.add_comparison(task, st.adapter_id, st.stage, c)
        await self._judge(task)

    async def _ask(self, route_name: str, body: dict[str, Any]) -> str | None:
        provider = self.gw.providers.get(route_name)
        if provider is None:
            return None
        try:
            completion = await provider.chat(body)
        except GatewayError as exc:
            log.warning("comparison call to %s failed: %s", route_name, exc.code)
            return None
        from hybridgate.pipeline.send import answer_text as _answer_text

        return _answer_text(completion.body)

    async def _judge(self, task: str) -> None:
        lock = self._judging.setdefault(task, asyncio.Lock())
        async with lock:
            st = self.store.state(task)
            if st is None or st.adapter_id is None:
                return
            cfg = self.cfg.tasks[task]
            recent = self.store.comparisons(
                task, st.adapter_id, st.stage, st.since_ns, cfg.promotion.min_samples
            )
            j = judge_stage(st.stage, recent, cfg.quality_floor, cfg.promotion)
            if j.verdict == "hold":
                return
            to = "rolled_back" if j.verdict == "rollback" else _advance(st.stage)
            await asyncio.to_thread(
                transition,
                self.gw.ledger,
                self.store,
                task,
                to,
                reason=j.reason,
                actor="gateway",
                quality=j.quality,
                samples=j.samples,
            )
            log.info("task %s: %s -> %s (%s)", task, st.stage, to, j.reason)

    def workspace(self) -> Any:
        """The running gateway's services as a flywheel workspace (train, report)."""
        from hybridgate.distill.flywheel import Workspace

        return Workspace(
            self.gw.config, self.gw.store, self.gw.ledger, self.store, self.sealer, self.terms
        )

    # -- reports --------------------------------------------------------------------------
    def status(self, task: str) -> dict[str, Any]:
        st = self.store.state(task)
        return {
            "task": task,
            "stage": st.stage if st else "off",
            "adapter": st.adapter_id if st else None,
            "pairs": self.store.count(task),
        }


def _advance(stage: str) -> str:
    from hybridgate.distill.promote import next_stage

    nxt = next_stage(stage)
    assert nxt is not None
    return nxt


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
