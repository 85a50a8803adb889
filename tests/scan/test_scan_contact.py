from __future__ import annotations

from collections.abc import Callable

import pytest

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


@pytest.mark.parametrize(
    "addr",
    ["jane.doe@example.com", "li.wei+billing@corp.co.uk", "ops-team_1@mail.example.de"],
)
def test_email_found(scanner: Scanner, addr: str, found: Found) -> None:
    assert found(scanner, f"Write to <{addr}>.") == [("EMAIL_ADDRESS", addr)]


@pytest.mark.parametrize(
    "text",
    ["@decorator on a method", "user@localhost only", "a@b", "npm i @types/node", "x @ y.com"],
)
def test_email_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "EMAIL_ADDRESS" not in types(scanner, text)


@pytest.mark.parametrize(
    "number",
    [
        "(415) 555-2671",
        "415-555-2671",
        "+1 415 555 2671",
        "+1-984-182-0190",
        "905-674-3793",  # Canada, same numbering plan
        "020 7946 0958",
        "+44 20 7946 0958",
        "+447700 900123",
        "+49 30 1234567",
        "01 42 68 53 00",
        "+33 6 12 34 56 78",
        "03.93.92.16.85",
        "345-899-3560x4587",
        "+46 (0)8 928 571 38",
        "07700 063 966",
    ],
)
def test_phone_found(scanner: Scanner, number: str, found: Found) -> None:
    assert found(scanner, f"Call me on {number} tomorrow") == [("PHONE_NUMBER", number)]


@pytest.mark.parametrize(
    "text",
    [
        "timestamp 1700000000000",
        "epoch 1700000000",
        "order 4155552671 shipped",  # order label
        "ISBN 0-306-40615-2",
        "on 2024-01-15 at 10:30",
        "version 10.0.19045.3803",
        "call 555-0100",  # too short
        "sum 12345678",
        "SSN 536-22-4817",
        "Date: 2018-02-24 12:20:39",
    ],
)
def test_phone_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "PHONE_NUMBER" not in types(scanner, text)


def test_phone_regions_are_configurable(types: Types) -> None:
    us_only = build_scanner(ScannerConfig(phone_regions=["US"]))
    assert types(us_only, "ring 020 7946 0958") == set()
    assert types(us_only, "ring (415) 555-2671") == {"PHONE_NUMBER"}


@pytest.mark.parametrize(
    "addr", ["10.0.0.12", "192.168.1.254", "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567"]
)
def test_ip_found(scanner: Scanner, addr: str, found: Found) -> None:
    assert found(scanner, f"blocked {addr} at the edge") == [("IP_ADDRESS", addr)]


@pytest.mark.parametrize(
    "text",
    [
        "v1.2.3.4.5 released",
        "octets 256.1.1.1",
        "time 12:30:45 today",
        "std::vector<int>",
        "mac 00:1A:2B:3C:4D:5E",
        "padded 01.02.03.04",
    ],
)
def test_ip_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert "IP_ADDRESS" not in types(scanner, text)
