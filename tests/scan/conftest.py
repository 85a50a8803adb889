from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import Finding, Scanner, build_scanner, extract_segments, scan_request
from hybridgate.scan.cache import CachedScanner, ScanCache, scanner_fingerprint
from hybridgate.scan.findings import RequestScan, Segment

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


#: The scan-cache tests' deployment key and the two scanners sharing a store.
KEY = b"k" * 32
TERMS = ScannerConfig(terms=["Project Falcon", "Bluebird"])
OTHER_TERMS = ScannerConfig(terms=["Nightjar"])


def wrap(s: Scanner, cfg: ScannerConfig, cache: ScanCache) -> CachedScanner:
    return CachedScanner.wrap(s, cache, scanner_fingerprint(cfg, s.detector_names))


def fresh_scan(scanner: Scanner, body: Any) -> tuple[list[Segment], RequestScan]:
    """What a body scans to with no cache: the reference the cached paths must equal."""
    segments, unscannable = extract_segments(body)
    return segments, scan_request(scanner, segments, unscannable)


@pytest.fixture(scope="module")
def plain() -> Scanner:
    return build_scanner(TERMS)


@pytest.fixture(scope="module")
def plain_other() -> Scanner:
    return build_scanner(OTHER_TERMS)
