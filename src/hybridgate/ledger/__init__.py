"""The receipt ledger: signed receipts in an RFC 9162 Merkle log with C2SP checkpoints.

See docs/audit.md for the formats and for how an auditor verifies offline.
"""

from hybridgate.ledger.audit import LogReport, export_log, verify_log
from hybridgate.ledger.canonical import canonical_json
from hybridgate.ledger.keys import KeyRing, SigningKey, VerifierKey
from hybridgate.ledger.ledger import AppendResult, Ledger, valid_receipt_id
from hybridgate.ledger.merkle import ProofError
from hybridgate.ledger.note import Checkpoint, NoteError, parse_checkpoint, verify_checkpoint
from hybridgate.ledger.receipt import sign_receipt, verify_bundle, verify_receipt_signature

__all__ = [
    "AppendResult",
    "Checkpoint",
    "KeyRing",
    "Ledger",
    "LogReport",
    "NoteError",
    "ProofError",
    "SigningKey",
    "VerifierKey",
    "canonical_json",
    "export_log",
    "parse_checkpoint",
    "sign_receipt",
    "valid_receipt_id",
    "verify_bundle",
    "verify_checkpoint",
    "verify_log",
    "verify_receipt_signature",
]
