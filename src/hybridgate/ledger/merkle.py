"""RFC 9162 Merkle tree hashing, proof construction and proof verification.

Pure logic, no I/O. Construction is written against a *node reader*: a
function returning the hash of a complete, aligned subtree ``(level, index)``
(level 0 are leaf hashes). Complete subtrees never change once written, so a
store that keeps them can answer a proof for any past tree size with
O(log n) reads; the tree's right edge, which is not complete, is recomputed
from at most log n of them.

Verification follows RFC 9162 §2.1.3.2 and §2.1.4.2 and the edge cases of the
transparency-dev test vectors (a zero ``first`` size is never a valid
consistency check; equal sizes need an empty proof and equal roots).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeReader = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A proof that does not verify, with the reason."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


# -- the right edge --------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Frontier:
    """The complete subtrees on the right edge of a tree, largest first.

    Their levels are the set bits of ``size``: appending a leaf merges equal
    levels like a binary carry, so each append costs O(log n) hashes and
    yields exactly the new complete subtrees a store must keep.
    """

    size: int
    nodes: tuple[tuple[int, bytes], ...]  # (level, hash), decreasing level

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, ())

    @classmethod
    def load(cls, size: int, read: NodeReader) -> Frontier:
        """Rebuild from stored complete subtrees (one read per set bit of ``size``)."""
        nodes: list[tuple[int, bytes]] = []
        start = 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                nodes.append((level, read(level, start >> level)))
                start += 1 << level
        return cls(size, tuple(nodes))

    def append(self, leaf: bytes) -> tuple[Frontier, list[tuple[int, int, bytes]]]:
        """The next frontier and the new complete subtrees as ``(level, index, hash)``."""
        index = self.size
        stack = list(self.nodes)
        new: list[tuple[int, int, bytes]] = [(0, index, leaf)]
        level, h = 0, leaf
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            h = node_hash(left, h)
            level += 1
            new.append((level, index >> level, h))
        stack.append((level, h))
        return Frontier(index + 1, tuple(stack)), new

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        acc = self.nodes[-1][1]
        for _, left in reversed(self.nodes[:-1]):
            acc = node_hash(left, acc)
        return acc


# -- construction over stored complete subtrees ------------------------------
def range_hash(start: int, end: int, read: NodeReader) -> bytes:
    """MTH of leaves [start, end), where ``start`` is aligned as RFC 9162 splits are."""
    n = end - start
    if n <= 0:
        raise ValueError("empty range")
    if n & (n - 1) == 0 and start % n == 0:
        level = n.bit_length() - 1
        return read(level, start >> level)
    k = _split(n)
    return node_hash(range_hash(start, start + k, read), range_hash(start + k, end, read))


def root_at(size: int, read: NodeReader) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(0, size, read)


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PATH(index, D[0:size]), leaf side first."""
    if not 0 <= index < size:
        raise ValueError(f"index {index} is outside a tree of size {size}")
    out: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
    out.reverse()
    return out


def consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """The subtrees whose hashes form PROOF(first, D[0:second]) (RFC 9162 §2.1.4.1)."""
    if not 0 <= first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    if first in (0, second):
        return []
    out: list[tuple[int, int]] = []
    start, end, m, whole = 0, second, first, True
    while True:
        n = end - start
        if m == n:
            if not whole:
                out.append((start, end))
            break
        k = _split(n)
        if m <= k:
            out.append((start + k, end))
            end = start + k
        else:
            out.append((start, start + k))
            start += k
            m -= k
            whole = False
    out.reverse()
    return out


def inclusion_proof(index: int, size: int, read: NodeReader) -> list[bytes]:
    return [range_hash(s, e, read) for s, e in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, read: NodeReader) -> list[bytes]:
    return [range_hash(s, e, read) for s, e in consistency_ranges(first, second)]


def root_of_leaves(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH over leaf hashes, for tests and small trees."""
    f = Frontier.empty()
    for h in leaves:
        f, _ = f.append(h)
    return f.root()


# -- verification ---------------------------------------------------------------
def _check_hashes(proof: Sequence[bytes]) -> None:
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofError(f"proof element of {len(p)} bytes, not {HASH_SIZE}")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    if size <= 0 or not 0 <= index < size:
        raise ProofError(f"index {index} is outside a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash of {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes(proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is too short")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` in the tree with ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise ProofError("inclusion proof does not lead to the checkpoint's root")


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Raise :class:`ProofError` unless the tree ``second`` extends the tree ``first``."""
    if first < 0 or second < first:
        raise ProofError(f"size {second} is smaller than size {first}: the log was rolled back")
    if first == 0:
        raise ProofError("a consistency proof from the empty tree proves nothing")
    if first == second:
        if proof:
            raise ProofError("equal sizes need an empty proof")
        if first_root != second_root:
            raise ProofError("equal sizes with different roots: the log forked")
        return
    if not proof:
        raise ProofError("empty consistency proof")
    _check_hashes(proof)
    path = list(proof)
    if first & (first - 1) == 0:  # a power of two: the first root is itself a node
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is too short")
    if fr != first_root:
        raise ProofError("consistency proof does not match the first root")
    if sr != second_root:
        raise ProofError("consistency proof does not match the second root")
