"""Encryption at rest for stored conversation turns (AES-256-GCM).

The key is derived with HKDF-SHA256 from the deployment secret, so a copy of
the database alone reveals nothing. The associated data binds each sealed
blob to its response id and team: a row copied under another id or team
fails to open instead of leaking into another team's conversation.
"""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from hybridgate.errors import ServiceUnavailable

_VERSION = b"\x01"
_INFO = b"hybridgate conversations v1"


class SealError(ServiceUnavailable):
    code = "conversation_unreadable"


class Sealer:
    def __init__(self, deployment_secret: bytes) -> None:
        if len(deployment_secret) < 32:
            raise ValueError("deployment secret must be at least 32 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            deployment_secret
        )
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never print key material
        return "Sealer(<key>)"

    @staticmethod
    def _aad(response_id: str, team: str) -> bytes:
        return json.dumps([response_id, team]).encode()

    def seal(self, response_id: str, team: str, payload: Any) -> bytes:
        nonce = os.urandom(12)
        plain = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return _VERSION + nonce + self._aead.encrypt(nonce, plain, self._aad(response_id, team))

    def open(self, response_id: str, team: str, blob: bytes) -> Any:
        if len(blob) < 1 + 12 + 16 or blob[:1] != _VERSION:
            raise SealError("stored conversation turn is malformed")
        try:
            plain = self._aead.decrypt(blob[1:13], blob[13:], self._aad(response_id, team))
        except InvalidTag:
            raise SealError("stored conversation turn failed its integrity check") from None
        return json.loads(plain)
