"""Hostile inputs cost work in proportion to their size: counted, not timed.

Each hostile pattern is scanned at two sizes, ``n`` and ``4n`` characters;
the count of Python lines the scanner executes (every detector, the
normalizer, the decoders and the request-wide seams and sweep) must grow
about four-fold. A quadratic step would grow it sixteen-fold. The regex
calls in between are literal-led or bounded per call, so they are linear in
what they read; the Python around them is what this counts.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner, extract_segments, scan_request

#: One unit of each hostile pattern (repeated to the size under test).
HOSTILE = {
    "digits and spaces": "1 ",
    "digits and dots": "1.",
    "digit pairs": "12 ",
    "phone-shaped": "555 123 4567 ",
    "card-shaped": "4111 1111 1111 1111 ",
    "ssn-shaped": "536-22-1234 ",
    "zero-width between digits": "4\u200b",
    "soft hyphen between digits": "1\u00ad",
    "fullwidth digits": "\uff14\uff11 ",
    "HTML entities": "&#52;",
    "percent escapes": "%34",
    "\\u escapes": "\\u0034",
    "base64 runs": "NDExMSAxMTEx ",
    "one long base64 run": "QUJDREVGR0g",
    "e-mail-ish": "a@",
    "password=": "password=",
    "KEY=": "AB_KEY=x ",
    "Authorization: Basic": "Authorization: Basic ",
    "AKIA": "AKIA",
    "org term pieces": "Project  Blue-",
    "mixed prose": "The order 4111 ships to jane@example.com, call +1 415 555 2671. ",
}
SIZE = 3000
#: Fixed costs shrink the ratio below 4; a quadratic step would push it to 16.
MAX_RATIO = 4.6


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return build_scanner(ScannerConfig(terms=["Project Blue", "Falcon"]))


def _lines_run(fn: Callable[[], object]) -> int:
    """Python lines executed in hybridgate.scan while ``fn`` runs."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if "hybridgate/scan/" in frame.f_code.co_filename else None

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(old)
    return count


def _request(scanner: Scanner, text: str, unit: str) -> object:
    # A neighbouring message of fixed size, so seams and the sweep run too.
    body = {"messages": [{"role": "user", "content": text}, {"content": "and " + unit * 8}]}
    segments, unscannable = extract_segments(body)
    return scan_request(scanner, segments, unscannable)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_input_work_grows_linearly(scanner: Scanner, name: str) -> None:
    unit = HOSTILE[name]

    def text(n: int) -> str:
        return unit * (n // len(unit))

    small = _lines_run(lambda: _request(scanner, text(SIZE), unit))
    large = _lines_run(lambda: _request(scanner, text(4 * SIZE), unit))
    assert small > 0
    assert large / small <= MAX_RATIO, f"{name}: {small} -> {large} lines ({large / small:.1f}x)"
