from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.errors import ConfigError
from hybridgate.scan import (
    DataClass,
    Finding,
    Scanner,
    build_scanner,
    builtin_detector_names,
    resolve_overlaps,
)

Found = Callable[[Scanner, str], list[tuple[str, str]]]


class Boom:
    name = "boom"

    def recognize(self, text: str) -> Iterable[Finding]:
        raise RuntimeError("model crashed")


class Names:
    name = "toy_ner"

    def recognize(self, text: str) -> Iterable[Finding]:
        i = text.find("Alice Smith")
        if i >= 0:
            yield Finding("PERSON", DataClass.PERSON, i, i + 11, 0.8, self.name)


class Liar:
    name = "liar"

    def recognize(self, text: str) -> Iterable[Finding]:
        yield Finding("PERSON", DataClass.PERSON, 0, len(text) + 5, 0.8, self.name)


def test_failing_detector_makes_result_unknown_but_keeps_findings() -> None:
    sc = build_scanner(ScannerConfig(), plugins=[Boom()])
    res = sc.scan("mail jane@example.com")
    assert not res.complete
    assert res.errors == ("boom: RuntimeError",)
    assert [f.type for f in res.findings] == ["EMAIL_ADDRESS"]


def test_plugin_findings_and_validation(found: Found) -> None:
    sc = build_scanner(ScannerConfig(), plugins=[Names()])
    assert found(sc, "Ask Alice Smith.") == [("PERSON", "Alice Smith")]
    bad = build_scanner(ScannerConfig(), plugins=[Liar()]).scan("hi")
    assert not bad.complete and bad.errors == ("liar: ValueError",)


def test_lone_surrogate_is_unknown_but_still_scanned(scanner: Scanner) -> None:
    res = scanner.scan("card 4111111111111111 \ud800 end")
    assert not res.complete
    assert "undecodable_input" in res.errors
    assert [f.type for f in res.findings] == ["CREDIT_CARD"]


def test_non_string_input_is_unknown(scanner: Scanner) -> None:
    res = scanner.scan(b"bytes")  # type: ignore[arg-type]
    assert not res.complete


def test_disabled_detectors_and_unknown_names(found: Found) -> None:
    sc = build_scanner(ScannerConfig(disabled=["email", "phone"]))
    assert "email" not in sc.detector_names
    assert found(sc, "jane@example.com (415) 555-2671") == []
    with pytest.raises(ConfigError, match="unknown detector"):
        build_scanner(ScannerConfig(disabled=["emial"]))
    with pytest.raises(ConfigError, match="phone_regions"):
        build_scanner(ScannerConfig(phone_regions=["XX"]))
    assert set(builtin_detector_names()) == set(build_scanner(ScannerConfig()).detector_names)


def test_overlap_resolution_is_deterministic() -> None:
    a = Finding("EMAIL_ADDRESS", DataClass.CONTACT, 0, 20, 0.95, "email")
    b = Finding("ORG_TERM", DataClass.ORG_CONFIDENTIAL, 5, 9, 1.0, "org_terms")
    c = Finding("PHONE_NUMBER", DataClass.CONTACT, 30, 40, 0.7, "phone")
    d = Finding("UK_NHS", DataClass.GOVERNMENT_ID, 30, 40, 0.95, "uk_nhs")
    for order in ([a, b, c, d], [d, c, b, a], [b, d, a, c]):
        out = resolve_overlaps(order)
        assert [f.type for f in out] == ["EMAIL_ADDRESS", "UK_NHS"]
        assert out[0].absorbed == (DataClass.ORG_CONFIDENTIAL,)
        assert out[1].absorbed == (DataClass.CONTACT,)


def test_scan_is_thread_safe(scanner: Scanner) -> None:
    texts = [f"user{i}@example.com paid with 4111 1111 1111 1111, ref {i}" for i in range(200)]
    expected = [scanner.scan(t) for t in texts]
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(scanner.scan, texts))
    assert got == expected


# ---------------------------------------------------------------- hostile input

ADVERSARIAL = [
    "a" * 1_000_000,
    "@" * 1_000_000,
    "a@" * 500_000,
    "a@" + "a." * 499_999,
    "1" * 1_000_000,
    "1 " * 500_000,
    "1-" * 500_000,
    "555 123 4567 " * 77_000,
    "AKIA" * 250_000,
    "eyJ" * 333_333,
    "eyJhbGciOiJIUzI1NiJ9." * 50_000,
    "-----BEGIN RSA PRIVATE KEY-----" * 30_000,
    "postgres://u:p@" * 60_000,
    "password=" * 100_000,
    "::" * 500_000,
    "1." * 500_000,
    "GB82" * 250_000,
    "AB 12 34 56 " * 80_000,
    "DOB: " * 200_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:16]))
def test_hostile_inputs_are_scanned_to_completion(scanner: Scanner, text: str) -> None:
    # A quarter of each (the suite's time matters); how long 256 KB and 1 MB
    # take, and that the cost is linear, is measured by benchmarks/scan_bench.py.
    res = scanner.scan(text[:250_000])
    assert res.complete


def test_one_megabyte_of_mixed_text_is_scanned_to_the_end(scanner: Scanner) -> None:
    rnd = random.Random(5)
    words = ["the", "order", "status", "4111", "call", "token", "@", "x", "2024-01-05", "id"]
    body = " ".join(rnd.choice(words) for _ in range(200_000))
    tail = " last card 4111 1111 1111 1111 and jane@example.com"
    text = body[: 1_000_000 - len(tail)] + tail
    res = scanner.scan(text)
    assert res.complete
    kinds = {(f.type, text[f.start : f.end]) for f in res.findings}
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in kinds
    assert ("EMAIL_ADDRESS", "jane@example.com") in kinds
