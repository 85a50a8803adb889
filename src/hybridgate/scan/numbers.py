"""Detectors for validated numeric identifiers: cards, IBANs, national IDs, IPv4.

Candidates come from the shared shape string (see :mod:`hybridgate.scan.text`)
and must pass a checksum or allocation rule before they become findings.
National identifiers are described by :class:`IdSpec`, the pluggable seam
for adding locales: a shape pattern, a validator and optional context words.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.text import CARD, NEGATIVE, NHS, ROUTING, SSN, Run, TextView
from hybridgate.scan.validators import (
    IBAN_LENGTHS,
    aba_ok,
    card_grouping_ok,
    card_ok,
    iban_ok,
    nhs_ok,
    nino_ok,
    ssn_ok,
)

_ALNUM_RUN = re.compile(r"[0A]*")


def skip_glued(shape: str, start: int) -> int:
    """Next search position after a left-glued match: past the alphanumeric run."""
    return max(start + 1, _ALNUM_RUN.match(shape, start).end())  # type: ignore[union-attr]


def left_ok(shape: str, start: int) -> bool:
    """Nothing alphanumeric glued to the left (``-``/``.`` + alnum counts as glue)."""
    if start == 0:
        return True
    c = shape[start - 1]
    if c in "0A_" or c.isalnum():
        return False
    return not (c in "-." and start > 1 and shape[start - 2] in "0A")


def right_ok(shape: str, end: int) -> bool:
    if end >= len(shape):
        return True
    c = shape[end]
    if c in "0A_" or c.isalnum():
        return False
    return not (c in "-." and end + 1 < len(shape) and shape[end + 1] in "0A")


#: Over the shape text right before a run: "DE12 ABCD " or "IT60 X" - an IBAN in progress.
_IBAN_HEAD = re.compile(r"(?:^|[^0A])(AA00)(?: [A0]{4}){0,7} ?[A0]{0,3}$")


def iban_like(text: str, shape: str, run: Run) -> bool:
    """The run continues an IBAN-shaped token (``DE12 3456 ...``), checksum valid or not.

    Its inner groups must not be read as cards or phone numbers: a mistyped
    IBAN is still an IBAN-shaped account number, not a card.
    """
    s = run.start
    first = run.groups[0]
    if first[1] - first[0] == 2 and s >= 2 and shape[s - 2 : s] == "AA":
        return text[s - 2 : s].upper() in IBAN_LENGTHS and (s == 2 or not shape[s - 3].isalnum())
    lo = max(0, s - 48)
    m = _IBAN_HEAD.search(shape, lo, s)
    return m is not None and text[m.start(1) : m.start(1) + 2].upper() in IBAN_LENGTHS


_CARD_SEPS = frozenset(" -./_")
_HEX_CHARS = frozenset("0123456789abcdefABCDEF")


def _sep(sep: str) -> str:
    """A separator as the card rules see it: any run of up to 3 spaces is one space."""
    return " " if sep and len(sep) <= 3 and sep.strip() == "" else sep


def _in_hex_token(text: str, start: int, end: int) -> bool:
    """Digits glued into something that is not a word + card: a digest, a UUID
    piece, an account number with a letter inside (``IT60X5891...``)."""
    s, e = start, end
    while s > 0 and text[s - 1].isascii() and text[s - 1].isalnum():
        s -= 1
    while e < len(text) and text[e].isascii() and text[e].isalnum():
        e += 1
    token = text[s:e]
    if (s, e) == (start, end):
        return False
    if all(c in _HEX_CHARS for c in token):
        return True
    left = text[s:start]
    return any(c.isdigit() for c in left) or len(left) > 8


def card_left_ok(text: str, shape: str, start: int) -> bool:
    """Unglued, or glued only to letters (``ID4111...``): the checksum decides."""
    if left_ok(shape, start):
        return True
    c = text[start - 1]
    return c.isalpha() or (c in "-_:#" and start > 1 and text[start - 2].isalpha())


def card_right_ok(text: str, shape: str, end: int) -> bool:
    """Unglued, or followed by letters or a sentence end (``...1111.Thanks``)."""
    if right_ok(shape, end):
        return True
    c = text[end]
    return c.isalpha() or (c in ".,;:-_" and end + 1 < len(text) and text[end + 1].isalpha())


#: Where a printed card can start, over the shape: a group of exactly 4 digits, a
#: card separator, a group of 4 or 6, a separator and more digits (4-4-4..., 4-6-5);
#: or 12+ digits in one group. Led by a literal, so digit-dense text is searched in C.
_CARD_START = re.compile(r"0000(?:(?: {1,3}|[-./_])0000(?:00)?(?!0)(?: {1,3}|[-./_])0|0{8})")
#: A stretch of groups of one or two digits, each separator one character or up to
#: three spaces (what :meth:`CardDetector._spaced` reads as one spelled-out number).
_SMALL_STRETCH = re.compile(r"(?<!0)00?(?!0)(?:(?: {1,3}|[-./()+_])00?(?!0))*+")


def _card_starts(shape: str, run: Run) -> Iterator[int]:
    """Indexes of the run's groups where :data:`_CARD_START` matches, in order.

    Every other group starts nothing :func:`card_grouping_ok` admits with 12+
    digits, so a run of phone-shaped or short groups costs one search, not a
    Python step per group.
    """
    groups = run.groups
    pos, end = run.start, run.end
    while True:
        m = _CARD_START.search(shape, pos, end)
        if m is None:
            return
        p = m.start()
        k = run.group_at(p)
        if k < len(groups) and groups[k][0] == p:
            yield k
        # Later starts lie in later groups: go on from the end of this one.
        pos = _GROUP_END.match(shape, p).end()  # type: ignore[union-attr]


_GROUP_END = re.compile(r"0*")


class CardDetector:
    """Payment cards: issuer prefix + length + Luhn, however the groups are written.

    Works on digit runs: every start group that is not glued to a previous
    group by a dash is tried with the longest valid extension, so a card
    followed by an expiry date (``4111 1111 1111 1111 12 25``) is still found.
    Groups may be joined by one kind of separator (space, ``-``, ``.``,
    ``/``, ``_``); a card glued to letters counts when prefix and Luhn
    confirm it, unless it sits inside a hex token; digits written one or two
    at a time (``4 1 1 1 ...``) are read as the number they spell.
    """

    name = "credit_card"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, shape = view.text, view.shape
        for run in view.runs:
            if run.digit_count < 12:
                continue  # every card has 12+ digits
            # A printed card starts with a group of 4 digits or is one group of
            # 12+; a run without 4 digits in a row can only spell one digit by digit.
            found = self._run(view, text, shape, run) if run.holds("0000") else []
            if not found:
                found = self._spaced(view, text, shape, run)
            out.extend(found)
        return out

    def _accept(self, view: TextView, start: int, end: int) -> Finding | None:
        card_ctx = view.near(start, end, CARD, before=48, after=24)
        if view.label_before(start) == NEGATIVE and not card_ctx:
            return None
        conf = 0.99 if card_ctx else 0.9
        return Finding("CREDIT_CARD", DataClass.FINANCIAL, start, end, conf, self.name)

    def _run(
        self, view: TextView, text: str, shape: str, run: Run, *, reference: bool = False
    ) -> list[Finding]:
        """Cards printed in the run's groups, tried from each group a card can start at.

        ``reference=True`` tries every group (what the start search must equal).
        """
        out: list[Finding] = []
        starts: Iterable[int]
        if reference:
            starts = range(len(run.groups))
        else:
            starts = list(_card_starts(shape, run))
            if not starts:
                return out  # before the run's groups and separators are split out
        groups = run.groups
        seps = [x if len(x) == 1 else _sep(x) for x in run.seps]
        if iban_like(text, shape, run):
            return out
        nxt = 0
        for i in starts:
            if i < nxt:
                continue
            if (i == 0 and not card_left_ok(text, shape, groups[0][0])) or (
                i > 0 and seps[i - 1] in ("-", ".")
            ):
                continue
            best: int | None = None
            digits = ""
            lens: list[int] = []
            sep0: str | None = None
            for j in range(i, len(groups)):
                if j > i:
                    sep = seps[j - 1]
                    if sep not in _CARD_SEPS or (sep0 is not None and sep != sep0):
                        break
                    # Inner groups of a printed card are 4 wide (6 for Amex/Diners).
                    prev = lens[-1]
                    if prev != 4 and not (prev == 6 and j - 1 == i + 1):
                        break
                    sep0 = sep
                gs, ge = groups[j]
                digits += text[gs:ge]
                lens.append(ge - gs)
                if len(digits) > 19:
                    break
                # A card does not end inside a longer dash/dot-joined run (UUIDs,
                # dashed ids) or one that goes on with its own separator.
                end_ok = (
                    card_right_ok(text, shape, ge)
                    if j == len(groups) - 1
                    else seps[j] not in ("-", ".") and (seps[j] != sep0 or sep0 == " ")
                )
                if len(digits) >= 12 and end_ok and card_grouping_ok(lens) and card_ok(digits):
                    best = j
            if best is None:
                continue
            nxt = best + 1
            start, end = groups[i][0], groups[best][1]
            glued = not left_ok(shape, start) or not right_ok(shape, end)
            if glued and _in_hex_token(text, start, end):
                continue
            found = self._accept(view, start, end)
            if found is not None:
                out.append(found)
        return out

    def _spaced(
        self, view: TextView, text: str, shape: str, run: Run, *, reference: bool = False
    ) -> list[Finding]:
        """Digits one or two at a time with one kind of separator: ``4 1 1 1 ...``.

        Only a stretch of small groups holding 12 to 24 digits can spell one
        card (and perhaps an expiry); longer stretches are digit noise, so
        the work stays linear in the run.
        """
        if not reference:
            return self._spaced_fast(view, text, shape, run)
        groups, seps = run.groups, run.seps
        if len(groups) < 7 or iban_like(text, shape, run):
            return []
        out: list[Finding] = []
        i = 0
        n = len(groups)
        while i < n:
            j = i
            count = 0
            while j < n and groups[j][1] - groups[j][0] <= 2:
                if j > i and len(_sep(seps[j - 1])) != 1:
                    break
                count += groups[j][1] - groups[j][0]
                j += 1
            if j == i:
                i += 1
                continue
            if 12 <= count <= 24:
                found = self._spaced_window(view, text, shape, groups[i:j])
                if found is not None:
                    out.append(found)
            i = j
        return out

    def _spaced_fast(self, view: TextView, text: str, shape: str, run: Run) -> list[Finding]:
        """:meth:`_spaced` with each stretch of small groups found by one regex match
        (:data:`_SMALL_STRETCH`), so a megabyte of ``1 1 1 ...`` is one C-level match
        whose 500,000 digits rule it out, not a Python step per group."""
        out: list[Finding] = []
        checked = False
        for m in _SMALL_STRETCH.finditer(shape, run.start, run.end):
            if not 12 <= shape.count("0", m.start(), m.end()) <= 24:
                continue
            if not checked:
                if len(run.groups) < 7 or iban_like(text, shape, run):
                    return []
                checked = True
            i, j = run.group_at(m.start()), run.group_at(m.end())
            found = self._spaced_window(view, text, shape, run.groups[i:j])
            if found is not None:
                out.append(found)
        return out

    def _spaced_window(
        self, view: TextView, text: str, shape: str, groups: tuple[tuple[int, int], ...]
    ) -> Finding | None:
        digits = ""
        best: int | None = None
        for j, (gs, ge) in enumerate(groups):
            digits += text[gs:ge]
            if len(digits) > 19:
                break
            if len(digits) >= 12 and card_ok(digits):
                best = j
        if best is None:
            return None
        start, end = groups[0][0], groups[best][1]
        if card_left_ok(text, shape, start) and card_right_ok(text, shape, end):
            return self._accept(view, start, end)
        return None


class IbanDetector:
    """IBANs, compact or in groups of four, upper or lower case: country length + mod-97.

    Groups may be joined by spaces (any run of up to three), ``-`` or ``.``,
    one kind per IBAN; glued to letters (``IBANDE89...``) counts when the
    checksum confirms it.
    """

    name = "iban"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True
    _prefix = re.compile(r"AA00")

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, shape = view.text, view.shape
        n = len(text)
        pos = 0
        while True:
            m = self._prefix.search(shape, pos)
            if m is None:
                break
            s = m.start()
            pos = s + 1
            length = IBAN_LENGTHS.get(text[s : s + 2].upper())
            if length is None:
                continue
            glued = not left_ok(shape, s)
            if glued and not (s > 0 and text[s - 1].isalpha()):
                continue
            chars: list[str] = []
            k = s
            sep: str | None = None
            while k < n and len(chars) < length:
                c = text[k]
                if c.isascii() and c.isalnum():
                    chars.append(c)
                    k += 1
                    continue
                if chars and len(chars) % 4 == 0 and c in " -.":
                    j = k + 1
                    if c == " ":
                        while j < n and j - k < 3 and text[j] == " ":
                            j += 1
                    if sep is None:
                        sep = c
                    if c != sep or j >= n or not (text[j].isascii() and text[j].isalnum()):
                        break
                    k = j
                    continue
                break
            if len(chars) != length:
                continue
            if not right_ok(shape, k) and not text[k].isalpha():
                continue
            if iban_ok("".join(chars)):
                out.append(Finding("IBAN_CODE", DataClass.FINANCIAL, s, k, 0.95, self.name))
                pos = k
        return out


@dataclass(frozen=True)
class IdSpec:
    """A national identifier format: the seam for adding locales.

    ``shape`` is a regex over the shape string (digits ``0``, ASCII letters
    ``A``); begin it with a literal so prose is skipped at substring-search
    speed. ``validate`` receives the value with separators removed.
    ``context`` names a keyword category; ``context_words`` adds keywords
    (they form a category named after ``name``).
    """

    name: str
    type: str
    data_class: DataClass
    shape: str
    validate: Callable[[str], bool]
    confidence: float = 0.85
    context_confidence: float = 0.95
    context: str | None = None
    context_words: tuple[str, ...] = ()
    #: "always": only with context; "bare": only unseparated values need it.
    require_context: str | None = None
    context_before: int = 48
    context_after: int = 24
    #: Allowed counts of separator characters (empty: any), e.g. (0, 2) for 123-45-6789.
    separators: tuple[int, ...] = ()
    #: Does an order/invoice label silence it: "any" form, or only the "bare" digits?
    negative_label: str = "any"
    #: True when every match of ``shape`` holds a digit: texts without one are skipped.
    digits_required: bool = False

    @property
    def category(self) -> str | None:
        return self.context or (self.name if self.context_words else None)


class IdDetector:
    def __init__(self, spec: IdSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.digits_required = spec.digits_required
        self._re = re.compile(spec.shape)

    def detect(self, view: TextView) -> list[Finding]:
        spec = self.spec
        out: list[Finding] = []
        text, shape = view.text, view.shape
        cat = spec.category
        always = spec.require_context == "always"
        if always and (cat is None or not view.keyword_hits(cat)):
            return out  # it needs a label nearby and the text has none anywhere
        pos = 0
        while True:
            m = self._re.search(shape, pos)
            if m is None:
                break
            s, e = m.span()
            if not left_ok(shape, s):
                pos = skip_glued(shape, s)
                continue
            if not right_ok(shape, e):
                pos = s + 1
                continue
            pos = e
            raw = text[s:e]
            compact = "".join(c for c in raw if c.isalnum())
            seps = {c for c in raw if not c.isalnum()}
            if spec.separators and len(raw) - len(compact) not in spec.separators:
                continue  # "17151 2450" is not "171-51-2450"
            if len(seps) > 1:
                continue
            ctx = cat is not None and view.near(
                s, e, cat, before=spec.context_before, after=spec.context_after
            )
            needs = always or (spec.require_context == "bare" and not seps)
            if (needs and not ctx) or not spec.validate(compact):
                continue  # the context test first: it is a bisection, the checksum is not
            exempt = spec.negative_label == "any" or not seps
            if not ctx and exempt and view.label_before(s) == NEGATIVE:
                continue
            conf = spec.context_confidence if ctx else spec.confidence
            out.append(Finding(spec.type, spec.data_class, s, e, conf, self.name))
        return out


class NinoDetector:
    """UK National Insurance numbers (``AB 12 34 56 C``), found from their digits."""

    name = "uk_nino"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True
    _digits = re.compile(r"00 ?00 ?00 ?A")

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, shape = view.text, view.shape
        for m in self._digits.finditer(shape):
            d, e = m.span()
            if shape[d - 2 : d] == "AA":
                s = d - 2
            elif shape[d - 3 : d] == "AA ":
                s = d - 3
            else:
                continue
            if not (left_ok(shape, s) and right_ok(shape, e)):
                continue
            raw = text[s:e]
            if raw.count(" ") not in (0, 4) or not nino_ok(raw.replace(" ", "")):
                continue
            conf = 0.95 if view.near(s, e, "nino") else 0.85
            out.append(Finding("UK_NINO", DataClass.GOVERNMENT_ID, s, e, conf, self.name))
        return out


#: Alphanumeric runs joined by single dots, over the shape string.
_DOT_CHAIN = re.compile(r"[0A]*(?:\.[0A]+)*")


class Ipv4Detector:
    name = "ip_address"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True
    # ``00?0?`` is ``0{1,3}`` led by a literal, which the engine searches for fast
    _re = re.compile(r"00?0?\.00?0?\.00?0?\.00?0?")

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, shape = view.text, view.shape
        pos = 0
        while True:
            m = self._re.search(shape, pos)
            if m is None:
                break
            s, e = m.span()
            if not left_ok(shape, s):
                # Every later start in this dotted chain is glued too ("1.1.1.1.1").
                pos = max(s + 1, _DOT_CHAIN.match(shape, s).end())  # type: ignore[union-attr]
                continue
            if not right_ok(shape, e):
                pos = s + 1
                continue
            pos = e
            parts = text[s:e].split(".")
            if all(int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts):
                out.append(Finding("IP_ADDRESS", DataClass.CONTACT, s, e, 0.9, self.name))
        return out


def default_id_specs() -> list[IdSpec]:
    """The built-in national/bank identifiers. Locales add more :class:`IdSpec`s."""
    return [
        IdSpec(
            name="us_ssn",
            type="US_SSN",
            data_class=DataClass.GOVERNMENT_ID,
            shape=r"000[-. ]?00[-. ]?0000",
            validate=ssn_ok,
            confidence=0.85,
            context=SSN,
            require_context="bare",
            separators=(0, 2),
            negative_label="bare",
            digits_required=True,
        ),
        IdSpec(
            name="uk_nhs",
            type="UK_NHS",
            data_class=DataClass.GOVERNMENT_ID,
            shape=r"000[- ]?000[- ]?0000",
            validate=nhs_ok,
            confidence=0.9,
            context=NHS,
            require_context="always",
            separators=(0, 2),
            digits_required=True,
        ),
        IdSpec(
            name="us_bank_routing",
            type="US_BANK_ROUTING",
            data_class=DataClass.FINANCIAL,
            shape=r"000000000",
            validate=aba_ok,
            confidence=0.9,
            context=ROUTING,
            require_context="always",
            context_before=64,
            digits_required=True,
        ),
    ]
