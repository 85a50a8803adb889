"""The action gate's vocabulary and request validation, with no I/O.

Everything here is a pure function of its inputs so the HTTP layer, the
service and offline executors agree byte for byte on what an action is: its
name, the hash of its parameters and the exact bytes an approver signs.
Request bodies come from the network, so every field is checked for type,
size and character set before anything else looks at it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from hybridgate.errors import InvalidRequest
from hybridgate.ledger import canonical_json

Verdict = Literal["ALLOW", "DENY", "HALTED"]
Decision = Literal["approve", "reject"]

#: Receipt ``kind`` values this module writes to the log.
KIND_ACTION = "action"
KIND_APPROVAL = "approval"

#: ``outcome`` of an action receipt. Only ``allowed`` receipts authorize anything.
OUTCOME_ALLOWED = "allowed"
OUTCOME_DENIED = "denied"
OUTCOME_HALTED = "halted"

MAX_BODY_BYTES = 256 * 1024
MAX_PARAMS_BYTES = 64 * 1024

# Linear-time patterns: one character class and a bounded repeat each.
_ACTION_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
_AGENT_RE = re.compile(r"[A-Za-z0-9_.:@/-]{1,128}")
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_APPROVAL_ID_RE = re.compile(r"apr_[0-9a-f]{24}")
_RECEIPT_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


def params_hash(params: dict[str, Any]) -> str:
    """SHA-256 (lowercase hex) of the RFC 8785 canonical JSON of ``params``.

    Executors recompute this from the parameters they are about to act on, so
    any change to any parameter, however it is serialized, changes the hash.
    Raises :class:`InvalidRequest` for values JSON cannot carry exactly
    (NaN, infinities, integers beyond 2**53).
    """
    return hashlib.sha256(_canonical_params(params)).hexdigest()


def _canonical_params(params: dict[str, Any]) -> bytes:
    try:
        return canonical_json(params)
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"`params` cannot be canonicalized: {exc}", param="params") from None
    except RecursionError:
        raise InvalidRequest("`params` are nested too deeply", param="params") from None


def approval_payload(
    *, approval_id: str, decision: str, action: str, params_hash: str, agent_id: str
) -> bytes:
    """The exact bytes an approver signs: the decision bound to one held action."""
    return canonical_json(
        {
            "approval_id": approval_id,
            "decision": decision,
            "action": action,
            "params_hash": params_hash,
            "agent_id": agent_id,
        }
    )


def valid_name(value: object) -> bool:
    """Approver names double as file names (``<name>.pub``): no separators, no dot first."""
    return isinstance(value, str) and _NAME_RE.fullmatch(value) is not None


def valid_approval_id(value: object) -> bool:
    return isinstance(value, str) and _APPROVAL_ID_RE.fullmatch(value) is not None


def valid_receipt_id(value: object) -> bool:
    return isinstance(value, str) and _RECEIPT_ID_RE.fullmatch(value) is not None


def _require_str(body: dict[str, Any], name: str, pattern: re.Pattern[str], extra: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidRequest(
            f"`{name}` must be a string of 1-128 letters, digits or {extra}", param=name
        )
    return value


@dataclass(frozen=True, slots=True)
class ActionRequest:
    """An agent's request to perform one action, validated."""

    agent_id: str
    action: str
    params: dict[str, Any]
    params_hash: str


def parse_action_request(body: object) -> ActionRequest:
    """Validate ``{agent_id, action, params}`` (the authorize body; the gate adds ``receipt``)."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    agent_id = _require_str(body, "agent_id", _AGENT_RE, "_ . : @ / -")
    action = _require_str(body, "action", _ACTION_RE, "_ . : / -")
    params = body.get("params", {})
    if not isinstance(params, dict):
        raise InvalidRequest("`params` must be a JSON object", param="params")
    data = _canonical_params(params)
    if len(data) > MAX_PARAMS_BYTES:
        raise InvalidRequest(f"`params` exceed {MAX_PARAMS_BYTES} bytes", param="params")
    phash = hashlib.sha256(data).hexdigest()
    return ActionRequest(agent_id=agent_id, action=action, params=params, params_hash=phash)


@dataclass(frozen=True, slots=True)
class DecisionRequest:
    decision: Decision
    approver: str
    signature: str


def parse_decision(body: object) -> DecisionRequest:
    """Validate ``{decision, approver, signature}`` posted for a held approval."""
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    decision = body.get("decision")
    if decision not in ("approve", "reject"):
        raise InvalidRequest("`decision` must be 'approve' or 'reject'", param="decision")
    approver = body.get("approver")
    if not valid_name(approver):
        raise InvalidRequest("`approver` must be an approver name", param="approver")
    signature = body.get("signature")
    if not isinstance(signature, str) or not 1 <= len(signature) <= 256:
        raise InvalidRequest("`signature` must be a base64 string", param="signature")
    assert isinstance(approver, str)
    return DecisionRequest(decision=decision, approver=approver, signature=signature)
