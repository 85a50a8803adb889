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

On the shared log (PostgreSQL) a receipt is signed before the sequencer gives
it a place, so its index is the one its inclusion proof verifies, never a
number read beside it: the manifest cites only indices whose proofs verified
against the log's keys, and a receipt still queued has none. The manifest's own
receipt is queued by the command that trains; until it is merged
``provenance.json`` holds the log's signed promise of inclusion, which
:func:`verify_provenance` reports as pending and :func:`complete_manifest`
replaces by the inclusion proof once the sequencer has merged it.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
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
from hybridgate.ledger.ledger import StaleCheckpoint
from hybridgate.ledger.receipt import PROMISE_FORMAT

MANIFEST_FORMAT = "hybridgate-adapter-manifest/v1"
PROVENANCE_FILE = "provenance.json"
MANIFEST_KIND = "adapter_manifest"


def manifest_sha256(manifest: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(manifest)).hexdigest()


class PendingReceipts(ValueError):
    """Receipts durable in the shared log's queue but not merged: they have no index yet."""

    def __init__(self, receipt_ids: Sequence[str]) -> None:
        self.receipt_ids = list(receipt_ids)
        shown = ", ".join(self.receipt_ids[:3]) + (" ..." if len(self.receipt_ids) > 3 else "")
        super().__init__(
            f"{len(self.receipt_ids)} receipt(s) are still queued in the shared log, not"
            f" merged, so they have no log index to prove yet ({shown})"
        )


def proved_index(bundle: dict[str, Any]) -> int | None:
    """The log index a bundle proves, None for a promise of inclusion (pending). Only
    meaningful once :func:`verify_bundle` accepted the bundle: a receipt signed with its
    index carries it in its body, a receipt sequenced by the shared log in the bundle,
    bound by the inclusion proof."""
    if bundle.get("format") == PROMISE_FORMAT:
        return None
    body = bundle.get("receipt")
    index = body.get("log_index") if isinstance(body, dict) and "log_index" in body else None
    if index is None:
        index = bundle.get("log_index")
    return index if isinstance(index, int) and not isinstance(index, bool) else None


def covering_bundles(
    ledger: Ledger, receipt_ids: Sequence[str], attempts: int = 3
) -> tuple[str, list[dict[str, Any]]]:
    """A checkpoint and each receipt's inclusion bundle against that same checkpoint, every
    bundle verified with the log's own keys (so :func:`proved_index` of each is an index
    the proof verified). :class:`PendingReceipts` when some are still queued."""
    keys = ledger.verifiers()
    for _ in range(attempts):
        note = ledger.checkpoint(issue_if_stale=True)
        bundles: list[dict[str, Any]] = []
        pending: list[str] = []
        try:
            for rid in receipt_ids:
                b = ledger.prove(rid, note)
                if b is None:
                    if ledger.get_receipt(rid) is None:
                        raise ValueError(f"receipt {rid} is not in the log")
                    pending.append(rid)
                    continue
                bad = verify_bundle(b, keys)
                if bad is not None:
                    raise ValueError(f"receipt {rid}: its proof does not verify: {bad}")
                bundles.append(b)
        except StaleCheckpoint:  # merged after the checkpoint was read: take a newer one
            continue
        if pending:
            raise PendingReceipts(pending)
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
    _write_doc(out_dir, doc)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return doc, digest


def _write_doc(out_dir: Path, doc: dict[str, Any]) -> None:
    """Replace ``provenance.json`` whole: a reader never sees half a document."""
    tmp = out_dir / (PROVENANCE_FILE + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=True))
    os.replace(tmp, out_dir / PROVENANCE_FILE)


@dataclass(frozen=True, slots=True)
class ManifestEntry:
    """Where the manifest's receipt stands in the log: ``log_index`` is the index its
    inclusion proof verified, None while the receipt is queued (pending) in the shared
    log; then ``queued_ns`` and ``max_merge_delay_s`` are the log's signed promise."""

    receipt_id: str
    log_index: int | None
    tree_size: int | None = None
    queued_ns: int | None = None
    max_merge_delay_s: float | None = None

    @property
    def pending(self) -> bool:
        return self.log_index is None

    @property
    def overdue_s(self) -> float:
        """Seconds past the promised merge time (0 when not pending or not yet due)."""
        if self.queued_ns is None or self.max_merge_delay_s is None:
            return 0.0
        return max(0.0, time.time_ns() / 1e9 - self.queued_ns / 1e9 - self.max_merge_delay_s)

    def describe(self) -> str:
        if self.log_index is not None:
            return (
                f"manifest receipt {self.receipt_id} at log index {self.log_index}"
                f" (inclusion proof verified against the checkpoint of size {self.tree_size})"
            )
        promised = (
            f"; the log promised to merge it within {self.max_merge_delay_s:g} s"
            if self.max_merge_delay_s is not None
            else ""
        )
        return (
            f"manifest receipt {self.receipt_id} is pending: queued in the shared log,"
            f" not merged yet, so it has no log index or inclusion proof{promised}"
        )


def _entry_of(bundle: dict[str, Any]) -> ManifestEntry:
    rid = str(bundle["receipt"]["receipt_id"])
    if bundle.get("format") == PROMISE_FORMAT:
        promise = bundle["promise"]
        return ManifestEntry(
            rid, None, None, int(promise["timestamp_ns"]), float(promise["max_merge_delay_s"])
        )
    index, size = proved_index(bundle), bundle.get("tree_size")
    if index is None or not isinstance(size, int):
        raise ValueError(f"the bundle of receipt {rid} names no log index or tree size")
    return ManifestEntry(rid, index, size)


def complete_manifest(ledger: Ledger, out_dir: Path) -> ManifestEntry:
    """The manifest receipt's place in the log, read from its verified bundle. A promise in
    ``provenance.json`` is replaced by the inclusion proof once the shared log merged the
    receipt (the same signed receipt, now proven); until then the entry is pending.
    ``ValueError`` when the document or the log's answer does not verify."""
    path = out_dir / PROVENANCE_FILE
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a hybridgate adapter provenance document")
    keys = ledger.verifiers()
    held = doc.get("manifest_receipt")
    bad = verify_bundle(held, keys) if isinstance(held, dict) else "missing"
    if bad is not None:
        raise ValueError(f"{path}: the manifest receipt does not verify: {bad}")
    assert isinstance(held, dict)
    if held.get("format") != PROMISE_FORMAT:
        return _entry_of(held)
    rid = str(held["receipt"]["receipt_id"])
    fresh = ledger.bundle(rid)
    if fresh is None:
        raise ValueError(f"the log holds no receipt {rid}: is this the adapter's gateway?")
    if fresh.get("format") == PROMISE_FORMAT:
        return _entry_of(held)
    if (fresh["receipt"], fresh["signature"]) != (held["receipt"], held["signature"]):
        raise ValueError(f"the log's receipt {rid} differs from the one provenance.json holds")
    bad = verify_bundle(fresh, keys)
    if bad is not None:
        raise ValueError(f"the log's proof of receipt {rid} does not verify: {bad}")
    doc["manifest_receipt"] = fresh
    _write_doc(out_dir, doc)
    return _entry_of(fresh)


def await_manifest(
    ledger: Ledger, out_dir: Path, wait_s: float, poll_s: float = 0.05
) -> ManifestEntry:
    """:func:`complete_manifest`, polled for up to ``wait_s`` while the receipt is pending
    (the sequencer of a running replica merges within ``store.max_merge_delay_s``)."""
    deadline = time.monotonic() + max(0.0, wait_s)
    entry = complete_manifest(ledger, out_dir)
    while entry.pending and time.monotonic() < deadline:
        time.sleep(poll_s)
        entry = complete_manifest(ledger, out_dir)
    return entry


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
    elif isinstance(mr, dict) and mr.get("format") == PROMISE_FORMAT:
        problems.append(
            f"{_entry_of(mr).describe()}; `hybridgate distill provenance` adds the proof"
            " once it is merged"
        )
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
        if b.get("format") == PROMISE_FORMAT:
            problems.append(f"training receipt {want_id} is pending: no inclusion proof, no index")
            continue
        if body.get("receipt_id") != want_id or proved_index(b) != want_idx:
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
