from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("MRN: 00482913, admitted", "00482913"),
        ("Medical record number 4829133", "4829133"),
        ("patient id #MR-448812", "MR-448812"),
    ],
)
def test_mrn(scanner: Scanner, text: str, value: str, found: Found) -> None:
    assert ("MEDICAL_RECORD_NUMBER", value) in found(scanner, text)


def test_mrn_needs_label_and_digits(scanner: Scanner, types: Types) -> None:
    assert "MEDICAL_RECORD_NUMBER" not in types(scanner, "record 00482913 updated")
    assert "MEDICAL_RECORD_NUMBER" not in types(scanner, "MRN: pending")
    assert "MEDICAL_RECORD_NUMBER" not in types(scanner, "MRN 12")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("DOB: 03/14/1962", "03/14/1962"),
        ("date of birth 1962-03-14", "1962-03-14"),
        ("born on 14 March 1962 in Leeds", "14 March 1962"),
        ("D.O.B. Mar 14, 1962", "Mar 14, 1962"),
        ("Patient DOB: 14.03.1962", "14.03.1962"),
    ],
)
def test_dob(scanner: Scanner, text: str, value: str, found: Found) -> None:
    assert ("DATE_OF_BIRTH", value) in found(scanner, text)


@pytest.mark.parametrize(
    "text",
    ["Meeting on 03/14/2024 at noon", "DOB: 13/13/1962", "DOB unknown, 03/14/1962 was the visit"],
)
def test_dob_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "DATE_OF_BIRTH" not in types(scanner, text)


def test_terms_case_insensitive_on_word_boundaries(scanner: Scanner, found: Found) -> None:
    assert found(scanner, "Status of PROJECT FALCON?") == [("ORG_TERM", "PROJECT FALCON")]
    assert found(scanner, "bluebird's budget") == [("ORG_TERM", "bluebird")]
    assert found(scanner, "bluebirds and xbluebird") == []
    assert found(scanner, "channel #ops-secret now") == [("ORG_TERM", "#ops-secret")]


def test_terms_file_and_many_terms(tmp_path: object, found: Found) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "terms.txt"
    many = [f"codename-{i:05d}" for i in range(30000)]
    path.write_text("# deny-list\n\n" + "\n".join(many) + "\n", encoding="utf-8")
    sc = build_scanner(ScannerConfig(terms=["Nimbus"], terms_file=str(path)))
    text = "Compare Nimbus with codename-29999 and codename-12345x."
    assert found(sc, text) == [("ORG_TERM", "Nimbus"), ("ORG_TERM", "codename-29999")]


def test_term_inside_email_keeps_org_class(scanner: Scanner) -> None:
    res = scanner.scan("mail bluebird@example.com")
    assert [f.type for f in res.findings] == ["EMAIL_ADDRESS"]
    assert [c.value for c in res.findings[0].absorbed] == ["org_confidential"]
