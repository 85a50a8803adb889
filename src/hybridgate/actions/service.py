"""The action gate: authorize actions, hold them for people, and check receipts.

Decisions come from pure code (the policy's action rules, the receipt checks
in :mod:`hybridgate.actions.verify`); this module adds what needs state and
I/O: the receipt log, the nonce ledger, approvals held in memory with their
rows in the store, and forwarding to the executor. Every answer is a
:class:`VerdictResult` the HTTP layer renders as is.

Failing closed shapes the choices here: nothing without a verifiable receipt
reaches the executor; a nonce is burned *before* forwarding so an action can
never run twice (an executor failure then costs the agent a new
authorization, never a double transfer); a hold that ends without a decision
releases nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hybridgate.actions.approvals import (
    Approver,
    ApproverRegistry,
    HeldApproval,
    check_approver_signature,
)
from hybridgate.actions.executor import AiohttpForwarder, Forwarder
from hybridgate.actions.model import (
    KIND_ACTION,
    KIND_APPROVAL,
    OUTCOME_ALLOWED,
    OUTCOME_DENIED,
    OUTCOME_HALTED,
    ActionRequest,
    DecisionRequest,
    valid_approval_id,
)
from hybridgate.actions.store import MIGRATIONS, ActionStore, ApprovalRecord, ApprovalStatus
from hybridgate.actions.verify import ActionCheck, check_action_receipt
from hybridgate.config import ActionsConfig
from hybridgate.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
)
from hybridgate.keys import KeyInfo
from hybridgate.ledger import Ledger, VerifierKey, canonical_json
from hybridgate.policy import PolicyHolder, evaluate_action
from hybridgate.store.base import Migration, Store

log = logging.getLogger("hybridgate.actions")


@dataclass(frozen=True, slots=True)
class VerdictResult:
    """An HTTP status and the JSON body that goes with it."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)


def _ns(seconds: float) -> int:
    return int(seconds * 1_000_000_000)


class ActionService:
    """One per gateway. ``clock`` (seconds, like :func:`time.time`) drives receipt
    expiry so tests can move time; hold timeouts run on the event loop's clock."""

    def __init__(
        self,
        ledger: Ledger,
        policy_holder: PolicyHolder,
        store: Store,
        config: ActionsConfig,
        clock: Callable[[], float] = time.time,
        *,
        verifiers: Callable[[], Sequence[VerifierKey]] | None = None,
        forwarder: Forwarder | None = None,
        max_held: int = 1024,
    ) -> None:
        self._ledger = ledger
        self._policy = policy_holder
        self._config = config
        self._clock = clock
        self._verifiers = verifiers or ledger.verifiers
        self._forward: Forwarder = forwarder or AiohttpForwarder()
        self._max_held = max_held
        self._db = ActionStore(store)
        self.approvers = ApproverRegistry(self._db, config.approvers_dir)
        self._pending: dict[str, HeldApproval] = {}
        self._held_gates = 0
        # Approvals a previous process held can never be answered: their requests are gone.
        expired = self._db.expire_all_pending()
        if expired:
            log.info("expired %d approvals left pending by a previous run", expired)

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    @property
    def config(self) -> ActionsConfig:
        return self._config

    # -- authorize -----------------------------------------------------------
    async def authorize(self, req: ActionRequest, key: KeyInfo) -> VerdictResult:
        """Apply the policy's action rules; on ``require_approval`` wait for a person."""
        policy, phash = self._policy.current
        verdict = evaluate_action(
            policy, action=req.action, params=req.params, team=key.team, agent_id=req.agent_id
        )
        if verdict.effect == "allow":
            return await self._allow(req, key, phash, verdict.rule, verdict.reason)
        if verdict.effect == "deny":
            return await self._deny(req, key, phash, verdict.rule, verdict.reason)
        return await self._hold_for_approval(req, key, verdict.rule, verdict.reason)

    def _fields(
        self,
        req: ActionRequest,
        key: KeyInfo,
        policy_hash: str,
        outcome: str,
        rule: str | None,
        reason: str,
        approval: HeldApproval | None,
    ) -> dict[str, Any]:
        allowed = outcome == OUTCOME_ALLOWED
        fields: dict[str, Any] = {
            "kind": KIND_ACTION,
            "action": req.action,
            "params_hash": req.params_hash,
            "agent_id": req.agent_id,
            "team": key.team,
            "key_id": key.key_id,
            "policy_hash": policy_hash,
            # A decimal string: nanosecond times exceed the 2**53 integers RFC 8785 allows.
            "expires_at_ns": (
                str(_ns(self._clock() + self._config.receipt_ttl_s)) if allowed else None
            ),
            "nonce": secrets.token_hex(16) if allowed else None,
            "outcome": outcome,
            "rule": rule,
            "reason": reason,
        }
        if approval is not None:
            fields["approval_id"] = approval.approval_id
            fields["approver"] = approval.approver
            fields["approver_key_id"] = approval.approver_key_id
        return fields

    async def _log(self, fields: dict[str, Any]) -> str:
        rid = self._ledger.new_receipt_id()
        await self._ledger.append(rid, fields)
        return rid

    async def _allow(
        self,
        req: ActionRequest,
        key: KeyInfo,
        policy_hash: str,
        rule: str | None,
        reason: str,
        approval: HeldApproval | None = None,
    ) -> VerdictResult:
        rid = await self._log(
            self._fields(req, key, policy_hash, OUTCOME_ALLOWED, rule, reason, approval)
        )
        signed = self._ledger.get_receipt(rid)
        if signed is None:
            raise ServiceUnavailable("receipt log did not return the receipt it just stored")
        body: dict[str, Any] = {
            "verdict": "ALLOW",
            "receipt_id": rid,
            "receipt": signed,
            # bundle() may sign a checkpoint through the store: off the event loop.
            "bundle": await asyncio.to_thread(self._ledger.bundle, rid),
            "rule": rule,
            "reason": reason,
        }
        if approval is not None:
            body["approval_id"] = approval.approval_id
        return VerdictResult(200, body)

    async def _deny(
        self,
        req: ActionRequest,
        key: KeyInfo,
        policy_hash: str,
        rule: str | None,
        reason: str,
        approval: HeldApproval | None = None,
    ) -> VerdictResult:
        rid = await self._log(
            self._fields(req, key, policy_hash, OUTCOME_DENIED, rule, reason, approval)
        )
        body: dict[str, Any] = {
            "verdict": "DENY",
            "rule": rule,
            "reason": reason,
            "receipt_id": rid,
        }
        if approval is not None:
            body["approval_id"] = approval.approval_id
        return VerdictResult(403, body)

    # -- approvals -------------------------------------------------------------
    async def _hold_for_approval(
        self, req: ActionRequest, key: KeyInfo, rule: str | None, reason: str
    ) -> VerdictResult:
        if len(self._pending) >= self._max_held:
            raise RateLimited("too many actions are waiting for approval; try again later")
        now = time.time_ns()
        held = HeldApproval(
            approval_id="apr_" + secrets.token_hex(12),
            request=req,
            team=key.team,
            key_id=key.key_id,
            created_ns=now,
            expires_ns=now + _ns(self._config.hold_timeout_s),
        )
        self._pending[held.approval_id] = held
        try:
            # The row is queued before any decision can be (the writer is FIFO).
            await self._db.add_approval(
                ApprovalRecord(
                    approval_id=held.approval_id,
                    action=req.action,
                    params_hash=req.params_hash,
                    agent_id=req.agent_id,
                    team=key.team,
                    key_id=key.key_id,
                    status="pending",
                    created_ns=held.created_ns,
                    expires_ns=held.expires_ns,
                )
            )
            log.info("action %s by %s held as %s", req.action, req.agent_id, held.approval_id)
            await self._wait(held)
        finally:
            self._pending.pop(held.approval_id, None)
            if held.state == "pending":  # cancelled: the client went away
                held.state = "expired"
                self._db.finish_approval_nowait(held.approval_id, "expired")
        return await self._after_hold(held, req, key, rule, reason)

    async def _wait(self, held: HeldApproval) -> None:
        try:
            await asyncio.wait_for(held.event.wait(), self._config.hold_timeout_s)
        except TimeoutError:
            if held.state == "pending":
                held.state = "expired"
                await self._db.finish_approval(held.approval_id, "expired")
            else:  # a decision won the race and is being logged; its end is bounded
                await held.event.wait()

    async def _after_hold(
        self, held: HeldApproval, req: ActionRequest, key: KeyInfo, rule: str | None, reason: str
    ) -> VerdictResult:
        policy, phash = self._policy.current
        if held.state == "approve":
            # The policy may have changed while a person looked: it still has the last word.
            again = evaluate_action(
                policy, action=req.action, params=req.params, team=key.team, agent_id=req.agent_id
            )
            if again.effect == "deny":
                return await self._deny(req, key, phash, again.rule, again.reason, held)
            return await self._allow(
                req, key, phash, rule, f"approved by {held.approver}: {reason}", held
            )
        if held.state == "reject":
            return await self._deny(req, key, phash, rule, f"rejected by {held.approver}", held)
        if held.state == "error":
            raise ServiceUnavailable("the approval could not be logged; nothing was released")
        rid = await self._log(
            self._fields(
                req, key, phash, OUTCOME_HALTED, rule, "no decision within the hold timeout", held
            )
        )
        return VerdictResult(
            408,
            {
                "verdict": "HALTED",
                "reason": "no approval decision within the hold timeout; nothing was released",
                "approval_id": held.approval_id,
                "receipt_id": rid,
            },
        )

    def list_approvals(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Stored approvals, newest first; live ones carry their parameters for the approver."""
        out = []
        for rec in self._db.list_approvals(status, limit):
            live = self._pending.get(rec.approval_id)
            out.append(live.to_json() if live is not None else rec.to_json())
        return out

    def get_approval(self, approval_id: str) -> dict[str, Any]:
        live = self._pending.get(approval_id)
        if live is not None:
            return live.to_json()
        rec = self._db.get_approval(approval_id) if valid_approval_id(approval_id) else None
        if rec is None:
            raise NotFound("no such approval")
        return rec.to_json()

    async def decide(self, approval_id: str, dec: DecisionRequest) -> dict[str, Any]:
        """Record an approver's signed decision and release the held request."""
        held = self._pending.get(approval_id)
        if held is None:
            rec = self._db.get_approval(approval_id) if valid_approval_id(approval_id) else None
            if rec is None:
                raise NotFound("no such approval")
            raise Conflict(f"approval {approval_id} is already {rec.status}")
        if held.state != "pending":
            raise Conflict(f"approval {approval_id} is already decided")
        approver = self.approvers.lookup(dec.approver)
        if approver is None:
            raise PermissionDenied(f"unknown approver {dec.approver!r}")
        if not check_approver_signature(
            approver,
            dec.signature,
            approval_id=approval_id,
            decision=dec.decision,
            req=held.request,
        ):
            raise PermissionDenied("approver signature does not verify for this decision")
        # Everything above ran without yielding, so the hold is still pending here.
        held.state = dec.decision
        held.approver = approver.name
        held.approver_key_id = approver.key.key_id
        status: ApprovalStatus = "approved" if dec.decision == "approve" else "rejected"
        # Shielded: once the decision is taken, an admin client hanging up must not
        # leave it half logged; the held request learns the outcome either way.
        rid = await asyncio.shield(self._record_decision(held, approver, dec, status))
        log.info("approval %s %s by %s", approval_id, status, approver.name)
        return {"approval_id": approval_id, "status": status, "receipt_id": rid}

    async def _record_decision(
        self, held: HeldApproval, approver: Approver, dec: DecisionRequest, status: ApprovalStatus
    ) -> str:
        try:
            rid = await self._log(
                {
                    "kind": KIND_APPROVAL,
                    "approval_id": held.approval_id,
                    "decision": dec.decision,
                    "approver": approver.name,
                    "approver_key_id": approver.key.key_id,
                    "approver_signature": dec.signature,
                    "action": held.request.action,
                    "params_hash": held.request.params_hash,
                    "agent_id": held.request.agent_id,
                    "team": held.team,
                }
            )
            held.decision_receipt_id = rid
            await self._db.finish_approval(
                held.approval_id,
                status,
                approver=approver.name,
                approver_key_id=approver.key.key_id,
                receipt_id=rid,
            )
        except BaseException:
            held.state = "error"
            raise
        finally:
            held.event.set()
        return rid

    # -- gate ------------------------------------------------------------------
    async def gate(self, req: ActionRequest, receipt: object) -> VerdictResult:
        """The reference verifier in front of an executor."""
        _, phash = self._policy.current
        check = check_action_receipt(
            receipt,
            action=req.action,
            params_hash=req.params_hash,
            agent_id=req.agent_id,
            keys=list(self._verifiers()),
            now_ns=_ns(self._clock()),
            policy_hash=phash,
        )
        if check.verdict == "HALTED":
            return await self._halt(check)
        if not check.ok:
            return _deny_result(check)
        assert check.receipt_id is not None and check.nonce is not None
        if not self._in_log(check.receipt_id, receipt):
            return _deny_result(
                ActionCheck.deny("receipt is not in the receipt log", check.receipt_id)
            )
        if not await self._db.burn_nonce(check.nonce, check.receipt_id, time.time_ns()):
            return VerdictResult(
                409,
                {
                    "verdict": "DENY",
                    "reason": "receipt was already used",
                    "receipt_id": check.receipt_id,
                },
            )
        body: dict[str, Any] = {
            "verdict": "ALLOW",
            "receipt_id": check.receipt_id,
            "forwarded": False,
        }
        url = self._config.executor_url
        if url:
            payload = {
                "agent_id": req.agent_id,
                "action": req.action,
                "params": req.params,
                "receipt_id": check.receipt_id,
            }
            try:
                # Shielded: with the nonce spent, the executor call runs to its end even
                # if the agent hangs up, so the action's fate is never left half-known.
                result = await asyncio.shield(self._forward(url, payload))
            except UpstreamError as err:
                log.warning("executor failed for %s: %s", check.receipt_id, err.message)
                return VerdictResult(
                    err.status,
                    {
                        "error": {
                            "type": err.openai_type,
                            "code": err.code,
                            "message": err.message,
                        },
                        "receipt_id": check.receipt_id,
                        "receipt_used": True,
                    },
                )
            body.update(forwarded=True, executor={"status": result.status, "body": result.body})
        return VerdictResult(200, body)

    def _in_log(self, receipt_id: str, presented: object) -> bool:
        stored = self._ledger.get_receipt(receipt_id)
        if stored is None or not isinstance(presented, dict):
            return False
        try:
            return canonical_json(
                {"receipt": stored["receipt"], "signature": stored["signature"]}
            ) == canonical_json(
                {"receipt": presented.get("receipt"), "signature": presented.get("signature")}
            )
        except (ValueError, TypeError, KeyError):
            return False

    async def _halt(self, check: ActionCheck) -> VerdictResult:
        """Hold a request without a real receipt for the hold timeout, then refuse it.

        The wait is what "halted" means to an agent: the action does not happen
        and the caller learns nothing faster by retrying. Holds are bounded so
        receipt-less traffic cannot pin unlimited connections.
        """
        if self._held_gates < self._max_held:
            self._held_gates += 1
            try:
                await asyncio.sleep(self._config.hold_timeout_s)
            finally:
                self._held_gates -= 1
        return VerdictResult(
            408, {"verdict": "HALTED", "reason": f"{check.reason}; nothing was forwarded"}
        )

    async def aclose(self) -> None:
        """Release every held approval as expired (shutdown): nothing is approved by leaving."""
        for held in list(self._pending.values()):
            if held.state == "pending":
                held.state = "expired"
                with contextlib.suppress(ServiceUnavailable):
                    await self._db.finish_approval(held.approval_id, "expired")
                held.event.set()


def _deny_result(check: ActionCheck) -> VerdictResult:
    body: dict[str, Any] = {"verdict": "DENY", "reason": check.reason}
    if check.receipt_id is not None:
        body["receipt_id"] = check.receipt_id
    return VerdictResult(403, body)
