"""Checksums and structural rules that turn "looks like" into "is".

Pattern matching alone flags every 16-digit order number as a card. The
validators here encode what issuers and registries actually guarantee
(Luhn, mod-97, mod-11, ABA weights, SSN allocation rules), so near-misses
are rejected without needing context words. All functions are pure and take
the matched text with separators already removed unless stated otherwise.
"""

from __future__ import annotations

import math
from collections import Counter
from types import MappingProxyType

# ---------------------------------------------------------------- payment cards

#: (prefix range low, high, prefix width, allowed lengths) per network.
_CARD_RANGES: tuple[tuple[int, int, int, frozenset[int], str], ...] = (
    (4, 4, 1, frozenset({13, 16, 19}), "visa"),
    (51, 55, 2, frozenset({16}), "mastercard"),
    (2221, 2720, 4, frozenset({16}), "mastercard"),
    (34, 34, 2, frozenset({15}), "amex"),
    (37, 37, 2, frozenset({15}), "amex"),
    (6011, 6011, 4, frozenset(range(16, 20)), "discover"),
    (644, 649, 3, frozenset(range(16, 20)), "discover"),
    (65, 65, 2, frozenset(range(16, 20)), "discover"),
    (300, 305, 3, frozenset(range(14, 20)), "diners"),
    (3095, 3095, 4, frozenset(range(14, 20)), "diners"),
    (36, 36, 2, frozenset(range(14, 20)), "diners"),
    (38, 39, 2, frozenset(range(14, 20)), "diners"),
    # JCB's assigned range is 3528-3589; the whole 35xx block is treated as JCB so
    # generator-made and legacy numbers still count (prefix + length + Luhn still apply).
    (3500, 3599, 4, frozenset(range(16, 20)), "jcb"),
    (1800, 1800, 4, frozenset({15}), "jcb"),
    (2131, 2131, 4, frozenset({15}), "jcb"),
    (62, 62, 2, frozenset(range(16, 20)), "unionpay"),
    (81, 82, 2, frozenset(range(16, 20)), "unionpay"),
    (2200, 2204, 4, frozenset(range(16, 20)), "mir"),
    (50, 50, 2, frozenset(range(12, 20)), "maestro"),
    (56, 69, 2, frozenset(range(12, 20)), "maestro"),
    (60, 60, 2, frozenset(range(16, 20)), "rupay"),
    (9792, 9792, 4, frozenset({16}), "troy"),
)


def luhn_ok(digits: str) -> bool:
    """Luhn mod-10 over an all-digit string."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i & 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_network(digits: str) -> str | None:
    """The network whose issuer prefix *and* length admit ``digits``, else None."""
    n = len(digits)
    if n < 12 or n > 19:
        return None
    for low, high, width, lengths, name in _CARD_RANGES:
        if n in lengths and low <= int(digits[:width]) <= high:
            return name
    return None


def card_ok(digits: str) -> bool:
    if not digits.isdigit() or card_network(digits) is None or not luhn_ok(digits):
        return False
    # A constant number is filler, not an account (well-known test cards still count).
    return len(set(digits)) > 1


def card_grouping_ok(groups: list[int]) -> bool:
    """Printed card groupings: contiguous, 4-4-4-4(-3), 4-6-5 / 4-6-4, 4-4-4(-x)."""
    if len(groups) == 1:
        return True
    if groups[0] != 4:
        return False
    if len(groups) == 3 and groups[1] == 6 and groups[2] in (4, 5):
        return True
    return all(g == 4 for g in groups[1:-1]) and 1 <= groups[-1] <= 4


# ------------------------------------------------------------------------ IBAN

IBAN_LENGTHS: MappingProxyType[str, int] = MappingProxyType(
    {
        "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
        "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
        "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
        "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
        "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
        "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
        "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
        "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
        "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
        "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
        "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
    }
)  # fmt: skip


def iban_ok(compact: str) -> bool:
    """ISO 13616: known country, that country's exact length, mod-97 == 1."""
    s = compact.upper()
    if len(s) < 15 or IBAN_LENGTHS.get(s[:2]) != len(s) or not s[2:4].isdigit():
        return False
    if not s.isascii() or not s.isalnum():
        return False
    rearranged = s[4:] + s[:4]
    num = "".join(str(int(c, 36)) for c in rearranged)
    return int(num) % 97 == 1


# ------------------------------------------------------------- US identifiers


def aba_ok(digits: str) -> bool:
    """ABA routing number: valid Federal Reserve prefix and the 3-7-1 weighted checksum."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    prefix = int(digits[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    if digits == "000000000":
        return False
    w = (3, 7, 1) * 3
    return sum(int(c) * k for c, k in zip(digits, w, strict=True)) % 10 == 0


def ssn_ok(digits: str) -> bool:
    """SSA allocation rules: area not 000/666/9xx, group not 00, serial not 0000."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    # Publicly burned numbers and constant/sequential test patterns.
    return digits not in ("078051120", "219099999", "123456789") and len(set(digits)) > 1


# ------------------------------------------------------------- UK identifiers


def nhs_ok(digits: str) -> bool:
    """NHS number: 10 digits, mod-11 check digit (10 is never issued)."""
    if len(digits) != 10 or not digits.isdigit() or len(set(digits)) == 1:
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


_NINO_BAD_FIRST = frozenset("DFIQUV")
_NINO_BAD_SECOND = frozenset("DFIQUVO")
_NINO_BAD_PREFIX = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_ok(compact: str) -> bool:
    """UK National Insurance number: HMRC prefix rules, six digits, suffix A-D."""
    s = compact.upper()
    if len(s) != 9 or not (s[:2].isalpha() and s[2:8].isdigit() and s[8] in "ABCD"):
        return False
    if s[0] in _NINO_BAD_FIRST or s[1] in _NINO_BAD_SECOND or s[:2] in _NINO_BAD_PREFIX:
        return False
    return s.isascii()


# ------------------------------------------------------------ near-miss tests


def isbn13_ok(digits: str) -> bool:
    if len(digits) != 13 or not digits.isdigit() or digits[:3] not in ("978", "979"):
        return False
    return sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(digits)) % 10 == 0


def isbn10_ok(chars: str) -> bool:
    if len(chars) != 10 or not chars[:9].isdigit() or not (chars[9].isdigit() or chars[9] in "Xx"):
        return False
    total = sum(int(d) * (10 - i) for i, d in enumerate(chars[:9]))
    total += 10 if chars[9] in "Xx" else int(chars[9])
    return total % 11 == 0


def shannon_entropy(value: str) -> float:
    """Bits per character of ``value``'s own character distribution."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def char_classes(value: str) -> int:
    lower = any(c.islower() for c in value)
    upper = any(c.isupper() for c in value)
    digit = any(c.isdigit() for c in value)
    other = any(not c.isalnum() for c in value)
    return lower + upper + digit + other
