"""Labelled routing data (RouteLLM's CSV layout) and the deterministic held-out split.

The split is a pure function of (seed, prompt text), stratified per file and per outcome
(weak right/wrong x strong right/wrong), so it is the same on every machine, independent of
row order, and duplicate prompts always land on the same side (no leakage through copies).
"""

from __future__ import annotations

import csv
import hashlib
import os
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

DEFAULT_SEED = "hybridgate-quality-v1"
DEFAULT_HOLDOUT = 0.2
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_MAX_FIELD = 1 << 22  # 4 MiB per cell: far above any prompt, far below memory trouble


@dataclass(frozen=True, slots=True)
class Dataset:
    """One CSV's rows: the prompt is the only routing-time input; the rest are labels."""

    name: str
    prompts: list[str]
    weak: npt.NDArray[np.float64]
    strong: npt.NDArray[np.float64]
    domains: list[str] | None  # MMLU's subject: for targets and analysis, never a feature
    sha256: str

    def __len__(self) -> int:
        return len(self.prompts)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        rows = np.nonzero(mask)[0]
        return Dataset(
            name=self.name,
            prompts=[self.prompts[i] for i in rows],
            weak=self.weak[rows],
            strong=self.strong[rows],
            domains=None if self.domains is None else [self.domains[i] for i in rows],
            sha256=self.sha256,
        )


def _flag(value: str, column: str, line: int) -> float:
    v = value.strip().lower()
    if v in _TRUE:
        return 1.0
    if v in _FALSE:
        return 0.0
    raise ValueError(f"line {line}: {column} must be True/False, got {value[:20]!r}")


def load_csv(path: str | Path) -> Dataset:
    """Rows with ``prompt``, ``weak_correct``, ``strong_correct`` (``domain`` optional).

    Other columns (gsm8k's responses) are ignored on purpose: they don't exist at routing time.
    """
    p = Path(path)
    raw = p.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    old_limit = csv.field_size_limit()
    csv.field_size_limit(min(_MAX_FIELD, sys.maxsize))
    try:
        reader = csv.DictReader(raw.decode("utf-8-sig").splitlines(keepends=True))
        fields = set(reader.fieldnames or [])
        missing = {"prompt", "weak_correct", "strong_correct"} - fields
        if missing:
            raise ValueError(f"{p.name}: missing columns {sorted(missing)}")
        has_domain = "domain" in fields
        prompts: list[str] = []
        weak: list[float] = []
        strong: list[float] = []
        domains: list[str] = []
        for i, row in enumerate(reader, start=2):
            prompts.append(row["prompt"] or "")
            weak.append(_flag(row["weak_correct"] or "", "weak_correct", i))
            strong.append(_flag(row["strong_correct"] or "", "strong_correct", i))
            if has_domain:
                domains.append(row["domain"] or "")
    finally:
        csv.field_size_limit(old_limit)
    if not prompts:
        raise ValueError(f"{p.name}: no rows")
    return Dataset(
        name=p.stem,
        prompts=prompts,
        weak=np.asarray(weak, dtype=np.float64),
        strong=np.asarray(strong, dtype=np.float64),
        domains=domains if has_domain else None,
        sha256=digest,
    )


def _rank_key(seed: str, text: str) -> bytes:
    return hashlib.sha256(f"{seed}\x00{text}".encode("utf-8", "surrogatepass")).digest()


def holdout_mask(
    data: Dataset, fraction: float = DEFAULT_HOLDOUT, seed: str = DEFAULT_SEED
) -> npt.NDArray[np.bool_]:
    """True for held-out rows: ``fraction`` of each outcome stratum, lowest hash first."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError("holdout fraction must be in [0, 1)")
    strata: dict[tuple[float, float], list[int]] = defaultdict(list)
    for i in range(len(data)):
        strata[(float(data.weak[i]), float(data.strong[i]))].append(i)
    mask = np.zeros(len(data), dtype=bool)
    for rows in strata.values():
        rows.sort(key=lambda i: _rank_key(seed, data.prompts[i]))
        mask[rows[: round(fraction * len(rows))]] = True
    # a duplicated prompt held out anywhere is held out everywhere: no leakage through copies
    held = {data.prompts[i] for i in np.nonzero(mask)[0]}
    for i, prompt in enumerate(data.prompts):
        if prompt in held:
            mask[i] = True
    return mask


def domain_folds(data: Dataset, folds: int, seed: str = DEFAULT_SEED) -> npt.NDArray[np.int64]:
    """Fold number per row, whole domains per fold, for leave-domains-out evaluation."""
    if data.domains is None:
        raise ValueError(f"{data.name}: no domain column")
    if folds < 2:
        raise ValueError("need at least 2 folds")
    names = sorted(set(data.domains), key=lambda d: _rank_key(seed, d))
    fold_of = {d: i % folds for i, d in enumerate(names)}
    return np.asarray([fold_of[d] for d in data.domains], dtype=np.int64)


def row_folds(prompts: list[str], folds: int, seed: str = DEFAULT_SEED) -> npt.NDArray[np.int64]:
    """Fold number per row by prompt hash (duplicates share a fold), for out-of-fold scores."""
    return np.asarray(
        [int.from_bytes(_rank_key(seed + ":fold", p)[:8], "big") % folds for p in prompts],
        dtype=np.int64,
    )


def data_dir() -> Path:
    """The shared data folder: $HYBRIDGATE_DATA_DIR, else ``<repo>/../shared/data``."""
    env = os.environ.get("HYBRIDGATE_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data"
