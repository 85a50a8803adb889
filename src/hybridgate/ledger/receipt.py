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
PROMISE_FORMAT = "hybridgate-inclusion-promise/v1"
_PROMISE_FIELDS = {"log_origin", "receipt_id", "leaf_hash", "timestamp_ns", "max_merge_delay_s"}
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


def make_promise(
    signed: dict[str, Any],
    leaf: bytes,
    queued_ns: int,
    max_merge_delay_s: float,
    key: SigningKey,
) -> dict[str, Any]:
    """A signed promise of inclusion, in the manner of Certificate Transparency's signed
    certificate timestamps: the log (origin), the leaf hash, the time the leaf became
    durable and the longest it may take to be merged. Served until the leaf is integrated;
    after that the bundle (with its inclusion proof) replaces it."""
    body = signed["receipt"]
    promise = {
        "log_origin": body.get("log_origin"),
        "receipt_id": body.get("receipt_id"),
        "leaf_hash": b64encode(leaf_hash(leaf)),
        "timestamp_ns": str(queued_ns),
        "max_merge_delay_s": max_merge_delay_s,
    }
    sig = key.sign(canonical_json(promise))
    return {
        "format": PROMISE_FORMAT,
        "receipt": body,
        "signature": signed["signature"],
        "promise": promise,
        "promise_signature": signature_object(key.key_id, sig),
    }


def verify_promise(doc: Mapping[str, Any], keys: Sequence[VerifierKey]) -> str | None:
    """None when the receipt's signature and the log's signed promise to include it verify,
    and the promise is for exactly this receipt (its leaf hash) in the log it names."""
    signed = {"receipt": doc.get("receipt"), "signature": doc.get("signature")}
    problem = verify_receipt_signature(signed, keys)
    if problem is not None:
        return problem
    promise, psig = doc.get("promise"), doc.get("promise_signature")
    if not isinstance(promise, dict) or not isinstance(psig, dict):
        return "promise or its signature is missing"
    if set(promise) != {
        "log_origin",
        "receipt_id",
        "leaf_hash",
        "timestamp_ns",
        "max_merge_delay_s",
    }:
        return "promise has unexpected fields"
    key = _find(keys, str(psig.get("key_id")))
    if key is None or psig.get("alg") != ALG:
        return "promise is signed by an unknown key"
    try:
        raw = b64decode(str(psig.get("sig")), max_len=256)
        data = canonical_json(promise)
    except (ValueError, TypeError) as exc:
        return f"promise signature: {exc}"
    if not key.verify(data, raw):
        return "promise signature does not verify"
    body: dict[str, Any] = signed["receipt"]  # type: ignore[assignment]
    if promise["receipt_id"] != body.get("receipt_id"):
        return "promise is for another receipt"
    if promise["log_origin"] != body.get("log_origin"):
        return "promise names another log than the receipt"
    try:
        expected = b64encode(leaf_hash(signed_leaf(signed)))
    except ValueError as exc:
        return str(exc)
    if promise["leaf_hash"] != expected:
        return "promise's leaf hash does not match the receipt"
    return None


def verify_bundle(bundle: dict[str, Any], keys: Sequence[VerifierKey]) -> str | None:
    """None when the receipt's signature, its inclusion proof and the checkpoint all verify
    (or, for a promise of inclusion, the receipt and the log's signed promise)."""
    if not isinstance(bundle, Mapping):
        return "bundle is not an object"
    if bundle.get("format") == PROMISE_FORMAT:
        return verify_promise(bundle, keys)
    signed = {"receipt": bundle.get("receipt"), "signature": bundle.get("signature")}
    problem = verify_receipt_signature(signed, keys)
    if problem is not None:
        return problem
    body: dict[str, Any] = bundle["receipt"]
    if "log_index" in body:  # a receipt signed by the writer that also appended it
        index = _int(body.get("log_index"))
        if index is None:
            return "receipt has no log_index"
        if "log_index" in bundle and bundle["log_index"] != index:
            return "bundle log_index differs from the signed receipt's"
    else:
        # Sequenced by a shared log after signing: the index is the bundle's, and the
        # inclusion proof for that index against the signed root is what binds it.
        index = _int(bundle.get("log_index"))
        if index is None:
            return "bundle has no log_index"
        if body.get("log_origin") is None:
            return "receipt has neither a log_index nor a log_origin"
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
    "make_promise",
    "sign_receipt",
    "signature_object",
    "signed_leaf",
    "split_leaf",
    "verify_bundle",
    "verify_promise",
    "verify_receipt_signature",
]
