"""Contact details: e-mail addresses, phone numbers, IPv6 addresses.

E-mail search starts from each ``@`` (found by the shared trigger pass) and
expands with bounded steps either side, so no input makes it quadratic.
Phone numbers are validated by ``phonenumbers`` but only for digit runs that
already have a plausible length and shape: its own matcher is ~1 ms per KB.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Iterator, Sequence
from functools import lru_cache

import phonenumbers

from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.numbers import iban_like, left_ok, right_ok
from hybridgate.scan.text import NEGATIVE, PHONE, Run, TextView
from hybridgate.scan.validators import isbn10_ok, isbn13_ok

_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_LOCAL_EXTRA = frozenset("!#$*^~")
#: Labels and TLDs may be internationalized (``bücher.de``, ``例え.テスト``) or punycode.
_DOMAIN = re.compile(
    r"(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.){1,8}(?:[^\W\d_]{2,24}|xn--[a-z0-9-]{1,59})(?![\w-])"
)


def _local_char(c: str) -> bool:
    """RFC 6531 local parts: ASCII atext, any letter or digit, combining marks."""
    if c in _LOCAL_CHARS:
        return True
    if c.isascii():
        return c in _LOCAL_EXTRA
    return c.isalnum() or unicodedata.category(c).startswith("M")


#: An ``@`` followed by a domain's first label and its dot: every ``@`` :data:`_DOMAIN`
#: can match after (a label is at most 63 characters, inside its 256-character bound).
_AT_DOMAIN = re.compile(r"@(?=[^\W_](?:[\w-]{0,61}[^\W_])?\.)")


def _ats(text: str) -> Iterator[int]:
    """Every ``@`` (the reference :class:`EmailDetector` walks)."""
    at = text.find("@")
    while at != -1:
        yield at
        at = text.find("@", at + 1)


class EmailDetector:
    name = "email"

    def detect(self, view: TextView, *, reference: bool = False) -> list[Finding]:
        """Addresses around each ``@`` with a domain after it: the regex engine skips the
        others (``a@a@a@...``) in C; ``reference=True`` expands around every ``@``."""
        out: list[Finding] = []
        text = view.text
        last = 0
        ats = _ats(text) if reference else (m.start() for m in _AT_DOMAIN.finditer(text))
        for at in ats:
            if at < last:
                continue
            s = at
            floor = max(last, at - 64)
            while s > floor and _local_char(text[s - 1]):
                s -= 1
            while s < at and not (text[s].isalnum() or text[s] in "_%+-"):
                s += 1
            if s == at or text[at - 1] == ".":
                continue
            m = _DOMAIN.match(text, at + 1, at + 1 + 256)
            if m is None:
                continue
            e = m.end()
            out.append(Finding("EMAIL_ADDRESS", DataClass.CONTACT, s, e, 0.95, self.name))
            last = e
        return out


_PHONE_SEP = re.compile(r"\)? ?[-.]? ?\(?")
_EXT = re.compile(r" ?(?:x|ext\.?|extension) ?\d{1,6}", re.IGNORECASE)


def _sep_ok(sep: str) -> bool:
    return bool(sep) and len(sep) <= 4 and _short_sep_ok(sep)


@lru_cache(maxsize=1024)
def _short_sep_ok(sep: str) -> bool:
    """A memo of a pure function over separators of at most 4 characters (a few
    hundred exist), so a hostile body's long separators are never held."""
    return ". " not in sep and _PHONE_SEP.fullmatch(sep) is not None


class _Budget:
    """Per-scan cap on full numbering-plan validations (~50 us each).

    A hostile megabyte of distinct phone-shaped numbers would otherwise take
    seconds; past the cap, numbers whose shape already passed the structural
    checks are reported without plan validation (more findings, never fewer).
    """

    __slots__ = ("cache", "left")

    def __init__(self, left: int) -> None:
        self.left = left
        self.cache: dict[tuple[str, bool, bool, bool], bool] = {}


class PhoneDetector:
    """Phone numbers in international (``+44 20 ...``) and national formats.

    Region choice follows how numbers are written: ``+`` means international;
    a leading ``0`` is a trunk prefix, so only regions that dial one are
    tried; otherwise only regions without one (the NANP) are tried. This keeps
    10-digit timestamps and counters from parsing as German mobile numbers.
    """

    name = "phone"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True
    validation_budget = 2000

    def __init__(self, regions: Sequence[str]) -> None:
        trunk0: list[str] = []
        other: list[str] = []
        for region in regions:
            meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
            if meta is None:
                raise ValueError(f"unknown phone region {region!r}")
            (trunk0 if meta.national_prefix == "0" else other).append(region)
        self._trunk0 = tuple(trunk0)
        self._trunk0_cc = tuple((r, phonenumbers.country_code_for_region(r)) for r in trunk0)
        if "US" in other and "CA" not in other:
            other.append("CA")  # one numbering plan; Canadian numbers are common in US text
        self._other_cc = tuple((r, phonenumbers.country_code_for_region(r)) for r in other)

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        budget = _Budget(self.validation_budget)
        for run in view.runs:
            # 8+ digits in at most 7 groups with at most 2 of one digit: some
            # group has two digits in a row, or no phone number fits the run.
            # Fewer than 10 digits only make a number written as international.
            count = run.digit_count
            if count < 8 or (count < 10 and not run.marked_international()):
                continue
            if run.holds("00"):
                out.extend(self._run(view, run, budget))
        return out

    def _run(
        self, view: TextView, run: Run, budget: _Budget, *, reference: bool = False
    ) -> list[Finding]:
        """Numbers in one digit run. ``reference=True`` walks every separator and every
        start group (what the fast split and :func:`_phone_starts` must equal)."""
        groups, seps = run.groups, run.seps
        out: list[Finding] = []
        if iban_like(view.text, view.shape, run) or _card_shaped(run):
            return out
        if not reference:
            # A single space always joins a number; only other separators are tested.
            cuts = [k for k, x in enumerate(seps) if x != " " and not _sep_ok(x)]
            seg_start = 0
            for k in [*cuts, len(groups) - 1]:
                out.extend(self._segment_fast(view, run, seg_start, k, budget))
                seg_start = k + 1
            return out
        # Split the run into segments joined only by phone-like separators.
        seg_start = 0
        for k in range(len(groups)):
            last = k == len(groups) - 1
            if last or not _sep_ok(seps[k]):
                out.extend(self._segment(view, run, seg_start, k, budget))
                seg_start = k + 1
        return out

    def _segment_fast(
        self, view: TextView, run: Run, i: int, j: int, budget: _Budget
    ) -> list[Finding]:
        """:meth:`_segment` trying only the starts :func:`_phone_starts` finds.

        Every other start yields no end there, and a start that yields none
        only moves the walk on, so the numbers found are the same.
        """
        text, shape = view.text, view.shape
        groups, seps = run.groups, run.seps
        if shape.count("0", groups[i][0], groups[j][1]) < 8:
            return []
        out: list[Finding] = []
        # National shapes already validated, by their text: a number that failed
        # validation fails again wherever it is written the same way.
        keys: dict[str, tuple[str, bool, bool, bool]] = {}
        a = i  # the first start the walk may still try
        for k, end in _phone_starts(text, run, i, j):
            if k < a or (k != i and seps[k - 1] != " "):
                continue  # inside a number found, or a start the walk never tries
            if end >= 0:
                shown = text[groups[k][0] : end]
                key = keys.get(shown)
                if key is not None and budget.cache.get(key) is False:
                    continue  # what _candidate would find first
                hit = _national_end(text, run, j, k, end)
                if hit is not None:
                    b, digits = hit
                    keys[shown] = _validation_key(groups, k, b, digits, plus=False)
                    found = self._candidate(view, text, shape, run, k, b, budget, digits)
                    if found is not None:
                        out.append(found)
                        a = b + 1
                continue
            gs = groups[k][0]
            intl = (gs > 0 and text[gs - 1] in "+(") or (gs > 1 and text[gs - 2] == "+")
            b = self._longest(view, run, k, _ends(text, run, j, k, intl), budget, out)
            if b >= 0:
                a = b + 1
        return out

    def _longest(
        self, view: TextView, run: Run, a: int, ends: list[int], budget: _Budget, out: list[Finding]
    ) -> int:
        """The longest number from group ``a`` to one of ``ends``: added to ``out``,
        its last group returned (-1 when none is valid)."""
        for b in reversed(ends):
            found = self._candidate(view, view.text, view.shape, run, a, b, budget)
            if found is not None:
                out.append(found)
                return b
        return -1

    def _segment(self, view: TextView, run: Run, i: int, j: int, budget: _Budget) -> list[Finding]:
        """Longest valid number from each start; starts and ends sit at plain spaces.

        Each start only looks ahead while the digit count stays <= 15, so the
        work is linear in the run length even for hostile runs.
        """
        text = view.text
        groups, seps = run.groups, run.seps
        if sum(e - s for s, e in groups[i : j + 1]) < 8:
            return []
        out: list[Finding] = []
        a = i
        while a <= j:
            gs = groups[a][0]
            intl = (gs > 0 and text[gs - 1] in "+(") or (gs > 1 and text[gs - 2] == "+")
            b = self._longest(view, run, a, _ends(text, run, j, a, intl), budget, out)
            if b >= 0:
                a = b + 1
            else:
                a += 1
                while a <= j and seps[a - 1] != " ":
                    a += 1
        return out

    def _candidate(
        self,
        view: TextView,
        text: str,
        shape: str,
        run: Run,
        a: int,
        b: int,
        budget: _Budget,
        digits: str = "",
    ) -> Finding | None:
        """Groups ``a``..``b`` as a phone number, or None (``digits``: theirs, if known)."""
        groups, seps = run.groups, run.seps
        digits = digits or run.digits(text, a, b)
        if not 8 <= len(digits) <= 15:
            return None
        s, e = groups[a][0], groups[b][1]
        plus = False
        if s > 0 and shape[s - 1] == "(":
            s -= 1
        if s > 0 and text[s - 1] == "+":
            s -= 1
            plus = True
        elif s > 1 and text[s - 2 : s] == "+ ":
            s -= 2
            plus = True
        n_groups = b - a + 1
        key = _validation_key(groups, a, b, digits, plus)
        nanp_grouped = key[2]
        if not plus and budget.cache.get(key) is False:
            return None  # the same digits, written alike, already failed validation
        if e < len(text) and text[e] == ")":
            e += 1
        if not left_ok(shape, s if not plus else s + 1):
            return None
        ext = _EXT.match(text, e)
        if ext is not None:
            e = ext.end()
        if not right_ok(shape, e):
            return None
        inner = seps[a:b]
        if not plus:
            if n_groups == 1 and len(digits) > 10:
                return None  # a bare long number: ids, timestamps, tax numbers
            if n_groups == 4 and all(x == "." for x in inner):
                return None  # IPv4 shape
            sizes = [e2 - s2 for s2, e2 in run.groups[a : b + 1]]
            if n_groups == 3 and sizes == [3, 2, 4]:
                return None  # SSN shape
            if sizes[:3] in ([4, 2, 2], [2, 2, 4]) and inner[0] == inner[1] and inner[0] in "-./":
                return None  # a date, possibly followed by a time
            if isbn13_ok(digits) or (n_groups == 4 and inner[-1] == "-" and isbn10_ok(digits)):
                return None
        ctx = view.near(s, e, PHONE, before=32)
        sizes = [ge - gs for gs, ge in groups[a : b + 1]]
        # An order/invoice label silences a number that is not written as a phone;
        # ``+44 ...`` or ``(415) 555-2671`` after "Order 12:" is still a phone.
        written = plus or (sizes == [3, 3, 4]) or text[s] == "("
        if not ctx and not written and view.label_before(s) == NEGATIVE:
            return None
        valid = budget.cache.get(key)
        if valid is None:
            if budget.left > 0:
                budget.left -= 1
                valid = self._valid(text[s:e], digits, plus, nanp_grouped, n_groups > 1)
            else:
                valid = True  # past the budget: plausible shape is enough (fail closed)
            budget.cache[key] = valid
        if valid or (plus and ctx):
            # In a clear phone context an international number is a phone number
            # even when its country or area code is not (yet) assigned.
            conf = 0.9 if (plus or ctx or n_groups > 1) else 0.7
            return Finding("PHONE_NUMBER", DataClass.CONTACT, s, e, conf, self.name)
        return None

    def _valid(
        self, candidate: str, digits: str, plus: bool, nanp_grouped: bool, grouped: bool
    ) -> bool:
        """Validate against the numbering plans; the common paths skip ``parse`` (~30 us).

        A ``+`` number only needs a possible length for its country, and a
        NANP number written ``(AAA) EEE-NNNN`` only the plan's structural
        rules: the format itself is the evidence, and fictional ranges
        (555-01xx, 07700 900xxx) are still somebody's number in a prompt.
        Bare digit strings must be fully valid.
        """
        if plus:
            try:
                num = phonenumbers.parse(candidate, None)
            except phonenumbers.NumberParseException:
                return False
            return bool(phonenumbers.is_possible_number(num))
        if digits.startswith("00"):
            for region in self._trunk0:
                try:
                    num = phonenumbers.parse(candidate, region)
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.is_valid_number(num):
                    return True
            return False
        if digits[0] == "0":
            if len(digits) < 10:
                return False  # short trunk-prefixed strings parse as valid in some plans
            national = int(digits[1:])
            # Written in groups, a possible length is evidence enough (as for NANP).
            for region, cc in self._trunk0_cc:
                num = phonenumbers.PhoneNumber(country_code=cc, national_number=national)
                if grouped:
                    if phonenumbers.is_possible_number(num):
                        return True
                elif phonenumbers.is_valid_number_for_region(num, region):
                    return True
            return False
        for region, cc in self._other_cc:
            if cc == 1:
                # NANP: one plan across the US, Canada and the Caribbean.
                if len(digits) not in (10, 11) or (len(digits) == 11 and digits[0] != "1"):
                    continue
                nat = digits[-10:]
                if nat[0] in "01" or nat[3] in "01":
                    continue
                if nanp_grouped:
                    return True
                num = phonenumbers.PhoneNumber(country_code=1, national_number=int(nat))
                if phonenumbers.is_valid_number_for_region(num, region):
                    return True
                continue
            try:
                num = phonenumbers.parse(candidate, region)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number_for_region(num, region):
                return True
        return False


def _ends(text: str, run: Run, j: int, a: int, intl: bool) -> list[int]:
    """Groups a number starting at group ``a`` may end at (up to group ``j``), in order."""
    groups, seps = run.groups, run.seps
    width = 0
    singles = 0
    digits = ""
    ends: list[int] = []
    for b in range(a, min(j, a + 6) + 1):  # no plan writes more than 7 groups
        g0, g1 = groups[b]
        size = g1 - g0
        width += size
        singles += size == 1
        if width > 15 or singles > 2:
            break
        digits += text[g0:g1]
        if (b == j or seps[b] == " ") and width >= 8 and (intl or _nanp_or_trunk_shape(digits)):
            ends.append(b)
    return ends


#: Between two digits of one segment: nothing, or a separator of up to four characters.
_SEP = r"[^0-9]{0,4}"
#: Where a number may start, over the text: a group marked international (``+``/``(``
#: before it), a trunk ``0``, or the first digit of a national number's only shape,
#: 10 digits (11 after a leading 1) with the NANP's area and exchange digits 2-9.
_PHONE_START = re.compile(
    rf"(?<![0-9])(?:(?<=[+(])[0-9]|(?<=\+.)[0-9]|0"
    rf"|(?:1{_SEP})?[2-9]{_SEP}[0-9]{_SEP}[0-9]{_SEP}[2-9](?:{_SEP}[0-9]){{6}}(?![0-9]))"
)


def _phone_starts(text: str, run: Run, i: int, j: int) -> Iterator[tuple[int, int]]:
    """Groups ``i``..``j`` where a number can start, in order, with the end of the
    national number's digits (-1 for a start marked international or led by 0).

    Every start :func:`_ends` would give an end to is among them (a superset:
    :func:`_national_end` and :func:`_ends` still decide), found by one regex
    search per start rather than a Python step per group.
    """
    groups = run.groups
    pos, stop = groups[i][0], groups[j][1]
    while True:
        m = _PHONE_START.search(text, pos, stop)
        if m is None:
            return
        p = m.start()
        k = run.group_at(p, i)
        # The match is at a group's start (nothing before it is a digit).
        national = m.end() - p > 1
        yield k, (m.end() if national else -1)
        pos = groups[k][1]


def _national_end(text: str, run: Run, j: int, a: int, end: int) -> tuple[int, str] | None:
    """:func:`_ends` for a start whose national shape ends at ``end`` (not marked
    international, not led by 0): the one group that can end it, if the walk admits
    it, with the number's digits."""
    groups, seps = run.groups, run.seps
    b = run.group_at(end, a) - 1  # the group holding the shape's last digit
    if b > j or b - a > 6 or groups[b][1] != end or (b != j and seps[b] != " "):
        return None
    if b - a >= 2 and sum([g1 - g0 == 1 for g0, g1 in groups[a : b + 1]]) > 2:
        return None
    digits = run.digits(text, a, b)
    return (b, digits) if _nanp_or_trunk_shape(digits) else None


def _validation_key(
    groups: Sequence[tuple[int, int]], a: int, b: int, digits: str, plus: bool
) -> tuple[str, bool, bool, bool]:
    """What a validation of groups ``a``..``b`` depends on: the digits, ``+``,
    NANP grouping (``... 555-2671``: 3 then 4 digits last) and grouping at all."""
    nanp_grouped = (
        b > a and groups[b][1] - groups[b][0] == 4 and groups[b - 1][1] - groups[b - 1][0] == 3
    )
    return digits, plus, nanp_grouped, b > a


def _card_shaped(run: Run) -> bool:
    """``dddd dddd dddd dddd``: printed like a card (valid or not), never read as a phone."""
    sizes = [e - s for s, e in run.groups[:4]]
    return len(sizes) >= 4 and all(x == 4 for x in sizes[:4]) and len(set(run.seps[:3])) == 1


def _nanp_or_trunk_shape(digits: str) -> bool:
    """Cheap necessary condition for a national number: NANP structure or a trunk 0."""
    if digits[0] == "0":
        return len(digits) >= 10
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] not in "01" and digits[3] not in "01"


_IPV6 = re.compile(r":(?:[0A]{0,4}:){1,6}[0A]{0,4}")
_HEX = frozenset("0123456789abcdefABCDEF")


class Ipv6Detector:
    name = "ipv6_address"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, shape = view.text, view.shape
        for m in _IPV6.finditer(shape):
            s, e = m.span()
            k = s
            while k > 0 and s - k < 4 and text[k - 1] in _HEX:
                k -= 1
            s = k
            if s > 0 and (text[s - 1].isalnum() or text[s - 1] in ":_"):
                continue
            if e < len(text) and (text[e].isalnum() or text[e] in ":_"):
                continue
            value = text[s:e]
            groups = [g for g in value.split(":") if g]
            if len(groups) < 2 or max(len(g) for g in groups) < 3:
                continue  # "a::b"-like tokens are too weak; "::1" is not sensitive
            try:
                ipaddress.IPv6Address(value)
            except ValueError:
                continue
            out.append(Finding("IP_ADDRESS", DataClass.CONTACT, s, e, 0.9, self.name))
        return out
