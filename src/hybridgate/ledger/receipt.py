"""Signed receipts and self-contained proof bundles: everything a verifier needs offline.

A receipt body is signed as its RFC 8785 bytes. The log's leaf is the
canonical JSON of the whole signed receipt, ``{"receipt": body, "signature": sig}``,
so the Merkle tree commits to the signature too. Because the signature object
has a fixed shape, the leaf is ``{"receipt":`` ‖ canonical body ‖ a fixed-length
signature tail, and bulk verification can slice the signed bytes out of a leaf
without re-canonicalizing (a valid signature over those bytes means the gateway
produced them, so they are canonical).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from hybridgate.ledger.canonical import b64decode, b64encode, canonical_json
from hybridgate.ledger.keys import SigningKey, VerifierKey
from hybridgate.ledger.merkle import ProofError, leaf_hash, verify_inclusion
from hybridgate.ledger.note import NoteError, verify_checkpoint

ALG = "ed25519"
BUNDLE_FORMAT = "hybridgate-receipt-bundle/v1"
MAX_PROOF_LEN = 64
_LEAF_HEAD = b'{"receipt":'
_LEAF_TAIL = re.compile(
    rb',"signature":\{"alg":"ed25519","key_id":"([0-9a-f]{8})","sig":"([A-Za-z0-9+/]{86}==)"\}\}\Z'
)
LEAF_TAIL_LEN = len(b',"signature":{"alg":"ed25519","key_id":"","sig":""}}') + 8 + 88


def signature_object(key_id: str, sig: bytes) -> dict[str, str]:
    return {"alg": ALG, "key_id": key_id, "sig": b64encode(sig)}


def leaf_bytes(body_canonical: bytes, key_id: str, sig: bytes) -> bytes:
    """Canonical JSON of the signed receipt, assembled without a second canonicalization."""
    tail = f',"signature":{{"alg":"{ALG}","key_id":"{key_id}","sig":"{b64encode(sig)}"}}}}'
    return _LEAF_HEAD + body_canonical + tail.encode("ascii")


def split_leaf(data: bytes) -> tuple[bytes, str, bytes]:
    """(signed body bytes, key id, signature) of a stored leaf; ``ValueError`` if malformed."""
    if not data.startswith(_LEAF_HEAD) or len(data) < len(_LEAF_HEAD) + LEAF_TAIL_LEN + 2:
        raise ValueError("not a signed receipt")
    tail = _LEAF_TAIL.match(data, len(data) - LEAF_TAIL_LEN)
    if tail is None:
        raise ValueError("signature block is malformed")
    sig = b64decode(tail.group(2).decode("ascii"))
    return data[len(_LEAF_HEAD) : len(data) - LEAF_TAIL_LEN], tail.group(1).decode("ascii"), sig


def sign_canonical(body_canonical: bytes, key: SigningKey) -> bytes:
    return key.sign(body_canonical)


def sign_receipt(body: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    sig = key.sign(canonical_json(body))
    return {"receipt": body, "signature": signature_object(key.key_id, sig)}


def signed_leaf(signed: Mapping[str, Any]) -> bytes:
    """The leaf bytes of a signed receipt dict (raises ``ValueError`` if it is malformed)."""
    body, sig = signed.get("receipt"), signed.get("signature")
    if not isinstance(body, dict) or not isinstance(sig, dict):
        raise ValueError("not a signed receipt")
    return canonical_json({"receipt": body, "signature": sig})


def _find(keys: Sequence[VerifierKey], key_id: str) -> VerifierKey | None:
    return next((k for k in keys if k.key_id == key_id), None)


def verify_receipt_signature(signed: dict[str, Any], keys: Sequence[VerifierKey]) -> str | None:
    """None when the receipt carries a valid Ed25519 signature by one of ``keys``."""
    if not isinstance(signed, Mapping):
        return "receipt is not an object"
    body, sig = signed.get("receipt"), signed.get("signature")
    if not isinstance(body, dict):
        return "receipt body is missing"
    if not isinstance(sig, dict):
        return "receipt is not signed"
    if sig.get("alg") != ALG:
        return "signature algorithm is not ed25519"
    key_id, sig_b64 = sig.get("key_id"), sig.get("sig")
    if not isinstance(key_id, str) or not isinstance(sig_b64, str):
        return "signature lacks key_id or sig"
    key = _find(keys, key_id)
    if key is None:
        return f"receipt is signed by unknown key {key_id[:16]!r}"
    try:
        raw = b64decode(sig_b64, max_len=256)
        data = canonical_json(body)
    except ValueError as exc:
        return str(exc)
    if not key.verify(data, raw):
        return "signature does not verify (receipt altered or wrong key)"
    return None


def make_bundle(
    signed: dict[str, Any], index: int, tree_size: int, proof: Sequence[bytes], checkpoint: str
) -> dict[str, Any]:
    """The ``GET /v1/receipts/{id}`` answer: the signed receipt's two fields at the top level
    (so the bundle is itself a signed receipt) plus the proof and the checkpoint it reaches."""
    return {
        "format": BUNDLE_FORMAT,
        "receipt": signed["receipt"],
        "signature": signed["signature"],
        "log_index": index,
        "tree_size": tree_size,
        "inclusion_proof": [b64encode(p) for p in proof],
        "checkpoint": checkpoint,
    }


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def verify_bundle(bundle: dict[str, Any], keys: Sequence[VerifierKey]) -> str | None:
    """None when the receipt's signature, its inclusion proof and the checkpoint all verify."""
    if not isinstance(bundle, Mapping):
        return "bundle is not an object"
    signed = {"receipt": bundle.get("receipt"), "signature": bundle.get("signature")}
    problem = verify_receipt_signature(signed, keys)
    if problem is not None:
        return problem
    body: dict[str, Any] = bundle["receipt"]
    index = _int(body.get("log_index"))
    if index is None:
        return "receipt has no log_index"
    if "log_index" in bundle and bundle["log_index"] != index:
        return "bundle log_index differs from the signed receipt's"
    note, proof_b64 = bundle.get("checkpoint"), bundle.get("inclusion_proof")
    if not isinstance(note, str):
        return "bundle has no checkpoint"
    if not isinstance(proof_b64, list) or len(proof_b64) > MAX_PROOF_LEN:
        return "bundle has no inclusion proof"
    try:
        cp = verify_checkpoint(note, keys)
    except NoteError as exc:
        return f"checkpoint: {exc}"
    if "tree_size" in bundle and bundle["tree_size"] != cp.size:
        return "bundle tree_size differs from its checkpoint's"
    try:
        proof = [b64decode(p, max_len=64) for p in proof_b64]
        verify_inclusion(index, cp.size, leaf_hash(signed_leaf(signed)), proof, cp.root)
    except (ValueError, TypeError) as exc:  # ProofError is a ValueError
        return f"inclusion: {exc}"
    return None


__all__ = [
    "ALG",
    "BUNDLE_FORMAT",
    "ProofError",
    "leaf_bytes",
    "make_bundle",
    "sign_receipt",
    "signature_object",
    "signed_leaf",
    "split_leaf",
    "verify_bundle",
    "verify_receipt_signature",
]
