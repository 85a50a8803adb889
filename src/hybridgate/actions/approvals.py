"""Approvers and held approvals.

An approval is a person's decision, so it is signed with the approver's own
Ed25519 key, never the gateway's: the log then shows *who* released an action
and the gateway alone cannot forge that. Approver public keys come from a
directory an operator manages (``<name>.pub`` holding a verifier-key string)
or from the admin API (persisted in the store). A name in the directory wins
and cannot be shadowed through the API.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hybridgate.actions.model import ActionRequest, approval_payload, valid_name
from hybridgate.actions.store import ActionStore
from hybridgate.errors import Conflict, InvalidRequest
from hybridgate.ledger import VerifierKey

log = logging.getLogger("hybridgate.actions")

MAX_KEY_FILE_BYTES = 4096

HoldState = Literal["pending", "approve", "reject", "expired", "error"]


@dataclass(frozen=True, slots=True)
class Approver:
    name: str
    key: VerifierKey
    source: Literal["dir", "api"]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "key_id": self.key.key_id,
            "public_key": self.key.to_string(),
            "source": self.source,
        }


def parse_verifier(text: str, *, name: str | None = None) -> VerifierKey:
    """A verifier-key string, checked to belong to ``name`` when one is given."""
    try:
        key = VerifierKey.parse(text.strip())
    except (ValueError, TypeError) as exc:
        raise InvalidRequest(f"not a verifier key: {exc}", param="public_key") from None
    if name is not None and key.name != name:
        raise InvalidRequest(f"key is named {key.name!r}, not {name!r}", param="public_key")
    return key


class ApproverRegistry:
    """Looks approvers up by name: the directory first (read on each lookup, so an
    operator adds or removes a file without restarting), then the store."""

    def __init__(self, db: ActionStore, directory: str | Path | None) -> None:
        self._db = db
        self._dir = Path(directory).expanduser() if directory else None

    def _from_dir(self, name: str) -> Approver | None:
        if self._dir is None:
            return None
        path = self._dir / f"{name}.pub"
        try:
            if not path.is_file() or path.stat().st_size > MAX_KEY_FILE_BYTES:
                return None
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("cannot read approver key %s: %s", path, exc)
            return None
        try:
            key = parse_verifier(text, name=name)
        except InvalidRequest as exc:
            log.warning("ignoring approver key %s: %s", path, exc.message)
            return None
        return Approver(name, key, "dir")

    def lookup(self, name: str) -> Approver | None:
        if not valid_name(name):
            return None
        found = self._from_dir(name)
        if found is not None:
            return found
        stored = self._db.get_approver(name)
        if stored is None:
            return None
        try:
            return Approver(name, parse_verifier(stored, name=name), "api")
        except InvalidRequest:
            log.warning("ignoring stored approver %s: unparseable key", name)
            return None

    def list(self) -> list[Approver]:
        found: dict[str, Approver] = {}
        if self._dir is not None and self._dir.is_dir():
            for path in sorted(self._dir.glob("*.pub")):
                a = self._from_dir(path.stem) if valid_name(path.stem) else None
                if a is not None:
                    found[a.name] = a
        for name, _ in self._db.list_approvers():
            if name not in found:
                a = self.lookup(name)
                if a is not None:
                    found[name] = a
        return [found[n] for n in sorted(found)]

    async def register(self, public_key: str, name: str | None = None) -> Approver:
        key = parse_verifier(public_key, name=name)
        if not valid_name(key.name):
            raise InvalidRequest("approver names are 1-64 letters, digits, '_', '.' or '-'")
        if self._from_dir(key.name) is not None:
            raise Conflict(f"approver {key.name!r} is defined in the approvers directory")
        if not await self._db.add_approver(key.name, key.to_string()):
            existing = self._db.get_approver(key.name)
            if existing is not None and existing.strip() == key.to_string():
                return Approver(key.name, key, "api")
            raise Conflict(f"approver {key.name!r} is already registered with another key")
        return Approver(key.name, key, "api")

    async def remove(self, name: str) -> bool:
        return valid_name(name) and await self._db.remove_approver(name)


def check_approver_signature(
    approver: Approver, signature_b64: str, *, approval_id: str, decision: str, req: ActionRequest
) -> bool:
    """True when ``signature_b64`` is the approver's signature over this exact decision."""
    try:
        sig = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(sig) != 64:
        return False
    payload = approval_payload(
        approval_id=approval_id,
        decision=decision,
        action=req.action,
        params_hash=req.params_hash,
        agent_id=req.agent_id,
    )
    return approver.key.verify(payload, sig)


@dataclass(slots=True)
class HeldApproval:
    """One action waiting for a person; lives only as long as its request waits.

    ``state`` leaves ``pending`` exactly once, synchronously on the event loop,
    so a decision and the hold timeout can never both win.
    """

    approval_id: str
    request: ActionRequest
    team: str | None
    key_id: str | None
    created_ns: int
    expires_ns: int
    state: HoldState = "pending"
    approver: str | None = None
    approver_key_id: str | None = None
    decision_receipt_id: str | None = None
    event: asyncio.Event = field(default_factory=asyncio.Event)

    def to_json(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "status": "pending" if self.state == "pending" else "deciding",
            "action": self.request.action,
            "params": self.request.params,
            "params_hash": self.request.params_hash,
            "agent_id": self.request.agent_id,
            "team": self.team,
            "key_id": self.key_id,
            "created_ns": self.created_ns,
            "expires_ns": self.expires_ns,
        }
