"""Keys (C2SP naming, rotation, files) and checkpoints (C2SP signed notes)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hybridgate.ledger import (
    KeyRing,
    NoteError,
    SigningKey,
    VerifierKey,
    canonical_json,
    sign_receipt,
    verify_checkpoint,
    verify_receipt_signature,
)
from hybridgate.ledger.merkle import EMPTY_ROOT
from hybridgate.ledger.note import _parse_sig_line, parse_checkpoint, sign_checkpoint

# From the documentation of Go's golang.org/x/mod/sumdb/note: proves our key ids,
# key strings and signatures are the ones stock signed-note tools produce.
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
    "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)


def test_go_signed_note_vector() -> None:
    v = VerifierKey.parse(GO_VERIFIER)
    assert v.key_id == "c74f20a3" and v.to_string() == GO_VERIFIER
    k = SigningKey.parse_private(GO_SIGNER)
    assert k.verifier() == v and k.to_private_string() == GO_SIGNER
    sig = _parse_sig_line(GO_SIG)
    assert sig.key_id == "c74f20a3"
    assert v.verify(GO_TEXT.encode(), sig.sig)
    assert k.sign(GO_TEXT.encode()) == sig.sig  # Ed25519 is deterministic


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "name+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong id
        "Peter+Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+AhpcV2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # alg byte
        "PeterNeumann+c74f20a3+ARpc",
        "x" * 5000,
    ],
)
def test_verifier_key_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        VerifierKey.parse(bad)


def test_key_files_are_private_and_reload(tmp_path: Path) -> None:
    k = SigningKey.load_or_create(tmp_path / "k", "gw.example/log")
    files = list((tmp_path / "k").iterdir())
    assert len(files) == 1 and stat.S_IMODE(files[0].stat().st_mode) == 0o600
    again = SigningKey.load_or_create(tmp_path / "k", "gw.example/log")
    assert again.key_id == k.key_id and len(k.key_id) == 8
    with pytest.raises(FileExistsError):
        k.save(files[0])  # never overwrites a key


def test_keyring_rotation_keeps_old_keys(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys", "gw.example/log")
    old = ring.active
    signed = sign_receipt({"receipt_id": "r1", "kind": "request"}, old)
    new = ring.rotate()
    assert new.key_id != old.key_id and new.name == old.name
    reloaded = KeyRing.load_or_create(tmp_path / "keys", "gw.example/log")
    assert reloaded.active.key_id == new.key_id
    assert [v.key_id for v in reloaded.verifiers()] == [new.key_id, old.key_id]
    assert verify_receipt_signature(signed, reloaded.verifiers()) is None
    assert verify_receipt_signature(signed, [new.verifier()]) is not None
    for p in (tmp_path / "keys").glob("*.key"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_keyring_new_origin_rotates(tmp_path: Path) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys", "a.example/log")
    ring2 = KeyRing.load_or_create(tmp_path / "keys", "b.example/log")
    assert ring2.active.name == "b.example/log"
    assert ring.active.key_id in {v.key_id for v in ring2.verifiers()}


def test_receipt_signature_detects_changes() -> None:
    key = SigningKey.generate("gw")
    signed = sign_receipt({"receipt_id": "r1", "kind": "request", "cost_usd": "0.1"}, key)
    keys = [key.verifier()]
    assert verify_receipt_signature(signed, keys) is None
    signed["receipt"]["cost_usd"] = "0.2"
    assert "does not verify" in (verify_receipt_signature(signed, keys) or "")
    assert verify_receipt_signature({"receipt": {}}, keys) == "receipt is not signed"
    other = SigningKey.generate("gw")
    assert "unknown key" in (verify_receipt_signature(signed, [other.verifier()]) or "")


def test_canonical_json_is_rfc8785() -> None:
    assert canonical_json({"b": 1, "a": [1.0, "é", None, True]}) == (
        '{"a":[1,"é",null,true],"b":1}'.encode()
    )
    with pytest.raises(ValueError):
        canonical_json({"t": 2**60})  # beyond RFC 8785's integers: times go as strings
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_checkpoint_round_trip_and_format() -> None:
    key = SigningKey.generate("log.example/a")
    note = sign_checkpoint("log.example/a", 0, EMPTY_ROOT, key)
    lines = note.split("\n")
    assert lines[:4] == ["log.example/a", "0", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", ""]
    assert lines[4].startswith("— log.example/a ") and lines[5] == ""
    cp = verify_checkpoint(note, [key.verifier()], origin="log.example/a")
    assert (cp.size, cp.root) == (0, EMPTY_ROOT)
    assert parse_checkpoint(note).note == note


def test_checkpoint_rejections() -> None:
    key = SigningKey.generate("log.example/a")
    note = sign_checkpoint("log.example/a", 5, b"\x01" * 32, key)
    keys = [key.verifier()]
    with pytest.raises(NoteError, match="is for log"):
        verify_checkpoint(note, keys, origin="other")
    with pytest.raises(NoteError, match="invalid"):
        verify_checkpoint(note.replace("\n5\n", "\n6\n"), keys)
    with pytest.raises(NoteError, match="trusted"):
        verify_checkpoint(note, [SigningKey.generate("log.example/a").verifier()])
    for broken in [
        note.replace("\n\n", "\n"),
        note.replace("\n5\n", "\n05\n"),
        note.replace("\n5\n", "\n-5\n"),
        note.replace("\n", "\r\n"),
        note.rstrip("\n"),
        "log.example/a\n5\n" + "A" * 44 + "\n\n",
        "x\n" * 20000,
    ]:
        with pytest.raises(NoteError):
            verify_checkpoint(broken, keys)


def test_checkpoint_ignores_unknown_cosigners() -> None:
    key, other = SigningKey.generate("log.example/a"), SigningKey.generate("witness")
    note = sign_checkpoint("log.example/a", 5, b"\x01" * 32, key)
    foreign = sign_checkpoint("log.example/a", 5, b"\x01" * 32, other).split("\n\n")[1]
    cosigned = note + foreign
    assert verify_checkpoint(cosigned, [key.verifier()]).size == 5
