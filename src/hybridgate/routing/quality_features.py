"""Prompt → sparse hashed feature vector, shared by the router, its trainer and its evaluator.

Why hashed n-grams and not a sentence encoder: MiniLM measured 17-22 ms per prompt on a
2-core CPU (the budget is 5 ms) and did not beat these features on held-out RouteLLM data,
so the runtime needs only numpy and a stable hash. The signal the router needs is mostly
*what kind of question* this is (subject, math word problem, options) and *how long/numeric*
it is, which word n-grams and a few bucketed counts capture.

Everything here is pure and deterministic across processes (``zlib.crc32``, never Python's
salted ``hash``), so a model trained on one machine scores identically on another.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: Feature-format version; a model file records it and the loader refuses a mismatch.
FEATURE_VERSION = 4

#: One token: a run of letters, a run of digits, or one other non-space character.
#: Each alternative is a single character class, so matching is linear-time.
_TOKEN = re.compile(r"[a-z]+|[0-9]+|[^\sa-z0-9]")
_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)?")
_CHOICE = re.compile(r"\n[ \t]?\(?A[.)][ \t]")
_SENTENCE_END = re.compile(r"[.?!](?:\s|$)")
_CHAR_N = 4
_CHAR_MIN_WORD = 5
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_NS_UNI = np.uint64(1 << 40)
_NS_BI = np.uint64(2 << 40)
_NS_CHAR = np.uint64(3 << 40)
_NS_COUNT = np.uint64(4 << 40)
_KIND_FREE = np.uint64(0x5A17 << 48)
_KIND_MC = np.uint64(0x3C5E << 48)


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How text becomes features; stored in the model file so training and serving agree."""

    dims: int = 1 << 16
    max_chars: int = 6000
    bigrams: bool = True

    def __post_init__(self) -> None:
        if self.dims < 2 or self.dims & (self.dims - 1):
            raise ValueError("dims must be a power of two")
        if self.max_chars < 1:
            raise ValueError("max_chars must be positive")


def tokens(text: str, max_chars: int) -> list[str]:
    """Lower-cased tokens; numbers collapse to their digit count so values don't fragment."""
    out: list[str] = []
    for tok in _TOKEN.findall(text[:max_chars].lower()):
        out.append(f"#{min(len(tok), 6)}" if tok.isdigit() else tok)
    return out


def _bucket(count: int) -> int:
    """Half-log2 bucket (0, 1, 2, 3, 4-5, 6-7, ...) so length survives row normalization."""
    return 0 if count <= 0 else int(2 * math.log2(count)) + 1


def prompt_kind(text: str) -> str:
    """``mc`` for multiple-choice prompts (a line starting ``A.``/``A)``), else ``free``."""
    return "mc" if _CHOICE.search(text) else "free"


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finalizer: spreads any 64-bit key over all bits (wrapping arithmetic)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _MIX1
    x = x ^ (x >> np.uint64(27))
    x = x * _MIX2
    out: npt.NDArray[np.uint64] = x ^ (x >> np.uint64(31))
    return out


def _crc(strings: list[str]) -> npt.NDArray[np.uint64]:
    """crc32 of each string (once per distinct string), as uint64."""
    cache = {t: zlib.crc32(t.encode("utf-8", "surrogatepass")) for t in set(strings)}
    return np.fromiter((cache[t] for t in strings), dtype=np.uint64, count=len(strings))


def feature_keys(text: str, spec: FeatureSpec) -> npt.NDArray[np.uint64]:
    """64-bit keys of every feature occurrence in one prompt (hashed to buckets later).

    Streams: word unigrams, word bigrams, character 4-grams inside longer words (once per
    distinct word: subject vocabulary such as "photosynth", "-ology", "isomorph" shares
    pieces that whole words do not), and bucketed counts (length, numbers, lines,
    sentences). Each stream has its own namespace in the high bits before mixing.

    Every key is also salted with the prompt kind, which makes the linear model two models in
    one weight vector: what predicts trouble in a multiple-choice question (its subject)
    differs from what does in an open problem (its length, how many quantities), and
    sharing weights between them measurably hurt the open-problem (GSM8K) side.

    Only the crc32 of each distinct token and character gram runs in Python; combining is
    vectorized, which keeps a decision well under a millisecond for a typical prompt.
    """
    clipped = text[: spec.max_chars]
    toks = tokens(clipped, spec.max_chars)
    th = _crc(toks)
    parts = [_mix(th ^ _NS_UNI)]
    if spec.bigrams and len(toks) > 1:
        parts.append(_mix(_mix(th[:-1] ^ _NS_BI) ^ th[1:]))
    grams = [
        word[i : i + _CHAR_N]
        for word in {t for t in toks if len(t) >= _CHAR_MIN_WORD and t.isalpha()}
        for i in range(len(word) - _CHAR_N + 1)
    ]
    if grams:
        parts.append(_mix(_crc(grams) ^ _NS_CHAR))
    numbers = _NUMBER.findall(clipped)
    counts = [
        _bucket(len(clipped.split())),
        _bucket(len(numbers)),
        _bucket(len(set(numbers))),
        _bucket(clipped.count("\n") + 1),
        min(len(_SENTENCE_END.findall(clipped)), 12),
    ]
    # stream id in bits 32+, bucket value in the low bits; one extra key marks the kind
    extra = [(j + 1) << 8 | c for j, c in enumerate(counts)] + [0]
    parts.append(_mix(np.asarray(extra, dtype=np.uint64) ^ _NS_COUNT))
    salt = _KIND_MC if _CHOICE.search(clipped) else _KIND_FREE
    return _mix(np.concatenate(parts) ^ salt)


def featurize(
    text: str, spec: FeatureSpec
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Sparse (indices, values): log(1 + count) per hashed bucket, L2-normalized.

    Normalizing makes a long prompt and a short one comparable in scale; length itself is
    kept as explicit bucket features.
    """
    keys = feature_keys(text, spec)
    buckets = (keys & np.uint64(spec.dims - 1)).astype(np.int64)
    idx, counts = np.unique(buckets, return_counts=True)
    vals = np.log1p(counts.astype(np.float64))
    vals /= float(np.linalg.norm(vals))
    return idx, vals


@dataclass(frozen=True, slots=True)
class SparseRows:
    """A CSR-like batch of featurized prompts, enough for linear models in plain numpy."""

    indices: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    indptr: npt.NDArray[np.int64]
    dims: int

    @property
    def n_rows(self) -> int:
        return len(self.indptr) - 1

    def dot(self, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """X @ w."""
        prod = self.values * weights[self.indices]
        cums = np.concatenate([[0.0], np.cumsum(prod)])
        out: npt.NDArray[np.float64] = cums[self.indptr[1:]] - cums[self.indptr[:-1]]
        return out

    def tdot(self, grad: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """X.T @ g."""
        per_entry = np.repeat(grad, np.diff(self.indptr)) * self.values
        out: npt.NDArray[np.float64] = np.bincount(
            self.indices, weights=per_entry, minlength=self.dims
        ).astype(np.float64)
        return out

    def take(self, rows: npt.NDArray[np.int64]) -> SparseRows:
        """The sub-batch of the given row numbers, in that order."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        gather = (
            np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths, strict=True)])
            if len(rows)
            else np.zeros(0, dtype=np.int64)
        )
        return SparseRows(self.indices[gather], self.values[gather], indptr, self.dims)


def featurize_many(texts: list[str], spec: FeatureSpec) -> SparseRows:
    idx_parts: list[npt.NDArray[np.int64]] = []
    val_parts: list[npt.NDArray[np.float64]] = []
    lengths = np.zeros(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        idx, vals = featurize(text, spec)
        idx_parts.append(idx)
        val_parts.append(vals)
        lengths[i] = len(idx)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.concatenate(idx_parts) if idx_parts else np.zeros(0, dtype=np.int64)
    values = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=np.float64)
    return SparseRows(indices.astype(np.int64), values.astype(np.float64), indptr, spec.dims)
