"""The ``env`` fixture: a fresh ledger in a temp dir, closed afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.ledger_env import LedgerEnv


@pytest.fixture
def env(tmp_path: Path) -> Iterator[LedgerEnv]:
    e = LedgerEnv(tmp_path)
    try:
        yield e
    finally:
        e.close()
