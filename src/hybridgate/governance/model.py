"""The governance document, the exact bytes approvers sign, and threshold checks. Pure.

A governance document lists the approvers' public keys (verifier-key strings,
the format ``hybridgate approvals keygen`` writes to ``NAME.pub``) and the
threshold M. Like a TUF root, version N+1 is accepted only when it names
version N's hash as ``previous`` and carries valid signatures of M of version
N's approvers *and* of its own threshold of its own approvers, so neither a
lone insider nor a stolen file can replace the people who govern the policy.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hybridgate.ledger import VerifierKey, canonical_json

GOVERNANCE_TYPE = "hybridgate-governance-approval/v1"
POLICY_TYPE = "hybridgate-policy-approval/v1"
_PROPOSAL_ID = re.compile(r"prop_[0-9a-f]{24}")
_HEX64 = re.compile(r"[0-9a-f]{64}")


class GovernanceError(ValueError):
    """A governance rule was not met; the message says which, never a secret."""


def valid_proposal_id(value: object) -> bool:
    return isinstance(value, str) and _PROPOSAL_ID.fullmatch(value) is not None


def valid_hash(value: object) -> bool:
    return isinstance(value, str) and _HEX64.fullmatch(value) is not None


class Signature(BaseModel):
    """One approver's signature: who (name and key id) and the base64 Ed25519 signature."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approver: str = Field(min_length=1, max_length=256)
    key_id: str = Field(pattern=r"^[0-9a-f]{8}$")
    sig: str = Field(min_length=1, max_length=256)


class GovernanceDoc(BaseModel):
    """Who may approve policy changes, and how many of them must agree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1, le=2**31)
    threshold: int = Field(ge=1, le=256)
    approvers: list[str] = Field(min_length=1, max_length=256)
    previous: str | None = Field(default=None, description="hash of the version this replaces")
    signatures: list[Signature] = Field(default_factory=list, max_length=512)

    @field_validator("approvers")
    @classmethod
    def _parse_keys(cls, value: list[str]) -> list[str]:
        out: list[str] = []
        for s in value:
            try:
                out.append(VerifierKey.parse(s).to_string())
            except (ValueError, TypeError) as exc:
                raise ValueError(f"approver {s[:40]!r} is not a verifier key: {exc}") from None
        return out

    @model_validator(mode="after")
    def _consistent(self) -> GovernanceDoc:
        keys = [VerifierKey.parse(s) for s in self.approvers]
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise ValueError("approver names must be unique")
        if len({k.key_id for k in keys}) != len(keys):
            raise ValueError("approver keys must be unique")
        if self.threshold > len(keys):
            raise ValueError(f"threshold {self.threshold} exceeds {len(keys)} approvers")
        if self.previous is not None and not valid_hash(self.previous):
            raise ValueError("previous must be a lowercase hex SHA-256")
        if self.version > 1 and self.previous is None:
            raise ValueError("a version after 1 must name the previous version's hash")
        return self

    @classmethod
    def parse(cls, data: object) -> GovernanceDoc:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "<root>"
            raise GovernanceError(f"governance document: {loc}: {first['msg']}") from None

    def keys(self) -> dict[str, VerifierKey]:
        """Approver keys by name."""
        parsed = (VerifierKey.parse(s) for s in self.approvers)
        return {k.name: k for k in parsed}

    def body(self) -> dict[str, Any]:
        """What the hash covers: everything but the signatures."""
        return self.model_dump(mode="json", exclude={"signatures"})

    def hash(self) -> str:
        return hashlib.sha256(canonical_json(self.body())).hexdigest()


def governance_payload(governance_hash: str) -> bytes:
    """The exact bytes an approver signs to accept a governance document."""
    return canonical_json({"type": GOVERNANCE_TYPE, "governance_hash": governance_hash})


def proposal_payload(*, proposal_id: str, policy_hash: str, base_policy_hash: str) -> bytes:
    """The exact bytes an approver signs to approve a policy proposal.

    The base hash is bound in: a signature approves *this change from that
    policy*, so it cannot be replayed once another policy has been applied.
    """
    return canonical_json(
        {
            "type": POLICY_TYPE,
            "proposal_id": proposal_id,
            "policy_hash": policy_hash,
            "base_policy_hash": base_policy_hash,
        }
    )


def decode_sig(sig_b64: str) -> bytes | None:
    try:
        raw = base64.b64decode(sig_b64, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def verify_one(keys: Mapping[str, VerifierKey], sig: Signature, payload: bytes) -> bool:
    """True when ``sig`` is a valid signature over ``payload`` by the named approver's key."""
    key = keys.get(sig.approver)
    raw = decode_sig(sig.sig)
    return (
        key is not None
        and key.key_id == sig.key_id
        and raw is not None
        and key.verify(payload, raw)
    )


def valid_signers(
    keys: Mapping[str, VerifierKey], signatures: Iterable[Signature], payload: bytes
) -> list[str]:
    """Names of distinct approvers with a valid signature (a repeated signer counts once)."""
    seen: list[str] = []
    for s in signatures:
        if s.approver not in seen and verify_one(keys, s, payload):
            seen.append(s.approver)
    return seen


def check_rotation(current: GovernanceDoc, new: GovernanceDoc) -> list[str]:
    """Accept ``new`` as the successor of ``current`` or raise :class:`GovernanceError`.

    Returns the names of the current approvers who signed. The rules are TUF's
    root rotation: the next version number, the current hash as ``previous``,
    M-of-N of the current approvers and the new threshold of the new approvers.
    """
    if new.version != current.version + 1:
        raise GovernanceError(f"governance version {new.version} does not follow {current.version}")
    if new.previous != current.hash():
        raise GovernanceError("governance document does not name the current one as previous")
    payload = governance_payload(new.hash())
    old_signers = valid_signers(current.keys(), new.signatures, payload)
    if len(old_signers) < current.threshold:
        raise GovernanceError(
            f"governance change has {len(old_signers)} valid signature(s) of current approvers,"
            f" {current.threshold} needed"
        )
    new_signers = valid_signers(new.keys(), new.signatures, payload)
    if len(new_signers) < new.threshold:
        raise GovernanceError(
            f"governance change has {len(new_signers)} valid signature(s) of its own approvers,"
            f" {new.threshold} needed"
        )
    return old_signers
