from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import DataClass, IdSpec, Scanner, build_scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("SSN 536-22-4817 on file", "536-22-4817"),
        ("ssn: 536 22 4817", "536 22 4817"),
        ("social security number 536224817", "536224817"),
    ],
)
def test_ssn_found(scanner: Scanner, text: str, value: str, found: Found) -> None:
    assert ("US_SSN", value) in found(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "SSN 000-12-3456",
        "SSN 666-12-3456",
        "SSN 912-34-5678",
        "SSN 123-00-4567",
        "SSN 123-45-0000",
        "SSN 078-05-1120",
        "id 536224817 in the table",  # bare 9 digits without SSN context
        "SSN 536-22 4817",  # mixed separators
    ],
)
def test_ssn_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "US_SSN" not in types(scanner, text)


def test_nhs(scanner: Scanner, found: Found, types: Types) -> None:
    assert found(scanner, "NHS number 943 476 5919.") == [("UK_NHS", "943 476 5919")]
    assert found(scanner, "nhs no: 9434765919") == [("UK_NHS", "9434765919")]
    assert "UK_NHS" not in types(scanner, "NHS number 943 476 5918")  # mod 11
    assert "UK_NHS" not in types(scanner, "ticket 943 476 5919")  # no NHS context


def test_nino(scanner: Scanner, found: Found, types: Types) -> None:
    assert found(scanner, "NI number AB 12 34 56 C") == [("UK_NINO", "AB 12 34 56 C")]
    assert found(scanner, "nino: AB123456C.") == [("UK_NINO", "AB123456C")]
    for bad in ("GB123456C", "AB123456E", "DA123456A", "XAB123456C"):
        assert "UK_NINO" not in types(scanner, f"value {bad} here"), bad


def test_pluggable_locale_validator(found: Found) -> None:
    def de_tax_id_ok(value: str) -> bool:  # toy rule for the test: digit sum divisible by 7
        return sum(map(int, value)) % 7 == 0

    spec = IdSpec(
        name="de_tax_id",
        type="DE_TAX_ID",
        data_class=DataClass.GOVERNMENT_ID,
        shape=r"00000000000",
        validate=de_tax_id_ok,
        context_words=("steuer-id", "steuernummer"),
        require_context="always",
    )
    sc = build_scanner(ScannerConfig(), id_specs=[spec])
    assert found(sc, "Steuer-ID 12345678913 bitte") == [("DE_TAX_ID", "12345678913")]
    assert found(sc, "Steuer-ID 12345678914 bitte") == []  # validator rejects
    assert found(sc, "Kunde 12345678913 bitte") == []  # context required


def test_ssn_needs_both_separators_or_none(scanner: Scanner, types: Types) -> None:
    assert "US_SSN" not in types(scanner, "The restaurant is at 17151 2450 Crown St")
