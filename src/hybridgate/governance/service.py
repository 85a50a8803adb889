"""Governance at run time: proposals, signatures, apply, and the gate on policy reloads.

Built once per gateway by :func:`attach` when the config names a governance
file. From then on the policy holder accepts only the policy governance last
applied, so neither the admin reload endpoint nor SIGHUP nor a hand-edited
config can switch the gateway to an unapproved policy. Without a governance
file none of this runs and the policy reloads as before.

Order of an apply: the receipt is appended first (the durable, signed record
that these people approved this policy), then the version row, then the swap.
A failure before the swap leaves the old policy active.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from hybridgate.errors import ConfigError, Conflict, InvalidRequest, NotFound, PermissionDenied
from hybridgate.governance.model import (
    GovernanceDoc,
    GovernanceError,
    Signature,
    check_rotation,
    proposal_payload,
    valid_proposal_id,
    valid_signers,
    verify_one,
)
from hybridgate.governance.store import GovernanceStore, PolicyVersion, Proposal
from hybridgate.governance.tighten import loosenings
from hybridgate.ledger import Ledger
from hybridgate.policy.holder import PolicyHolder, policy_hash
from hybridgate.policy.model import PolicyConfig

log = logging.getLogger("hybridgate.governance")

KIND_GOVERNANCE = "governance"
KIND_POLICY = "policy"
MAX_GOVERNANCE_BYTES = 256 * 1024


def load_governance_file(path: str | Path) -> GovernanceDoc:
    """Read a governance document (YAML or JSON); any problem is a :class:`ConfigError`."""
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > MAX_GOVERNANCE_BYTES:
            raise ConfigError(f"{p}: larger than {MAX_GOVERNANCE_BYTES} bytes")
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{p}: cannot read the governance file: {exc}") from exc
    try:
        return GovernanceDoc.parse(raw)
    except GovernanceError as exc:
        raise ConfigError(f"{p}: {exc}") from exc


def policy_diff(old: PolicyConfig, new: PolicyConfig) -> str:
    """A unified diff of the two policies as sorted YAML: what approvers read before signing."""

    def lines(p: PolicyConfig) -> list[str]:
        text = yaml.safe_dump(p.model_dump(mode="json"), sort_keys=True, default_flow_style=False)
        return text.splitlines(keepends=True)

    return "".join(difflib.unified_diff(lines(old), lines(new), "active", "proposed"))


def _sig_json(keys: dict[str, Any], s: dict[str, Any]) -> dict[str, Any]:
    return {
        "approver": s["approver"],
        "key_id": s["key_id"],
        "public_key": keys[s["approver"]].to_string(),
        "sig": s["sig"],
        "signed_ns": str(s["signed_ns"]),
    }


@dataclass
class GovernanceService:
    """One per gateway; every method that writes is async and serialized by one lock."""

    store: GovernanceStore
    ledger: Ledger
    holder: PolicyHolder
    doc: GovernanceDoc
    file_error: str | None = None
    clock: Callable[[], int] = time.time_ns
    _active_hash: str = ""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    # -- startup -----------------------------------------------------------------------
    @classmethod
    def attach(
        cls, store: GovernanceStore, ledger: Ledger, holder: PolicyHolder, path: str | Path
    ) -> GovernanceService:
        """Reconcile the governance file with what the log already accepted, load the last
        applied policy (or record the configured one as the bootstrap) and install the gate."""
        file_doc = load_governance_file(path)
        svc = cls(store=store, ledger=ledger, holder=holder, doc=file_doc)
        stored = store.latest_doc()
        if stored is None:
            svc._accept_doc(file_doc, previous=None, signers=[])
        else:
            svc.doc = GovernanceDoc.parse(stored[0])
            if file_doc.hash() != svc.doc.hash():
                try:
                    signers = check_rotation(svc.doc, file_doc)
                except GovernanceError as exc:
                    svc.file_error = f"governance file {path} not accepted: {exc}"
                    log.error("%s; governance version %d stays", svc.file_error, svc.doc.version)
                else:
                    svc._accept_doc(file_doc, previous=svc.doc.hash(), signers=signers)
        latest = store.latest_version()
        if latest is None:
            policy, phash = holder.current
            svc._record_sync(policy, phash, None, "bootstrap", [])
            log.warning(
                "governance: no approved policy yet; the configured policy %s is the bootstrap",
                phash[:16],
            )
        else:
            policy = PolicyConfig.model_validate(latest.policy)
            if policy_hash(policy) != latest.policy_hash:
                raise ConfigError("stored approved policy does not match its hash")
            svc._active_hash = latest.policy_hash
            result = holder.reload(lambda: policy)
            if not result.ok:
                raise ConfigError(f"cannot load the approved policy: {result.error}")
        svc._active_hash = holder.current[1]
        holder.set_gate(svc._gate)
        return svc

    # -- replicas --------------------------------------------------------------------
    def sync(self) -> bool:
        """Adopt a policy another replica applied to the shared store, if there is one.

        The version row is not trusted by itself: its receipt is read from the log and
        checked exactly as an auditor checks it (signatures of the governance in force,
        threshold or a re-run tighten-only check against the active policy). True when
        the active policy changed.
        """
        latest = self.store.latest_version()
        if latest is None or latest.policy_hash == self._active_hash:
            return False
        stored = self.store.latest_doc()
        doc = self.doc
        if stored is not None and GovernanceDoc.parse(stored[0]).hash() != doc.hash():
            candidate = GovernanceDoc.parse(stored[0])
            check_rotation(doc, candidate)  # a GovernanceError leaves everything as it is
            doc = candidate
        signed = self.ledger.get_receipt(latest.receipt_id)
        if signed is None:
            return False  # not in the log yet (a shared log integrates in batches)
        from hybridgate.governance.audit import Trace, check_policy_receipt

        trace = Trace()
        current, _ = self.holder.current
        policy, record = check_policy_receipt(signed["receipt"], doc, current, trace)
        if (
            policy is None
            or record is None
            or record.policy_hash != latest.policy_hash
            or record.approval == "bootstrap"
        ):
            log.error("not adopting policy %s: %s", latest.policy_hash[:16], trace.problems)
            return False
        self.doc = doc
        self._active_hash = latest.policy_hash
        result = self.holder.reload(lambda: policy)
        log.warning("adopted policy %s applied by another replica", latest.policy_hash[:16])
        return result.ok

    async def follow(self, interval_s: float = 2.0) -> None:
        """Run :meth:`sync` every ``interval_s`` seconds until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await asyncio.to_thread(self.sync)
            except Exception as exc:  # a store hiccup must not end the loop; it is logged
                log.error("governance sync failed: %s: %s", type(exc).__name__, exc)

    def _gate(self, _: PolicyConfig, phash: str) -> str | None:
        if phash == self._active_hash:
            return None
        return (
            f"policy {phash[:16]} is not the approved policy {self._active_hash[:16]};"
            " governance is configured: propose it with `hybridgate policy propose`"
        )

    def _accept_doc(self, doc: GovernanceDoc, previous: str | None, signers: list[str]) -> None:
        rid = self.ledger.new_receipt_id()
        self.ledger.append_sync(
            rid,
            {
                "kind": KIND_GOVERNANCE,
                "governance_hash": doc.hash(),
                "previous_hash": previous,
                "version": doc.version,
                "governance": doc.model_dump(mode="json"),
                "signed_by": signers,
            },
        )
        self.store.add_doc(doc.version, doc.hash(), doc.model_dump(mode="json"), rid, self.clock())
        self.doc = doc
        log.warning("governance version %d accepted (%s), receipt %s", doc.version, doc.hash(), rid)

    def _version_fields(
        self,
        policy: PolicyConfig,
        phash: str,
        proposal: Proposal | None,
        approval: str,
        signers: list[dict[str, Any]],
    ) -> dict[str, Any]:
        return {
            "kind": KIND_POLICY,
            "policy_hash": phash,
            "base_policy_hash": proposal.base_policy_hash if proposal else None,
            "proposal_id": proposal.proposal_id if proposal else None,
            "proposer": proposal.proposer if proposal else None,
            "proposed_ns": str(proposal.created_ns) if proposal else None,
            "approval": approval,
            "signatures": signers,
            "governance_hash": self.doc.hash(),
            "governance_version": self.doc.version,
            "threshold": self.doc.threshold,
            "policy": policy.model_dump(mode="json"),
        }

    def _record_sync(
        self,
        policy: PolicyConfig,
        phash: str,
        proposal: Proposal | None,
        approval: str,
        signers: list[dict[str, Any]],
    ) -> None:
        rid = self.ledger.new_receipt_id()
        self.ledger.append_sync(
            rid, self._version_fields(policy, phash, proposal, approval, signers)
        )
        v = self._version(policy, phash, proposal, approval, signers, rid)
        self.store.add_version_sync(v)

    def _version(
        self,
        policy: PolicyConfig,
        phash: str,
        proposal: Proposal | None,
        approval: str,
        signers: list[dict[str, Any]],
        rid: str,
    ) -> PolicyVersion:
        return PolicyVersion(
            seq=0,
            policy_hash=phash,
            policy=policy.model_dump(mode="json"),
            proposal_id=proposal.proposal_id if proposal else None,
            approval=approval,
            signers=signers,
            governance_hash=self.doc.hash(),
            applied_ns=self.clock(),
            receipt_id=rid,
        )

    # -- proposals ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        _, phash = self.holder.current
        return {
            "governance_version": self.doc.version,
            "governance_hash": self.doc.hash(),
            "threshold": self.doc.threshold,
            "approvers": [
                {"name": k.name, "key_id": k.key_id, "public_key": k.to_string()}
                for k in self.doc.keys().values()
            ],
            "active_policy_hash": phash,
            "file_error": self.file_error,
        }

    async def propose(self, data: object, *, proposer: str, note: str = "") -> dict[str, Any]:
        if isinstance(data, dict) and set(data) == {"policy"}:
            data = data["policy"]
        try:
            new = PolicyConfig.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise InvalidRequest(
                f"policy is invalid: {loc}: {first['msg']}", param="policy"
            ) from None
        if len(note) > 2000:
            raise InvalidRequest("`note` is longer than 2000 characters", param="note")
        current, chash = self.holder.current
        nhash = policy_hash(new)
        if nhash == chash:
            raise Conflict("the proposed policy is the active policy")
        p = Proposal(
            proposal_id="prop_" + secrets.token_hex(12),
            policy=new.model_dump(mode="json"),
            policy_hash=nhash,
            base_policy_hash=chash,
            diff=policy_diff(current, new),
            proposer=proposer,
            note=note,
            created_ns=self.clock(),
            status="open",
        )
        await self.store.add_proposal(p)
        return await self.describe(p)

    async def describe(self, p: Proposal) -> dict[str, Any]:
        """A proposal with its payload, the valid signers and whether it only tightens."""
        out = p.to_json()
        out["payload"] = self.payload(p).decode("utf-8")
        out["valid_signers"] = self._signers(p)
        out["threshold"] = self.doc.threshold
        if p.status == "open":
            current, chash = self.holder.current
            if chash == p.base_policy_hash:
                new = PolicyConfig.model_validate(p.policy)
                problems = await asyncio.to_thread(loosenings, current, new)
                out["tightens_only"] = not problems
                out["loosenings"] = problems
        return out

    def payload(self, p: Proposal) -> bytes:
        return proposal_payload(
            proposal_id=p.proposal_id,
            policy_hash=p.policy_hash,
            base_policy_hash=p.base_policy_hash,
        )

    def _signers(self, p: Proposal) -> list[str]:
        sigs = [
            Signature(approver=s["approver"], key_id=s["key_id"], sig=s["sig"])
            for s in p.signatures
        ]
        return valid_signers(self.doc.keys(), sigs, self.payload(p))

    def get(self, proposal_id: str) -> Proposal:
        p = self.store.get_proposal(proposal_id) if valid_proposal_id(proposal_id) else None
        if p is None:
            raise NotFound(f"no proposal {proposal_id[:40]!r}")
        return p

    def list_proposals(self, status: str | None = None) -> list[dict[str, Any]]:
        if status not in (None, "open", "applied", "stale"):
            raise InvalidRequest("`status` must be open, applied or stale", param="status")
        out = []
        for p in self.store.list_proposals(status):
            d = p.to_json(with_policy=False)
            d["valid_signers"] = self._signers(p)
            d["threshold"] = self.doc.threshold
            out.append(d)
        return out

    async def sign(self, proposal_id: str, approver: object, signature: object) -> dict[str, Any]:
        """Add an approver's signature, verified exactly as at apply time."""
        p = self.get(proposal_id)
        if p.status != "open":
            raise Conflict(f"proposal {proposal_id} is {p.status}")
        if not isinstance(approver, str) or not isinstance(signature, str) or len(signature) > 256:
            raise InvalidRequest("body must have string `approver` and `signature`")
        keys = self.doc.keys()
        key = keys.get(approver)
        if key is None:
            raise PermissionDenied(
                f"{approver[:64]!r} is not an approver in governance version {self.doc.version}"
            )
        sig = Signature(approver=approver, key_id=key.key_id, sig=signature)
        if not verify_one(keys, sig, self.payload(p)):
            raise InvalidRequest(
                "signature does not verify for this proposal and approver", param="signature"
            )
        async with self._lock:
            await self.store.add_signature(
                p.proposal_id, approver, key.key_id, signature, self.clock()
            )
        log.info("proposal %s signed by %s", p.proposal_id, approver)
        return await self.describe(self.get(proposal_id))

    async def apply(self, proposal_id: str, *, applied_by: str) -> dict[str, Any]:
        """Make a proposal the active policy: M valid signatures, or one for a tightening."""
        async with self._lock:
            p = self.get(proposal_id)
            if p.status != "open":
                raise Conflict(f"proposal {proposal_id} is {p.status}")
            current, chash = self.holder.current
            if p.base_policy_hash != chash:
                raise Conflict(
                    f"proposal was made against policy {p.base_policy_hash[:16]}, the active"
                    f" policy is {chash[:16]}: propose again"
                )
            new = PolicyConfig.model_validate(p.policy)
            signers = self._signers(p)
            m = self.doc.threshold
            if len(signers) >= m:
                approval = "threshold"
            elif signers:
                problems = await asyncio.to_thread(loosenings, current, new)
                if problems:
                    raise PermissionDenied(
                        f"{len(signers)} of {m} required signatures; one approver may apply"
                        " only a change that tightens the policy, and this one loosens it: "
                        + "; ".join(problems[:5])
                    )
                approval = "emergency"
            else:
                raise PermissionDenied(f"no valid signatures; {m} required")
            keys = self.doc.keys()
            sigs = [_sig_json(keys, s) for s in p.signatures if s["approver"] in signers]
            fields = self._version_fields(new, p.policy_hash, p, approval, sigs)
            fields["applied_by"] = applied_by
            rid = self.ledger.new_receipt_id()
            await self.ledger.append(rid, fields)
            v = self._version(new, p.policy_hash, p, approval, sigs, rid)
            await self.store.add_version(v, p.proposal_id)
            previous_active = self._active_hash
            self._active_hash = p.policy_hash
            result = self.holder.reload(lambda: new)
            if not result.ok:  # cannot happen for a validated policy; never leave it half done
                self._active_hash = previous_active
                raise ConfigError(f"approved policy failed to load: {result.error}")
        if approval == "emergency":
            log.warning(
                "EMERGENCY policy change %s applied by %s alone (tightening only), receipt %s",
                p.policy_hash[:16],
                signers[0],
                rid,
            )
        else:
            log.warning("policy %s applied with %s, receipt %s", p.policy_hash[:16], signers, rid)
        return {
            "applied": True,
            "proposal_id": p.proposal_id,
            "policy_hash": p.policy_hash,
            "approval": approval,
            "signers": signers,
            "receipt_id": rid,
        }

    def history(self) -> list[dict[str, Any]]:
        return [v.to_json() for v in self.store.versions()]
