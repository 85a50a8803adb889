from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridgate.scan import Scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


@pytest.mark.parametrize(
    "card",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4222222222222",  # 13-digit Visa
        "4000 0566 5566 5556 007",  # 19-digit Visa, 4-4-4-4-3
        "5555 5555 5555 4444",
        "2223 0031 2200 3222",  # Mastercard 2-series
        "3782 822463 10005",  # Amex 4-6-5
        "3782-822463-10005",
        "6011 1111 1111 1117",
        "3530 1113 3330 0000",  # JCB
        "3056 930902 5904",  # Diners 4-6-4
        "6200000000000005",  # UnionPay
        "6759 6498 2648",  # Maestro 12
    ],
)
def test_cards_found(scanner: Scanner, card: str, found: Found) -> None:
    text = f"Please charge {card} for the renewal."
    assert found(scanner, text) == [("CREDIT_CARD", card)]


def test_card_followed_by_expiry(scanner: Scanner, found: Found) -> None:
    assert ("CREDIT_CARD", "4111 1111 1111 1111") in found(
        scanner, "card 4111 1111 1111 1111 12 25 cvv 123"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Card 4111 1111 1111 1112 was declined.",  # Luhn-invalid
        "Number 9111 1111 1111 1111 is not an issuer prefix.",
        "Order #4111111111111111 has shipped.",  # order label, no card context
        "Tracking number 4111111111111111 arrives Monday.",
        "id 550e8400-e29b-41d4-a716-446655440000",
        "build 12345678-4111-1111-1111-111111111111-x",
        "ISBN 978-0-306-40615-7 is a book.",
        "ts 1700000000000 ms",
        "amount 41111111111111110000 in the ledger",  # 20 digits
        "4111 1111-1111 1111 mixes separators",
    ],
)
def test_card_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "CREDIT_CARD" not in types(scanner, text)


def test_order_label_does_not_hide_a_labelled_card(scanner: Scanner, types: Types) -> None:
    assert "CREDIT_CARD" in types(scanner, "order paid by visa card 4111111111111111")


@pytest.mark.parametrize(
    "iban",
    [
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "DE89 3704 0044 0532 0130 00",
        "de89370400440532013000",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ],
)
def test_iban_found(scanner: Scanner, iban: str, found: Found) -> None:
    assert found(scanner, f"Send it to {iban} today") == [("IBAN_CODE", iban)]


@pytest.mark.parametrize(
    "text",
    [
        "IBAN GB83WEST12345698765432 bounced",  # wrong check digits
        "IBAN GB82WEST1234569876543 short",  # wrong length
        "code XX82WEST12345698765432",  # unknown country
        "ref ABGB83WEST12345698765432",  # glued to letters, wrong check digits
    ],
)
def test_iban_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "IBAN_CODE" not in types(scanner, text)


def test_iban_glued_to_letters_counts_when_the_checksum_confirms(
    scanner: Scanner, found: Found
) -> None:
    assert found(scanner, "ref ABGB82WEST12345698765432") == [
        ("IBAN_CODE", "GB82WEST12345698765432")
    ]


def test_aba_routing(scanner: Scanner, found: Found, types: Types) -> None:
    assert found(scanner, "routing number 021000021, account 12345") == [
        ("US_BANK_ROUTING", "021000021")
    ]
    assert "US_BANK_ROUTING" not in types(scanner, "routing number 021000022")
    # Without a routing label a 9-digit number is not claimed as ABA.
    assert "US_BANK_ROUTING" not in types(scanner, "invoice 021000021 paid")


@pytest.mark.parametrize(
    "text",
    [
        "IBAN GB11 IUVS 4433 2509 4551 73 bounced.",
        "IBAN NL96 UBJQ 6828 2533 19 bounced.",
        "IBAN IT66 W858 6942 5492 9896 8079 394 bounced.",
        "IBAN PL12 4111 1111 1111 1111 0000 0000 bounced.",
    ],
)
def test_mistyped_iban_groups_are_not_cards_or_phones(
    scanner: Scanner, text: str, types: Types
) -> None:
    assert types(scanner, text) == set()
