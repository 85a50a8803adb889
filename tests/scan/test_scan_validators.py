from __future__ import annotations

import pytest

from hybridgate.scan.validators import (
    aba_ok,
    card_network,
    card_ok,
    iban_ok,
    isbn10_ok,
    isbn13_ok,
    luhn_ok,
    nhs_ok,
    nino_ok,
    shannon_entropy,
    ssn_ok,
)


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
    assert luhn_ok("79927398713")


@pytest.mark.parametrize(
    ("number", "network"),
    [
        ("4111111111111111", "visa"),
        ("4222222222222", "visa"),
        ("4000056655665556123"[:19], "visa"),
        ("5555555555554444", "mastercard"),
        ("2223003122003222", "mastercard"),
        ("378282246310005", "amex"),
        ("6011111111111117", "discover"),
        ("3530111333300000", "jcb"),
        ("30569309025904", "diners"),
        ("6200000000000005", "unionpay"),
        ("213100000000000", "jcb"),
    ],
)
def test_card_network(number: str, network: str) -> None:
    assert card_network(number) == network


def test_card_rejects_wrong_length_prefix_and_constant() -> None:
    assert card_network("411111111111111") is None  # 15-digit Visa does not exist
    assert card_network("9111111111111111") is None
    assert not card_ok("4111111111111112")  # Luhn
    assert not card_ok("0000000000000000")


def test_iban() -> None:
    assert iban_ok("GB82WEST12345698765432")
    assert iban_ok("de89370400440532013000")
    assert not iban_ok("GB83WEST12345698765432")  # check digits
    assert not iban_ok("GB82WEST1234569876543")  # length for GB
    assert not iban_ok("XX82WEST12345698765432")  # country


def test_aba() -> None:
    assert aba_ok("021000021")
    assert aba_ok("011401533")
    assert not aba_ok("021000022")
    assert not aba_ok("991000021")  # prefix not a Federal Reserve district


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("536224817", True),
        ("000123456", False),
        ("666123456", False),
        ("912345678", False),
        ("123004567", False),
        ("123450000", False),
        ("078051120", False),
    ],
)
def test_ssn(value: str, ok: bool) -> None:
    assert ssn_ok(value) is ok


def test_nhs_and_nino() -> None:
    assert nhs_ok("9434765919")
    assert not nhs_ok("9434765918")
    assert nino_ok("AB123456C")
    assert not nino_ok("GB123456C")  # reserved prefix
    assert not nino_ok("DA123456C")  # D is never a first letter
    assert not nino_ok("AB123456E")  # suffix A-D only


def test_isbn_and_entropy() -> None:
    assert isbn13_ok("9780306406157")
    assert isbn10_ok("0306406152")
    assert not isbn13_ok("9780306406158")
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0
