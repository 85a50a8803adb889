"""Approver keys and governance documents for tests."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from hybridgate.governance.model import GovernanceDoc, Signature, governance_payload
from hybridgate.ledger import SigningKey


def keys(*names: str) -> dict[str, SigningKey]:
    return {n: SigningKey.generate(n) for n in names}


def doc(
    approvers: list[SigningKey], threshold: int, version: int = 1, previous: str | None = None
) -> GovernanceDoc:
    return GovernanceDoc(
        version=version,
        threshold=threshold,
        approvers=[k.verifier().to_string() for k in approvers],
        previous=previous,
    )


def signed(d: GovernanceDoc, *signers: SigningKey) -> GovernanceDoc:
    payload = governance_payload(d.hash())
    sigs = [
        Signature(approver=k.name, key_id=k.key_id, sig=base64.b64encode(k.sign(payload)).decode())
        for k in signers
    ]
    return d.model_copy(update={"signatures": [*d.signatures, *sigs]})


def write(path: Path, d: GovernanceDoc) -> Path:
    path.write_text(yaml.safe_dump(d.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
    return path


def save_keys(folder: Path, ks: dict[str, SigningKey]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, k in ks.items():
        k.save(folder / f"{name}.key")
        out[name] = folder / f"{name}.key"
    return out


def sign_b64(key: SigningKey, payload: bytes) -> str:
    return base64.b64encode(key.sign(payload)).decode()


def proposal_sig(key: SigningKey, p: dict[str, Any]) -> str:
    from hybridgate.governance.model import proposal_payload

    return sign_b64(
        key,
        proposal_payload(
            proposal_id=p["proposal_id"],
            policy_hash=p["policy_hash"],
            base_policy_hash=p["base_policy_hash"],
        ),
    )
