"""Helpers for the ledger tests: a real store, key ring and ledger in a temp dir.

Imported as ``ledger.ledger_env`` (``tests`` is on the path) so that mypy, which
sees this folder as the namespace package ``ledger``, resolves it too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hybridgate.config import LedgerConfig
from hybridgate.ledger import KeyRing, Ledger
from hybridgate.store.sqlite import SQLiteStore

ORIGIN = "test.local/receipts"


def merkle_data_dir() -> Path:
    base = os.environ.get("HYBRIDGATE_DATA_DIR")
    root = Path(base) if base else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return root / "merkle"


def request_fields(n: int = 0, **extra: Any) -> dict[str, Any]:
    """Fields shaped like the pipeline's."""
    return {
        "kind": "request",
        "key_id": "key01",
        "team": "payments",
        "request_commitment": f"{n:064x}",
        "response_commitment": "ab" * 32,
        "data_classes": ["pii"],
        "action": "redact",
        "policy_hash": "cd" * 32,
        "route": "llama-onprem",
        "provider": "vllm",
        "model": "llama-3.1-8b",
        "location": "on_prem",
        "tokens_in": 10 + n,
        "tokens_out": 20,
        "cost_usd": "0.000123",
        "latency_ms": 12.5,
        "outcome": "answered",
        "status": 200,
        **extra,
    }


class LedgerEnv:
    def __init__(self, root: Path, *, commit_window_s: float = 0.0, origin: str = ORIGIN) -> None:
        self.root = root
        self.origin = origin
        self.store = SQLiteStore(root / "gateway.db", commit_window_s=commit_window_s)
        self.store.open(Ledger.migrations())
        self.ring = KeyRing.load_or_create(root / "keys", origin)
        self.config = LedgerConfig(origin=origin, checkpoint_interval_s=3600)
        self.ledger = Ledger(self.store, self.ring, self.config, b"k" * 32)

    def fill(self, n: int) -> list[str]:
        ids = []
        for i in range(n):
            rid = self.ledger.new_receipt_id()
            self.ledger.append_sync(rid, request_fields(i))
            ids.append(rid)
        return ids

    def reopen(self) -> None:
        """A restart: new store, key ring and ledger objects over the same files."""
        self.store.close()
        self.store = SQLiteStore(self.root / "gateway.db")
        self.store.open(Ledger.migrations())
        self.ring = KeyRing.load_or_create(self.root / "keys", self.origin)
        self.ledger = Ledger(self.store, self.ring, self.config, b"k" * 32)

    def close(self) -> None:
        self.store.close()
