"""Provenance of an adapter: a signed manifest in the Merkle log, checkable offline.

The manifest names the task, the adapter's id (SHA-256 of its files, as the
adapter registry computes it), the base model's hash, the teacher models and
the terms entries (or logged overrides) that allowed their outputs to be
used, the training parameters, the evaluation, the hash of the dataset, the
log indices and receipt ids of every training pair's receipt, and the signed
checkpoint that covers them.

``provenance.json`` ships beside it: the signed manifest, the manifest's own
receipt bundle (its ``manifest_sha256`` in the log, with an inclusion proof)
and one bundle per training receipt, each proved against the manifest's
checkpoint. :func:`verify_provenance` needs only that file, the adapter's
files and the gateway's public key: it re-derives the dataset hash from the
signed receipts' ``capture_hash`` fields, so one altered training receipt
fails its signature and one swapped pair changes the dataset hash.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybridgate.distill.dataset import dataset_hash_of_lines
from hybridgate.ledger import (
    Ledger,
    VerifierKey,
    canonical_json,
    sign_receipt,
    verify_bundle,
    verify_receipt_signature,
)

MANIFEST_FORMAT = "hybridgate-adapter-manifest/v1"
PROVENANCE_FILE = "provenance.json"
MANIFEST_KIND = "adapter_manifest"


def manifest_sha256(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


def covering_bundles(
    ledger: Ledger, receipt_ids: Sequence[str], attempts: int = 3
) -> tuple[str, list[dict[str, Any]]]:
    """A fresh checkpoint and each receipt's inclusion bundle against that same checkpoint."""
    for _ in range(attempts):
        note = ledger.checkpoint(issue_if_stale=True)
        bundles = []
        for rid in receipt_ids:
            b = ledger.bundle(rid)
            if b is None:
                raise ValueError(f"receipt {rid} is not in the log")
            bundles.append(b)
        if all(b["checkpoint"] == note for b in bundles):
            return note, bundles
    raise RuntimeError("the log kept moving while proofs were gathered; try again")


def publish(
    ledger: Ledger, manifest: dict[str, Any], out_dir: Path, training: list[dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """Sign the manifest, append its hash to the log, write ``provenance.json``."""
    key = ledger.keys.active
    signed = sign_receipt(manifest, key)
    digest = manifest_sha256(manifest)
    rid = ledger.new_receipt_id()
    ledger.append_sync(
        rid,
        {
            "kind": MANIFEST_KIND,
            "task": manifest["task"],
            "adapter": manifest["adapter"]["sha256"],
            "manifest_sha256": digest,
        },
    )
    bundle = ledger.bundle(rid)
    assert bundle is not None
    doc = {
        "format": MANIFEST_FORMAT,
        "manifest": signed,
        "manifest_receipt": bundle,
        "training_receipts": training,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(doc, indent=1, sort_keys=True))
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return doc, digest


def verify_provenance(
    doc: Any,
    keys: Sequence[VerifierKey],
    *,
    adapter_sha256: str | None = None,
    base_sha256: str | None = None,
) -> list[str]:
    """Every problem found; an empty list means the provenance holds."""
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        return ["not a hybridgate adapter provenance document"]
    problems: list[str] = []
    signed = doc.get("manifest")
    if not isinstance(signed, dict) or not isinstance(signed.get("receipt"), dict):
        return ["no signed manifest"]
    bad = verify_receipt_signature(signed, keys)
    if bad is not None:
        problems.append(f"manifest signature: {bad}")
    manifest: dict[str, Any] = signed["receipt"]
    digest = manifest_sha256(manifest)
    mr = doc.get("manifest_receipt")
    mr_body: dict[str, Any] = mr.get("receipt") or {} if isinstance(mr, dict) else {}
    bad = verify_bundle(mr, keys) if isinstance(mr, dict) else "missing"
    if bad is not None:
        problems.append(f"manifest receipt: {bad}")
    elif not (mr_body.get("kind") == MANIFEST_KIND and mr_body.get("manifest_sha256") == digest):
        problems.append("the manifest's log entry does not carry this manifest's hash")
    try:
        problems += _check_manifest(manifest, doc.get("training_receipts"), keys)
    except (KeyError, TypeError, ValueError) as exc:
        problems.append(f"malformed manifest: {type(exc).__name__}: {exc}")
    if adapter_sha256 is not None and manifest.get("adapter", {}).get("sha256") != adapter_sha256:
        problems.append("the adapter's files do not match the manifest's adapter id")
    if base_sha256 is not None and manifest.get("base_model", {}).get("sha256") != base_sha256:
        problems.append("the base model's files do not match the manifest's base model hash")
    return problems


def _check_manifest(
    manifest: dict[str, Any], training: Any, keys: Sequence[VerifierKey]
) -> list[str]:
    problems: list[str] = []
    rec = manifest["training_receipts"]
    indices: list[int] = list(rec["log_indices"])
    ids: list[str] = list(rec["receipt_ids"])
    checkpoint = manifest["checkpoint"]
    if not isinstance(training, list) or len(training) != len(ids) or len(ids) != len(indices):
        return ["the training receipts do not match the manifest's list"]
    lines: list[str] = []
    teachers = set(manifest["teacher"]["models"])
    overrides = set(manifest["teacher"].get("overrides") or [])
    bad_sig = 0
    for want_idx, want_id, b in zip(indices, ids, training, strict=True):
        bad = verify_bundle(b, keys) if isinstance(b, dict) else "not a bundle"
        if bad is not None:
            bad_sig += 1
            if bad_sig <= 5:
                problems.append(f"training receipt {want_id} (log index {want_idx}): {bad}")
            continue
        body = b["receipt"]
        if body.get("receipt_id") != want_id or body.get("log_index") != want_idx:
            problems.append(f"training receipt at position of {want_id} is another receipt")
            continue
        if b.get("checkpoint") != checkpoint:
            problems.append(f"training receipt {want_id} is proved against another checkpoint")
        if body.get("task") != manifest["task"] or body.get("capture") != "captured":
            problems.append(f"receipt {want_id} is not a captured pair of task {manifest['task']}")
        if body.get("model") not in teachers:
            problems.append(f"receipt {want_id} was answered by a model the manifest omits")
        ov = body.get("capture_override")
        if ov is not None and ov not in overrides:
            problems.append(f"receipt {want_id} was captured under an unlisted override")
        lines.append(f"{want_idx} {want_id} {body.get('capture_hash')}")
    if bad_sig > 5:
        problems.append(f"... and {bad_sig - 5} more training receipts fail verification")
    if not problems and dataset_hash_of_lines(lines) != manifest["dataset"]["sha256"]:
        problems.append("the dataset hash does not match the training receipts' pair hashes")
    return problems
