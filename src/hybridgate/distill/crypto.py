"""Encryption at rest for captured pairs: AES-256-GCM, key derived from the deployment secret.

The key is HKDF-SHA256 over the deployment secret with a fixed, versioned
``info``, so it never sits anywhere on its own and rotates with the secret.
Each record's associated data binds it to its task and receipt, so a
ciphertext moved onto another row does not decrypt.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_INFO = b"hybridgate distill capture v1"
NONCE_LEN = 12


class SealError(ValueError):
    """A record could not be decrypted: wrong key, altered, or moved."""


class Sealer:
    def __init__(self, deployment_secret: bytes) -> None:
        if len(deployment_secret) < 16:
            raise ValueError("deployment secret too short")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(
            deployment_secret
        )
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_LEN)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) <= NONCE_LEN:
            raise SealError("sealed record too short")
        try:
            return self._aead.decrypt(sealed[:NONCE_LEN], sealed[NONCE_LEN:], aad)
        except InvalidTag as exc:
            raise SealError("record does not decrypt (altered, moved, or another key)") from exc
