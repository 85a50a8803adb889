"""One cheap pass over the text that every detector then shares.

CPython's regex engine scans character classes at tens of nanoseconds per
character, but finds literal prefixes with a fast substring search. So the
scanner never runs dozens of class-led regexes over a prompt. Instead it
computes, once per text:

* a *shape* string of the same length: ASCII digits become ``0``, ASCII
  letters ``A``, everything else stays. Number-like and ID-like patterns are
  then written against the shape with literal prefixes (``000-00-0000``),
  so the engine can skip through prose at substring-search speed;
* the lower-cased text (same length, see :func:`lower_same_length`);
* every context keyword (``card``, ``order``, ``password``, ``dob`` ...) in
  one Aho-Corasick pass over the lower-cased text;
* every literal trigger (``AKIA``, ``ghp_``, ``://``, ``eyJ`` ...)
  in one Aho-Corasick pass over the original text.

A :class:`TextView` lives for exactly one ``scan`` call, so caching on it is
thread-safe; the :class:`Lexicon` it reads is built once and never mutated.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import ahocorasick

# Context keyword categories.
CARD = "card"
NEGATIVE = "negative"  # order / tracking / ISBN labels: near-miss numbers
SSN = "ssn"
ROUTING = "routing"
NHS = "nhs"
NINO = "nino"
PHONE = "phone"
SECRET_NAME = "secret_name"
MRN = "mrn"
DOB = "dob"
CONN = "conn"
SECRET_WEAK = "secret_weak"  # key-like names: need a high-entropy value (gitleaks generic-api-key)
AUTH = "auth"  # HTTP authorization schemes

#: keyword -> (category, whole word required)
KEYWORDS: Mapping[str, tuple[str, bool]] = MappingProxyType(
    {
        **{k: (CARD, True) for k in ("card", "credit", "debit", "visa", "mastercard", "amex",
                                     "american express", "cc", "ccn", "pan", "payment", "cvv",
                                     "expiry", "exp", "discover", "jcb", "maestro", "diners")},
        **{k: (NEGATIVE, True) for k in ("order", "order no", "order number", "tracking",
                                         "invoice", "isbn", "shipment", "parcel", "awb", "ref",
                                         "reference", "confirmation", "ticket", "transaction",
                                         "txn", "sku", "serial", "booking", "receipt", "po",
                                         "case", "waybill", "consignment")},
        **{k: (SSN, True) for k in ("ssn", "social security", "ss#", "ss no", "ssn#")},
        **{k: (ROUTING, True) for k in ("routing", "aba", "rtn", "transit number",
                                        "routing number", "bank routing")},
        **{k: (NHS, True) for k in ("nhs", "nhs no", "nhs number")},
        **{k: (NINO, True) for k in ("national insurance", "nino", "ni number")},
        **{k: (PHONE, True) for k in ("phone", "tel", "telephone", "mobile", "cell", "fax",
                                      "call", "whatsapp", "text me", "contact")},
        **{k: (SECRET_NAME, False) for k in ("password", "passwd", "passphrase", "secret",
                                             "token", "api_key", "apikey", "api-key",
                                             "access_key", "accesskey", "private_key",
                                             "credential", "auth_key", "authkey")},
        **{k: (SECRET_NAME, True) for k in ("pwd", "pass", "api key", "access key", "pw",
                                            "pin", "passcode", "kennwort", "passwort",
                                            "mot de passe", "contraseña")},
        **{k: (SECRET_WEAK, False) for k in ("key", "auth", "access", "creds", "api", "salt",
                                             "hmac", "signing", "private", "dsn", "cert",
                                             "client_id", "session")},
        **{k: (AUTH, True) for k in ("basic", "bearer", "authorization", "digest")},
        **{k: (MRN, True) for k in ("mrn", "medical record number", "medical record no",
                                    "medical record", "patient id", "patient no",
                                    "patient number", "patient #", "hospital number",
                                    "chart number")},
        **{k: (DOB, True) for k in ("dob", "d.o.b", "d.o.b.", "date of birth", "birth date",
                                    "birthdate", "born", "born on", "birthday")},
        **{k: (CONN, False) for k in ("server=", "data source=", "host=", "uid=", "user id=")},
    }
)  # fmt: skip

#: Case-sensitive literals some detector needs to see before it runs at all (e-mail
#: addresses are found by their own literal-led search for ``@``).
TRIGGERS_BASE: tuple[str, ...] = ("://", "eyJ", "-----BEGIN")

#: Digit runs over the shape string: a literal-led pattern, so prose is skipped fast.
_RUN = re.compile(r"0(?:[0 \-./()+_]*0)?")
_GROUP = re.compile(r"0+")
_SEPS = re.compile(r"([^0]+)")


def shape_table() -> dict[int, int]:
    """Digits -> '0', ASCII letters -> 'A'; everything else maps to itself."""
    table: dict[int, int] = {}
    for c in range(ord("0"), ord("9") + 1):
        table[c] = ord("0")
    for c in range(ord("a"), ord("z") + 1):
        table[c] = ord("A")
    for c in range(ord("A"), ord("Z") + 1):
        table[c] = ord("A")
    return table


def lower_same_length(text: str) -> str:
    """``text.lower()`` guaranteed to keep every offset.

    U+0130 (dotted capital I) is the only code point whose lower case is two
    characters; mapping it to ``i`` first keeps finding offsets valid.
    """
    if "\u0130" in text:
        text = text.replace("\u0130", "i")
    return text.lower()


def build_automaton(keys: Iterable[tuple[str, Any]]) -> Any:
    """A finished Aho-Corasick automaton, or None when there is nothing to find."""
    automaton = ahocorasick.Automaton()
    count = 0
    for key, value in keys:
        if key:
            automaton.add_word(key, value)
            count += 1
    if count == 0:
        return None
    automaton.make_automaton()
    return automaton


@dataclass(frozen=True)
class Lexicon:
    """Everything a :class:`TextView` needs, compiled once per scanner.

    Keywords (case-insensitive) and triggers (case-sensitive) share one
    automaton over the lower-cased text; a trigger hit is confirmed against
    the original text's case.
    """

    shape: Mapping[int, int]
    automaton: Any
    #: Lower-case words whose every position the pass records (the first words of
    #: org terms, see :class:`~hybridgate.scan.terms.TermDetector`).
    heads: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        extra_triggers: Iterable[str] = (),
        extra_keywords: Mapping[str, str] | None = None,
        heads: Iterable[str] = (),
    ) -> Lexicon:
        entries: dict[str, tuple[list[tuple[str, bool]], list[str]]] = {}
        keywords = dict(KEYWORDS)
        for word, cat in (extra_keywords or {}).items():
            keywords[word.lower()] = (cat, True)
        for word, (cat, whole) in keywords.items():
            entries.setdefault(word, ([], []))[0].append((cat, whole))
        for trig in {*TRIGGERS_BASE, *extra_triggers}:
            entries.setdefault(lower_same_length(trig), ([], []))[1].append(trig)
        head_set = frozenset(h for h in heads if h)
        for head in head_set:
            entries.setdefault(head, ([], []))
        auto = build_automaton(
            (k, (len(k), tuple(kws), tuple(trs), k if k in head_set else None))
            for k, (kws, trs) in entries.items()
        )
        return cls(shape=MappingProxyType(shape_table()), automaton=auto, heads=head_set)


class Run:
    """A run of digit groups joined by short separators, e.g. ``+1 (415) 555-2671``.

    The groups and separators are split out on first use: a detector whose
    quick test on the run's shape rules it out never pays for them (a hostile
    megabyte of ``1 1 1 ...`` is one run of half a million groups).
    """

    __slots__ = ("_digits", "_groups", "_seps", "_shape", "_starts", "end", "start")

    def __init__(self, start: int, end: int, shape: str) -> None:
        self.start = start
        self.end = end
        self._shape = shape
        self._groups: tuple[tuple[int, int], ...] | None = None
        self._seps: tuple[str, ...] | None = None
        self._digits = -1
        self._starts: list[int] | None = None

    @property
    def digit_count(self) -> int:
        """How many digits the run holds (one C-level count, no groups split out)."""
        if self._digits < 0:
            self._digits = self._shape.count("0", self.start, self.end)
        return self._digits

    def marked_international(self) -> bool:
        """A ``+`` or ``(`` in the run or just before it (``+44 ...``, ``(415) ...``)."""
        lo = max(0, self.start - 2)
        return (
            self._shape.find("+", lo, self.end) != -1 or self._shape.find("(", lo, self.end) != -1
        )

    @property
    def groups(self) -> tuple[tuple[int, int], ...]:
        """(start, end) of each group of digits, in order."""
        if self._groups is None:
            self._split()
        return self._groups  # type: ignore[return-value]

    def _split(self) -> None:
        """Groups and separators from one C-level split of the run's shape.

        The run starts and ends with a digit, so the split alternates group,
        separator, group ...; their lengths, summed up, are the boundaries (a
        hostile run holds half a million groups: no Python step per group).
        """
        parts = _SEPS.split(self._shape[self.start : self.end])
        bounds = list(itertools.accumulate(map(len, parts), initial=self.start))
        self._groups = tuple(zip(bounds[0::2], bounds[1::2], strict=True))
        self._seps = tuple(parts[1::2])

    def groups_reference(self) -> tuple[tuple[int, int], ...]:
        """The groups as regex spans (what :meth:`_split` must equal)."""
        return tuple(g.span() for g in _GROUP.finditer(self._shape, self.start, self.end))

    def group_at(self, pos: int, lo: int = 0) -> int:
        """Index of the first group starting at or after ``pos`` (a C bisection)."""
        if self._starts is None:
            self._starts = [s for s, _ in self.groups]
        return bisect.bisect_left(self._starts, pos, lo)

    @property
    def seps(self) -> tuple[str, ...]:
        """Separator text between group i and i+1."""
        if self._seps is None:
            self._split()
        return self._seps  # type: ignore[return-value]

    def holds(self, digits: str) -> bool:
        """Does the run's shape contain ``digits`` (e.g. ``"0000"``: a group of 4+ digits)?"""
        return self._shape.find(digits, self.start, self.end) != -1

    def digits(self, text: str, i: int = 0, j: int | None = None) -> str:
        j = len(self.groups) - 1 if j is None else j
        return "".join([text[s:e] for s, e in self.groups[i : j + 1]])


class TextView:
    """Per-call derived views of one text. Never shared between calls."""

    __slots__ = (
        "_by_cat",
        "_kw_cats",
        "_kw_ends",
        "_kw_starts",
        "_runs",
        "head_hits",
        "heads",
        "lower",
        "shape",
        "text",
        "triggers",
    )

    def __init__(self, text: str, lexicon: Lexicon) -> None:
        self.text = text
        self.shape: str = text.translate(lexicon.shape)
        self.lower = lower = lower_same_length(text)
        ends: list[int] = []
        starts: list[int] = []
        cats: list[str] = []
        found: dict[str, list[int]] = {}
        #: (start, word) of every head word of the lexicon, in text order of ends
        self.heads = lexicon.heads
        self.head_hits: list[tuple[int, str]] = []
        n = len(lower)
        for last, (length, kws, trs, head) in lexicon.automaton.iter(lower):
            start = last - length + 1
            if head is not None:
                self.head_hits.append((start, head))
            for trig in trs:
                if text.startswith(trig, start):
                    found.setdefault(trig, []).append(start)
            for cat, whole_word in kws:
                if whole_word and (
                    (start > 0 and lower[start - 1].isalnum())
                    or (last + 1 < n and lower[last + 1].isalnum())
                ):
                    continue
                ends.append(last + 1)
                starts.append(start)
                cats.append(cat)
        self._kw_ends = ends
        self._kw_starts = starts
        self._kw_cats = cats
        self.triggers = found
        self._runs: list[Run] | None = None
        self._by_cat: dict[str, list[tuple[int, int]]] | None = None

    def trigger(self, literal: str) -> list[int]:
        return self.triggers.get(literal, [])

    def keyword_hits(self, category: str) -> list[tuple[int, int]]:
        """(start, end) of every keyword of ``category``, in text order."""
        if self._by_cat is None:
            by_cat: dict[str, list[tuple[int, int]]] = {}
            for s, e, c in zip(self._kw_starts, self._kw_ends, self._kw_cats, strict=True):
                by_cat.setdefault(c, []).append((s, e))
            self._by_cat = by_cat
        return self._by_cat.get(category, [])

    def near(self, start: int, end: int, category: str, before: int = 40, after: int = 0) -> bool:
        """Is a ``category`` keyword within ``before`` chars before ``start`` (or after ``end``)?"""
        ends = self._kw_ends
        lo = bisect.bisect_left(ends, start - before)
        hi = bisect.bisect_right(ends, start)
        for i in range(lo, hi):
            if self._kw_cats[i] == category:
                return True
        if after:
            starts = self._kw_starts
            for i in range(hi, min(len(ends), hi + 8)):
                if end <= starts[i] <= end + after and self._kw_cats[i] == category:
                    return True
        return False

    def label_before(self, start: int, window: int = 24) -> str | None:
        """Category of the closest keyword ending within ``window`` chars before ``start``."""
        ends = self._kw_ends
        i = bisect.bisect_right(ends, start) - 1
        if i >= 0 and ends[i] >= start - window:
            return self._kw_cats[i]
        return None

    @property
    def runs(self) -> list[Run]:
        """Digit runs at least 8 characters long, computed once per text on first use."""
        if self._runs is None:
            shape = self.shape
            runs: list[Run] = []
            for m in _RUN.finditer(shape):
                s, e = m.span()
                if e - s < 8:
                    continue  # fewer than 8 digits: no card or phone number fits
                runs.append(Run(s, e, shape))
            self._runs = runs
        return self._runs
