"""RFC 9162 hashing and proofs against the transparency-dev vectors and a reference tree."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from hybridgate.ledger.merkle import (
    EMPTY_ROOT,
    Frontier,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_at,
    verify_consistency,
    verify_inclusion,
)
from ledger.ledger_env import merkle_data_dir

DATA = merkle_data_dir()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"merkle vectors not found at {DATA}")

# RFC 6962's reference leaves; the vectors' happy paths are proofs in this tree.
REF_LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
REF_ROOT8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"


def _cases(kind: str) -> list[Path]:
    return sorted((DATA / kind).rglob("*.json")) if DATA.is_dir() else []


def _b64(v: str) -> bytes:
    return base64.b64decode(v)


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


class MemTree:
    """Complete subtrees kept in a dict, exactly as the ledger keeps them in SQLite."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        f = Frontier.empty()
        for data in leaves:
            f, new = f.append(leaf_hash(data))
            for level, idx, h in new:
                self.nodes[(level, idx)] = h
        self.frontier = f

    def read(self, level: int, idx: int) -> bytes:
        return self.nodes[(level, idx)]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, written straight from the definition."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


@needs_data
@pytest.mark.parametrize("path", _cases("inclusion"), ids=lambda p: str(p.relative_to(DATA)))
def test_inclusion_vector(path: Path) -> None:
    c = _load(path)
    proof = [_b64(p) for p in c["proof"] or []]
    args = (c["leafIdx"], c["treeSize"], _b64(c["leafHash"]), proof, _b64(c["root"]))
    if c["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@needs_data
@pytest.mark.parametrize("path", _cases("consistency"), ids=lambda p: str(p.relative_to(DATA)))
def test_consistency_vector(path: Path) -> None:
    c = _load(path)
    proof = [_b64(p) for p in c["proof"] or []]
    args = (c["size1"], c["size2"], _b64(c["root1"]), _b64(c["root2"]), proof)
    if c["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


@needs_data
def test_vector_counts() -> None:
    """All vectors were found (the parametrized tests above ran on every file)."""
    assert len(_cases("inclusion")) >= 90
    assert len(_cases("consistency")) >= 90


def test_reference_root() -> None:
    tree = MemTree(REF_LEAVES)
    assert tree.frontier.root().hex() == REF_ROOT8
    assert root_at(8, tree.read).hex() == REF_ROOT8
    assert root_at(0, tree.read) == EMPTY_ROOT
    for n in range(1, 9):
        assert root_at(n, tree.read) == mth(REF_LEAVES[:n])


@needs_data
def test_generated_proofs_equal_vector_happy_paths() -> None:
    tree = MemTree(REF_LEAVES)
    for path in _cases("inclusion"):
        c = _load(path)
        if path.name == "happy-path.json" and c["treeSize"] <= 8:
            want = [_b64(p) for p in c["proof"] or []]
            assert inclusion_proof(c["leafIdx"], c["treeSize"], tree.read) == want, path
    for path in _cases("consistency"):
        c = _load(path)
        if path.name == "happy-path.json" and c["size2"] <= 8:
            want = [_b64(p) for p in c["proof"] or []]
            assert consistency_proof(c["size1"], c["size2"], tree.read) == want, path


def test_all_proofs_verify_up_to_70_leaves() -> None:
    leaves = [i.to_bytes(2, "big") for i in range(70)]
    tree = MemTree(leaves)
    roots = [mth(leaves[:n]) for n in range(71)]
    assert tree.frontier.root() == roots[70]
    for n in range(1, 71):
        for i in range(n):
            proof = inclusion_proof(i, n, tree.read)
            verify_inclusion(i, n, leaf_hash(leaves[i]), proof, roots[n])
            with pytest.raises(ProofError):
                verify_inclusion(i, n, leaf_hash(b"other"), proof, roots[n])
        for m in range(1, n + 1):
            proof = consistency_proof(m, n, tree.read)
            verify_consistency(m, n, roots[m], roots[n], proof)
            if m < n:
                with pytest.raises(ProofError):
                    verify_consistency(m, n, roots[m], mth([*leaves[: n - 1], b"x"]), proof)


def test_proof_size_is_logarithmic() -> None:
    tree = MemTree([i.to_bytes(4, "big") for i in range(1000)])
    assert max(len(inclusion_proof(i, 1000, tree.read)) for i in range(1000)) == 10
    assert max(len(consistency_proof(m, 1000, tree.read)) for m in range(1, 1000)) <= 2 * 10


def test_frontier_reload_matches() -> None:
    tree = MemTree([bytes([i]) for i in range(37)])
    again = Frontier.load(37, tree.read)
    assert again == tree.frontier
    f2, new = again.append(leaf_hash(b"z"))
    assert [n[:2] for n in new] == [(0, 37), (1, 18)]
    assert f2.root() == mth([bytes([i]) for i in range(37)] + [b"z"])
