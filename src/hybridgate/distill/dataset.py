"""A task's captured pairs as a dataset: decrypted, checked against their hashes,
split deterministically, and hashed the way the provenance manifest records it.

The dataset hash covers ``log_index receipt_id pair_hash`` per training pair,
so an auditor recomputes it from the signed receipts alone (each request
receipt carries its pair's ``capture_hash``), without seeing the pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hybridgate.distill.capture import pair_hash
from hybridgate.distill.crypto import Sealer, SealError
from hybridgate.distill.store import DistillStore


def pair_aad(task: str, receipt_id: str, log_index: int) -> bytes:
    """Associated data of a sealed pair: it decrypts only on its own row."""
    return f"{task}\x00{receipt_id}\x00{log_index}".encode()


@dataclass(frozen=True, slots=True)
class Example:
    receipt_id: str
    log_index: int
    pair_hash: str
    messages: list[dict[str, Any]]
    answer: str
    teacher_model: str

    @property
    def prompt_messages(self) -> list[dict[str, Any]]:
        return self.messages


class DatasetError(ValueError):
    pass


def load_examples(store: DistillStore, sealer: Sealer, task: str) -> list[Example]:
    """Every live pair of ``task`` whose receipt is in the log, oldest first; a pair that
    fails to decrypt or whose content no longer matches its hash is an error, not
    silently skipped. On the shared log a pair waits until the sequencer merges its
    receipt (within ``store.max_merge_delay_s``): only then has it an index to prove."""
    store.purge_expired()
    out: list[Example] = []
    for p in store.pairs(task):
        index = p.index
        if index is None:
            continue
        try:
            plain = sealer.open(p.sealed, pair_aad(task, p.receipt_id, p.log_index))
        except SealError as exc:
            raise DatasetError(f"pair of receipt {p.receipt_id}: {exc}") from exc
        record = json.loads(plain)
        if pair_hash(record) != p.pair_hash:
            raise DatasetError(f"pair of receipt {p.receipt_id} does not match its hash")
        out.append(
            Example(
                p.receipt_id,
                index,
                p.pair_hash,
                record["messages"],
                record["answer"],
                record["teacher_model"],
            )
        )
    return out


def _bucket(seed: int, receipt_id: str) -> float:
    h = hashlib.sha256(f"{seed}:{receipt_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split(
    examples: Sequence[Example], holdout: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Held-out by a keyed hash of the receipt id: stable as the dataset grows."""
    train = [e for e in examples if _bucket(seed, e.receipt_id) >= holdout]
    held = [e for e in examples if _bucket(seed, e.receipt_id) < holdout]
    return train, held


def dataset_lines(examples: Sequence[Example]) -> list[str]:
    return [f"{e.log_index} {e.receipt_id} {e.pair_hash}" for e in examples]


def dataset_hash_of_lines(lines: Sequence[str]) -> str:
    return hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()


def dataset_hash(examples: Sequence[Example]) -> str:
    return dataset_hash_of_lines(dataset_lines(sorted(examples, key=lambda e: e.log_index)))
