from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import Finding, Scanner, build_scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


@pytest.fixture(scope="session")
def scanner() -> Scanner:
    return build_scanner(ScannerConfig(terms=["Project Falcon", "Bluebird", "#ops-secret"]))


def _found(scanner: Scanner, text: str) -> list[tuple[str, str]]:
    res = scanner.scan(text)
    assert res.complete, res.errors
    return [(f.type, text[f.start : f.end]) for f in res.findings]


@pytest.fixture(scope="session")
def found() -> Found:
    """(type, matched text) for every finding, in text order; the scan must be complete."""
    return _found


@pytest.fixture(scope="session")
def types() -> Types:
    return lambda scanner, text: {t for t, _ in _found(scanner, text)}


class FlakyRecognizer:
    """A plug-in whose first call raises (a model still loading): that scan is incomplete."""

    name = "flaky"

    def __init__(self) -> None:
        self.calls = 0

    def recognize(self, text: str) -> list[Finding]:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("model not loaded yet")
        return []


@pytest.fixture
def flaky() -> FlakyRecognizer:
    return FlakyRecognizer()
