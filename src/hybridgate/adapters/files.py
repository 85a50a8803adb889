"""An adapter's files on disk: which ones make it, their digest, and its stored copy.

Identity is the SHA-256 of a manifest, not of a directory listing, so it is
deterministic across machines, file systems and copy tools:

    sha256( for each file, sorted by its relative POSIX path:
              path (UTF-8) ‖ 0x00 ‖ size (8 bytes, big-endian) ‖ sha256(content) )

Only the files that decide the adapter's behaviour count: for a PEFT LoRA
directory its ``adapter_config.json`` and weight files
(``*.safetensors``, ``*.bin``, ``*.pt``); for a llama.cpp LoRA a single
``.gguf`` file. READMEs, tokenizer copies and training logs do not change the
weights that answer, so they neither change the identity nor get copied.

Registering copies those files into ``HOME/adapters/<sha256>/``: the gateway
serves that immutable copy, so an adapter's id keeps meaning the weights it
served even if the training directory is overwritten later.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from hybridgate.errors import InvalidRequest

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")
PEFT_CONFIG = "adapter_config.json"
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class AdapterFiles:
    """The files that make one adapter, and their digest."""

    root: Path
    names: tuple[str, ...]
    sha256: str
    size_bytes: int
    format: str  # "peft" or "gguf"


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def manifest_digest(entries: list[tuple[str, int, str]]) -> str:
    """The adapter id from ``(relative path, size, sha256 hex)`` entries (pure)."""
    h = hashlib.sha256()
    for name, size, digest in sorted(entries):
        h.update(name.encode("utf-8"))
        h.update(b"\0")
        h.update(size.to_bytes(8, "big"))
        h.update(bytes.fromhex(digest))
    return h.hexdigest()


def adapter_files(path: str | Path) -> AdapterFiles:
    """Find an adapter's files under ``path`` and digest them; a clear error if none."""
    p = Path(path).expanduser()
    if p.is_file():
        if p.suffix != ".gguf":
            raise InvalidRequest(f"{p}: a single-file adapter must be a .gguf LoRA")
        root, names, fmt = p.parent, [p.name], "gguf"
    elif p.is_dir():
        if not (p / PEFT_CONFIG).is_file():
            raise InvalidRequest(f"{p}: no {PEFT_CONFIG} (not a PEFT adapter directory)")
        weights = sorted(
            f.name
            for f in p.iterdir()
            if f.is_file() and f.suffix in WEIGHT_SUFFIXES and not f.name.startswith(".")
        )
        if not weights:
            raise InvalidRequest(f"{p}: no adapter weights (*.safetensors or *.bin)")
        root, names, fmt = p, [PEFT_CONFIG, *weights], "peft"
    else:
        raise InvalidRequest(f"{p}: no such file or directory")
    entries: list[tuple[str, int, str]] = []
    total = 0
    for name in names:
        f = root / name
        size = f.stat().st_size
        total += size
        entries.append((name, size, _file_digest(f)))
    return AdapterFiles(root, tuple(names), manifest_digest(entries), total, fmt)


def store_copy(files: AdapterFiles, adapters_dir: Path) -> Path:
    """Copy the adapter into ``adapters_dir/<sha256>/`` (atomic, idempotent); its path.

    For a GGUF adapter the returned path is the file inside that directory.
    The copy is digested again before it is put in place, so a file changed
    while it was being copied is refused instead of stored under a wrong id.
    """
    dest = adapters_dir / files.sha256
    target = dest / files.names[0] if files.format == "gguf" else dest
    if dest.is_dir():
        return target
    adapters_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=adapters_dir))
    try:
        for name in files.names:
            shutil.copyfile(files.root / name, tmp / name)
        again = adapter_files(tmp / files.names[0] if files.format == "gguf" else tmp)
        if again.sha256 != files.sha256:
            raise InvalidRequest("adapter files changed while they were being copied; try again")
        try:
            os.replace(tmp, dest)
        except OSError:
            if not dest.is_dir():  # another process stored the same adapter first: fine
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def verify(path: str | Path, sha256: str) -> None:
    """Refuse to serve an adapter whose stored files no longer match its id."""
    found = adapter_files(path)
    if found.sha256 != sha256:
        raise InvalidRequest(
            f"adapter files at {path} do not match their registered id {sha256[:12]}"
        )
