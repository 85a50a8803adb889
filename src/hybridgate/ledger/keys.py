"""Ed25519 keys named the C2SP signed-note way, and the gateway's key ring.

Key ids follow c2sp.org/signed-note: the first 4 bytes of
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key), written as 8 hex digits. A verifier
key travels as ``<name>+<hex id>+<base64(0x01 ‖ public key)>``, the string Go's
``golang.org/x/mod/sumdb/note`` accepts, so checkpoints verify with stock tools.
Private keys are stored in the matching ``PRIVATE+KEY+<name>+<id>+<base64(0x01 ‖ seed)>``
form, in files created with mode 0600.

Rotation adds a key and moves the ``active`` pointer; retired keys stay in the
ring so receipts signed before the rotation keep verifying.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from hybridgate.ledger.canonical import b64decode, b64encode

ALG_ED25519 = 0x01
_PRIVATE_PREFIX = "PRIVATE+KEY+"
_KEY_ID = re.compile(r"[0-9a-f]{8}")
_MAX_KEY_TEXT = 1024


def valid_key_name(name: object) -> bool:
    """signed-note names: non-empty, no whitespace, no '+' (it separates the fields)."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= 256
        and name.isprintable()
        and "+" not in name
        and not any(c.isspace() for c in name)
    )


def key_id_for(name: str, public_key: bytes) -> str:
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return digest.digest()[:4].hex()


def _check_name(name: str) -> None:
    if not valid_key_name(name):
        raise ValueError(f"{name!r} is not a valid key name (no spaces or '+')")


def _write_private(path: Path, text: str) -> None:
    """Create with 0600 from the start: the secret is never readable by others, even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text + "\n")


@dataclass(frozen=True)
class VerifierKey:
    """A public key as C2SP names it; safe to publish and to pin."""

    name: str
    key_id: str
    public_key: bytes

    def to_string(self) -> str:
        return f"{self.name}+{self.key_id}+{b64encode(bytes([ALG_ED25519]) + self.public_key)}"

    @classmethod
    def parse(cls, s: str) -> VerifierKey:
        if not isinstance(s, str) or len(s) > _MAX_KEY_TEXT:
            raise ValueError("verifier key must be a short string")
        parts = s.strip().split("+", 2)
        if len(parts) != 3:
            raise ValueError("verifier key must be <name>+<key id>+<base64 key>")
        name, kid, b64 = parts
        _check_name(name)
        if not _KEY_ID.fullmatch(kid):
            raise ValueError("verifier key id must be 8 lowercase hex digits")
        raw = b64decode(b64, max_len=128)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ValueError("verifier key is not an Ed25519 key")
        pub = raw[1:]
        if key_id_for(name, pub) != kid:
            raise ValueError("verifier key id does not match its name and key")
        Ed25519PublicKey.from_public_bytes(pub)  # rejects malformed points early
        return cls(name, kid, pub)

    def verify(self, data: bytes, sig: bytes) -> bool:
        if len(sig) != 64:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(sig, data)
        except InvalidSignature:
            return False
        return True

    def fast(self) -> Ed25519PublicKey:
        """The parsed key, for loops that verify many signatures with it."""
        return Ed25519PublicKey.from_public_bytes(self.public_key)


class SigningKey:
    """An Ed25519 private key with its C2SP name and key id."""

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        _check_name(name)
        self.name = name
        self._private = private
        self.public_key = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_id = key_id_for(name, self.public_key)

    def __repr__(self) -> str:
        return f"SigningKey(name={self.name!r}, key_id={self.key_id!r})"

    @classmethod
    def generate(cls, name: str) -> SigningKey:
        return cls(name, Ed25519PrivateKey.generate())

    def sign(self, data: bytes) -> bytes:
        return self._private.sign(data)

    def verifier(self) -> VerifierKey:
        return VerifierKey(self.name, self.key_id, self.public_key)

    # -- files -----------------------------------------------------------
    def to_private_string(self) -> str:
        seed = self._private.private_bytes_raw()
        return (
            f"{_PRIVATE_PREFIX}{self.name}+{self.key_id}+{b64encode(bytes([ALG_ED25519]) + seed)}"
        )

    @classmethod
    def parse_private(cls, text: str) -> SigningKey:
        text = text.strip()
        if len(text) > _MAX_KEY_TEXT or not text.startswith(_PRIVATE_PREFIX):
            raise ValueError("not a PRIVATE+KEY+ string")
        parts = text[len(_PRIVATE_PREFIX) :].split("+", 2)
        if len(parts) != 3:
            raise ValueError("private key must be PRIVATE+KEY+<name>+<key id>+<base64>")
        name, kid, b64 = parts
        raw = b64decode(b64, max_len=128)
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ValueError("private key is not an Ed25519 key")
        key = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if key.key_id != kid:
            raise ValueError("private key id does not match its key")
        return key

    def save(self, path: Path) -> None:
        """Write the private key to a new file (mode 0600); never overwrites."""
        _write_private(path, self.to_private_string())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        return cls.parse_private(path.read_text(encoding="ascii"))

    @classmethod
    def load_or_create(cls, directory: Path, name: str) -> SigningKey:
        path = directory / f"{_file_stem(name)}.key"
        if path.exists():
            key = cls.load(path)
            if key.name != name:
                raise ValueError(f"{path} holds a key named {key.name!r}, not {name!r}")
            return key
        key = cls.generate(name)
        key.save(path)
        return key


def _file_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)[:80] or "key"


class KeyRing:
    """The gateway's signing key plus every key it retired, stored in one folder.

    Layout: ``ledger-<key id>.key`` per key and a file ``active`` naming the
    active key id. The ring is small and read once at start.
    """

    ACTIVE_FILE = "active"

    def __init__(self, directory: Path, active: SigningKey, retired: list[SigningKey]) -> None:
        self.directory = directory
        self.active = active
        self._retired = retired

    @classmethod
    def load(cls, directory: Path) -> KeyRing:
        """An existing ring; ``FileNotFoundError`` if none (verifiers never create keys)."""
        active_id = (directory / cls.ACTIVE_FILE).read_text(encoding="ascii").strip()
        keys: dict[str, SigningKey] = {}
        for path in sorted(directory.glob("ledger-*.key")):
            k = SigningKey.load(path)
            keys[k.key_id] = k
        if active_id not in keys:
            raise ValueError(f"{directory}: active key {active_id!r} has no key file")
        active = keys.pop(active_id)
        return cls(directory, active, list(keys.values()))

    @classmethod
    def load_or_create(cls, directory: Path, name: str) -> KeyRing:
        """Load the ring; create it on first use. A new ``name`` (origin) rotates to a key
        of that name, because checkpoint signatures must be named after the log's origin."""
        _check_name(name)
        if (directory / cls.ACTIVE_FILE).exists():
            ring = cls.load(directory)
            if ring.active.name != name:
                ring.rotate(name)
            return ring
        directory.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            directory.chmod(0o700)
        key = SigningKey.generate(name)
        ring = cls(directory, key, [])
        ring._persist(key)
        return ring

    def _persist(self, key: SigningKey) -> None:
        key.save(self.directory / f"ledger-{key.key_id}.key")
        tmp = self.directory / f".active.{secrets.token_hex(4)}"
        tmp.write_text(key.key_id + "\n", encoding="ascii")
        os.replace(tmp, self.directory / self.ACTIVE_FILE)

    def rotate(self, name: str | None = None) -> SigningKey:
        """Make a new active key; the old one keeps verifying what it signed."""
        new = SigningKey.generate(name or self.active.name)
        self._persist(new)
        self._retired = [self.active, *self._retired]
        self.active = new
        return new

    def verifiers(self) -> list[VerifierKey]:
        """Active key first, then retired ones, newest first."""
        return [self.active.verifier(), *(k.verifier() for k in self._retired)]

    def signer(self, key_id: str) -> SigningKey | None:
        for k in (self.active, *self._retired):
            if k.key_id == key_id:
                return k
        return None
