"""C2SP checkpoints (c2sp.org/tlog-checkpoint) as signed notes (c2sp.org/signed-note).

A checkpoint is the text ``<origin>\\n<size>\\n<base64 root>\\n`` followed by a
blank line and one signature line per signer:
``— <name> <base64(4-byte key id ‖ Ed25519 signature)>``. The signature covers
the text exactly, including its final newline. Parsing is strict because a
checkpoint is what a verifier trusts: no extension lines are needed here, but
they are accepted after the root as the spec allows, and ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from hybridgate.ledger.canonical import b64decode, b64encode
from hybridgate.ledger.keys import SigningKey, VerifierKey, valid_key_name
from hybridgate.ledger.merkle import HASH_SIZE

MAX_NOTE_BYTES = 16 * 1024
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")


class NoteError(ValueError):
    """A checkpoint that cannot be parsed or whose signature does not verify."""


@dataclass(frozen=True, slots=True)
class Signature:
    name: str
    key_id: str
    sig: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    text: str  # the signed body
    signatures: tuple[Signature, ...] = ()

    @property
    def note(self) -> str:
        lines = "".join(
            f"{_DASH}{s.name} {b64encode(bytes.fromhex(s.key_id) + s.sig)}\n"
            for s in self.signatures
        )
        return self.text + "\n" + lines


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin or not origin.isprintable():
        raise ValueError("origin must be one printable line")
    if size < 0 or len(root) != HASH_SIZE:
        raise ValueError("bad tree size or root")
    return f"{origin}\n{size}\n{b64encode(root)}\n"


def sign_checkpoint(origin: str, size: int, root: bytes, key: SigningKey) -> str:
    text = checkpoint_body(origin, size, root)
    sig = key.sign(text.encode("utf-8"))
    return Checkpoint(origin, size, root, text, (Signature(key.name, key.key_id, sig),)).note


def parse_checkpoint(note: str) -> Checkpoint:
    """Parse without checking signatures (see :func:`verify_checkpoint`)."""
    if not isinstance(note, str) or len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_BYTES:
        raise NoteError("checkpoint is not a string of at most 16 KiB")
    if "\r" in note or not note.endswith("\n"):
        raise NoteError("checkpoint must use \\n line endings and end with a newline")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise NoteError("checkpoint has no blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise NoteError("checkpoint needs origin, size and root lines")
    origin, size_s, root_s = lines[0], lines[1], lines[2]
    if not origin or not origin.isprintable():
        raise NoteError("checkpoint origin is empty or not printable")
    if not _SIZE.fullmatch(size_s):
        raise NoteError("checkpoint size is not a decimal number")
    try:
        root = b64decode(root_s, max_len=64)
    except ValueError as exc:
        raise NoteError("checkpoint root is not base64") from exc
    if len(root) != HASH_SIZE:
        raise NoteError("checkpoint root is not a SHA-256 hash")
    sigs: list[Signature] = []
    for line in sig_block.split("\n")[:-1]:
        sigs.append(_parse_sig_line(line))
        if len(sigs) > MAX_SIGNATURES:
            raise NoteError("too many signatures")
    if not sigs:
        raise NoteError("checkpoint is not signed")
    return Checkpoint(origin, int(size_s), root, text, tuple(sigs))


def _parse_sig_line(line: str) -> Signature:
    if not line.startswith(_DASH):
        raise NoteError("malformed signature line")
    name, sep, b64 = line[len(_DASH) :].partition(" ")
    if not sep or not valid_key_name(name):
        raise NoteError("malformed signature line")
    try:
        raw = b64decode(b64, max_len=1024)
    except ValueError as exc:
        raise NoteError("signature is not base64") from exc
    if len(raw) < 5:
        raise NoteError("signature too short")
    return Signature(name, raw[:4].hex(), raw[4:])


def verify_checkpoint(
    note: str, keys: Sequence[VerifierKey], *, origin: str | None = None
) -> Checkpoint:
    """The parsed checkpoint if some known key signed it; signatures by unknown keys
    are ignored as signed-note prescribes, but a bad signature by a known key fails."""
    cp = parse_checkpoint(note)
    if origin is not None and cp.origin != origin:
        raise NoteError(f"checkpoint is for log {cp.origin!r}, not {origin!r}")
    data = cp.text.encode("utf-8")
    verified = False
    for s in cp.signatures:
        for k in keys:
            if k.name == s.name and k.key_id == s.key_id:
                if not k.verify(data, s.sig):
                    raise NoteError(f"checkpoint signature by {k.name}+{k.key_id} is invalid")
                verified = True
    if not verified:
        raise NoteError("checkpoint is not signed by any trusted key")
    return cp
