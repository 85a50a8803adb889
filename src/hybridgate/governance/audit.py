"""Offline trace of policy governance through the receipt log. Pure over receipt bodies.

Given the log's receipt bodies in order (their signatures and the tree
already checked by :func:`hybridgate.ledger.verify_log`), replay governance:
the first governance document is the root (or must equal a pinned one), each
later one must pass :func:`check_rotation` against its predecessor, and each
applied policy must carry M valid approver signatures of the governance in
force, or one signature and a change that the tighten-only check accepts
against the policy it replaced (re-run here, so an auditor does not have to
trust the gateway's word that a change was an emergency tightening). Then
every request and action receipt's ``policy_hash`` must be an approved policy
applied before it in the log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from hybridgate.governance.model import (
    GovernanceDoc,
    GovernanceError,
    Signature,
    check_rotation,
    proposal_payload,
    valid_signers,
)
from hybridgate.governance.tighten import loosenings
from hybridgate.policy.holder import policy_hash
from hybridgate.policy.model import PolicyConfig


@dataclass
class ApprovedPolicy:
    policy_hash: str
    receipt_id: str
    log_index: int
    applied_ns: int
    approval: str  # threshold, emergency, bootstrap
    signers: list[dict[str, str]]
    governance_version: int
    proposal_id: str | None


@dataclass
class Trace:
    governance: list[tuple[int, str, str]] = field(default_factory=list)  # version, hash, rid
    policies: list[ApprovedPolicy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    receipts_checked: int = 0
    by_receipt: dict[str, str] = field(default_factory=dict)  # receipt id -> policy hash

    @property
    def ok(self) -> bool:
        return not self.problems

    def approval_of(self, phash: str) -> ApprovedPolicy | None:
        return next((p for p in reversed(self.policies) if p.policy_hash == phash), None)


def _int(v: Any) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1


def check_policy_receipt(
    body: dict[str, Any], doc: GovernanceDoc, previous: PolicyConfig | None, trace: Trace
) -> tuple[PolicyConfig | None, ApprovedPolicy | None]:
    """Check one ``policy`` receipt against the governance in force and the policy it
    replaces; the approved policy and its record, or ``(None, None)`` with the problem
    appended to ``trace``."""
    rid = str(body.get("receipt_id"))
    where = f"policy receipt {rid}"
    try:
        policy = PolicyConfig.model_validate(body.get("policy"))
    except ValidationError:
        trace.problems.append(f"{where}: the policy in it is not a valid policy")
        return None, None
    phash = policy_hash(policy)
    if phash != body.get("policy_hash"):
        trace.problems.append(f"{where}: policy_hash does not match the policy it carries")
        return None, None
    if body.get("governance_hash") != doc.hash():
        trace.problems.append(f"{where}: names governance {body.get('governance_hash')!s:.16}")
        return None, None
    approval = body.get("approval")
    raw = body.get("signatures")
    sigs: list[Signature] = []
    for s in raw if isinstance(raw, list) else []:
        try:
            sigs.append(Signature(approver=s["approver"], key_id=s["key_id"], sig=s["sig"]))
        except (KeyError, TypeError, ValidationError):
            trace.problems.append(f"{where}: malformed signature entry")
    signers: list[str] = []
    if approval == "bootstrap":
        if trace.policies:
            trace.problems.append(
                f"{where}: a bootstrap policy after governance already applied one"
            )
            return None, None
    else:
        base = body.get("base_policy_hash")
        prev_hash = policy_hash(previous) if previous is not None else None
        if base != prev_hash:
            trace.problems.append(
                f"{where}: approved against {base!s:.16}, not the policy in force"
            )
            return None, None
        payload = proposal_payload(
            proposal_id=str(body.get("proposal_id")), policy_hash=phash, base_policy_hash=str(base)
        )
        signers = valid_signers(doc.keys(), sigs, payload)
        if approval == "threshold":
            if len(signers) < doc.threshold:
                trace.problems.append(
                    f"{where}: {len(signers)} valid signature(s), {doc.threshold} required"
                )
                return None, None
        elif approval == "emergency":
            if not signers:
                trace.problems.append(f"{where}: emergency change without a valid signature")
                return None, None
            assert previous is not None
            problems = loosenings(previous, policy)
            if problems:
                trace.problems.append(
                    f"{where}: logged as an emergency tightening but loosens: {problems[0]}"
                )
                return None, None
        else:
            trace.problems.append(f"{where}: unknown approval {approval!r}")
            return None, None
    by_name = {s.approver: s for s in sigs}
    approved = ApprovedPolicy(
        policy_hash=phash,
        receipt_id=rid,
        log_index=_int(body.get("log_index")),
        applied_ns=_int(body.get("time_ns")),
        approval=str(approval),
        signers=[
            {
                "approver": n,
                "key_id": by_name[n].key_id,
                "signed_ns": str(
                    next((s.get("signed_ns") for s in raw if s.get("approver") == n), "")
                ),
            }
            for n in signers
        ]
        if isinstance(raw, list)
        else [],
        governance_version=doc.version,
        proposal_id=body.get("proposal_id"),
    )
    return policy, approved


def trace_governance(bodies: Iterable[dict[str, Any]], pinned_root: str | None = None) -> Trace:
    """Replay governance over receipt bodies in log order."""
    trace = Trace()
    doc: GovernanceDoc | None = None
    policy: PolicyConfig | None = None
    approved: set[str] = set()
    for body in bodies:
        kind = body.get("kind")
        rid = str(body.get("receipt_id"))
        if kind == "governance":
            try:
                new = GovernanceDoc.parse(body.get("governance"))
            except GovernanceError as exc:
                trace.problems.append(f"governance receipt {rid}: {exc}")
                continue
            if new.hash() != body.get("governance_hash"):
                trace.problems.append(f"governance receipt {rid}: hash does not match")
                continue
            if doc is None:
                if pinned_root is not None and new.hash() != pinned_root:
                    trace.problems.append(
                        f"governance receipt {rid}: root {new.hash()[:16]} is not the pinned"
                        f" root {pinned_root[:16]}"
                    )
                    continue
            else:
                try:
                    check_rotation(doc, new)
                except GovernanceError as exc:
                    trace.problems.append(f"governance receipt {rid}: {exc}")
                    continue
            doc = new
            trace.governance.append((new.version, new.hash(), rid))
        elif kind == "policy":
            if doc is None:
                trace.problems.append(f"policy receipt {rid} before any governance document")
                continue
            new_policy, record = check_policy_receipt(body, doc, policy, trace)
            if new_policy is not None and record is not None:
                policy = new_policy
                trace.policies.append(record)
                approved.add(record.policy_hash)
        elif doc is not None and isinstance(body.get("policy_hash"), str):
            trace.receipts_checked += 1
            phash = body["policy_hash"]
            trace.by_receipt[rid] = phash
            if phash not in approved:
                trace.problems.append(
                    f"receipt {rid} ({kind}) was decided under policy {phash[:16]},"
                    " which governance never approved before it"
                )
    return trace
