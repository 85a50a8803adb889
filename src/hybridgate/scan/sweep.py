"""Masked once, masked everywhere: every value found anywhere, looked for in every text.

A value found in one segment (or across a seam) is sensitive wherever it
appears in the request, even where no detector would find it alone (a bare
number whose label is in another message). :func:`sweep` reads each text's
normalized, case-folded view for every known value, glued to letters or not,
and for numbers also the text's digit runs as bare digits.

The sweep is a pure function of the texts' analyses and of the values, so a
caller may compute it for a fixed run of texts once per set of values (the
scan cache does, for whole messages seen before).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ahocorasick

from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.scanner import Analysis
from hybridgate.scan.text import lower_same_length

#: Values shorter than this are looked for elsewhere only as whole words.
_SWEEP_BOUNDED_BELOW = 8
_SWEEP_MIN = 4
#: Up to this many values, each is looked for with ``str.find`` (memchr speed) rather
#: than one automaton pass (pyahocorasick reads 15-40 ns a character).
_FIND_VALUES = 24

#: A value to look for: its lower-cased text (or bare digits), type and class.
Value = tuple[str, str, DataClass]
Values = dict[str, tuple[str, DataClass]]
#: A text's analysis, and how many leading characters are its key context.
View = tuple[Analysis, int]
_Hit = tuple[int, int, str, DataClass]


def remember(out: list[Value], value: str, f: Finding) -> None:
    """The keys ``value`` (found as ``f``) is looked for under, appended to ``out``."""
    key = lower_same_length(value.strip())
    if len(key) >= _SWEEP_MIN:
        out.append((key, f.type, f.data_class))
    digits = _NOT_DIGIT.sub("", key) if key.isascii() else "".join(c for c in key if c.isdigit())
    if len(digits) >= 9 and len(digits) >= 0.6 * len(key):  # the number however it is grouped
        out.append((digits, f.type, f.data_class))


def collect(*found: Iterable[Value]) -> Values:
    """The values to sweep for, the first finding of each value naming its type."""
    values: Values = {}
    for run in found:
        for key, type_, cls in run:
            values.setdefault(key, (type_, cls))
    return values


def _sweep_automaton(values: Values) -> Any:
    automaton = ahocorasick.Automaton()
    for value, (type_, cls) in values.items():
        automaton.add_word(value, (len(value), type_, cls))
    automaton.make_automaton()
    return automaton


def _bounded_ok(text: str, s: int, e: int, length: int) -> bool:
    """Short values count only as whole words (``1234`` inside ``order 12345`` does not)."""
    return length >= _SWEEP_BOUNDED_BELOW or (
        (s == 0 or not text[s - 1].isalnum()) and (e == len(text) or not text[e].isalnum())
    )


def sweep(views: Sequence[View], values: Values) -> dict[int, list[Finding]]:
    """Every known value through every view: one search over all texts at once.

    Returns the findings for each view index that has any, in raw offsets of
    the segment (after its key context). Each distinct analysis is read once
    (a request repeats ``user``, keys and whole messages), all of them joined
    by NUL into one string so the search runs once in C; a hit that spans
    two texts is discarded, so the result is exactly :func:`sweep_reference`
    (one pass per view). The digit view (every digit run as its bare digits)
    is built only when some value is all digits, and is kept with the text's
    analysis, so a cached text never rebuilds it.
    """
    search = _ValueSearch(values)
    slot_of: dict[int, int] = {}
    slots: list[Analysis] = []
    for a, _ in views:
        if id(a) not in slot_of:
            slot_of[id(a)] = len(slots)
            slots.append(a)
    hits: dict[int, list[_Hit]] = {}
    texts = [a.lower for a in slots]
    for k, s, e, (length, type_, cls) in _joined_hits(search.all, texts):
        if _bounded_ok(texts[k], s, e, length):
            hits.setdefault(k, []).append((s, e, type_, cls))
    digit_values = {v: t for v, t in values.items() if _DIGITS_ONLY.fullmatch(v)}
    if digit_values:
        digit_views = [_cached_digit_view(a) for a in slots]
        digit_hits = _joined_hits(_ValueSearch(digit_values).all, digit_views)
        for k, ds, de, (_, type_, cls) in digit_hits:
            pos = _digit_positions(slots[k])
            hits.setdefault(k, []).append((pos[ds], pos[de - 1] + 1, type_, cls))
    out: dict[int, list[Finding]] = {}
    if not hits:
        return out
    for i, (a, offset) in enumerate(views):
        found = hits.get(slot_of[id(a)])
        if found:
            added = _findings(a, offset, found)
            if added:
                out[i] = added
    return out


class _ValueSearch:
    """Every occurrence of every value (overlapping ones too) as ``(last index, payload)``."""

    def __init__(self, values: Values) -> None:
        self.values = values

    def all(self, text: str) -> Iterable[tuple[int, tuple[int, str, DataClass]]]:
        if len(self.values) > _FIND_VALUES:
            return _sweep_automaton(self.values).iter(text)  # type: ignore[no-any-return]
        out = []
        for value, (type_, cls) in self.values.items():
            payload = (len(value), type_, cls)
            i = text.find(value)
            while i != -1:
                out.append((i + len(value) - 1, payload))
                i = text.find(value, i + 1)
        return out


def _joined_hits(
    search: Callable[[str], Iterable[tuple[int, Any]]], texts: list[str]
) -> list[tuple[int, int, int, Any]]:
    """(text index, start, end, value) of every hit inside one of ``texts``."""
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    out = []
    for last, payload in search("\0".join(texts)):
        e = last + 1
        s = e - payload[0]
        k = bisect.bisect_right(starts, s) - 1
        base = starts[k]
        if e - base <= len(texts[k]):
            out.append((k, s - base, e - base, payload))
    return out


def _findings(a: Analysis, offset: int, hits: list[_Hit]) -> list[Finding]:
    norm = a.view
    out = []
    for s, e, type_, cls in hits:
        if e <= offset:
            continue
        rs, re_ = norm.to_raw(s, e)
        rs, re_ = max(rs - offset, 0), re_ - offset
        if re_ > rs:
            out.append(Finding(type_, cls, rs, re_, 0.9, "sweep"))
    return out


def sweep_reference(views: Sequence[View], values: Values) -> dict[int, list[Finding]]:
    """The sweep written plainly, one view at a time (what :func:`sweep` must equal)."""
    automaton = _sweep_automaton(values)
    out: dict[int, list[Finding]] = {}
    for i, (a, offset) in enumerate(views):
        text = lower_same_length(a.view.text)
        hits: list[_Hit] = []
        for last, (length, type_, cls) in automaton.iter(text):
            s, e = last + 1 - length, last + 1
            if _bounded_ok(text, s, e, length):
                hits.append((s, e, type_, cls))
        if any(c.isdigit() for c in text):
            digits, pos = _digit_view_reference(text)
            for last, (length, type_, cls) in automaton.iter(digits):
                ds, de = last + 1 - length, last + 1
                hits.append((pos[ds], pos[de - 1] + 1, type_, cls))
        found = _findings(a, offset, hits)
        if found:
            out[i] = found
    return out


_DIGIT_RUN = re.compile(r"[0-9](?:[ \-./_()+,]{0,3}[0-9])*")
_DIGITS_ONLY = re.compile(r"[0-9|]+")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_ONE_DIGIT = re.compile(r"[0-9]")
_BAR = re.compile(r"\|")


def _cached_digit_view(a: Analysis) -> str:
    view = a.memo.get("digits")
    if view is None:
        view = a.memo["digits"] = _digit_view(a.lower)
    return view  # type: ignore[return-value]


def _digit_view(text: str) -> str:
    """The digits of each digit run of ``text``, each run followed by ``|``.

    A run is digits joined by short separators, so ``4 1 1 1 ...`` or
    ``4111.1111...`` reads as the number it spells, but two numbers a word
    apart never join into one. Positions are built only for a text with a
    hit (:func:`_digit_positions`).
    """
    return "".join(_NOT_DIGIT.sub("", m.group()) + "|" for m in _DIGIT_RUN.finditer(text))


def _digit_positions(a: Analysis) -> _DigitPositions:
    """Where each character of the digit view came from (kept with the text's analysis)."""
    pos = a.memo.get("digit_pos")
    if pos is None:
        pos = a.memo["digit_pos"] = _DigitPositions(a.lower, _cached_digit_view(a))
    return pos  # type: ignore[return-value]


class _DigitPositions:
    """:func:`_digit_view_reference`'s positions, built per digit run on first use.

    A hit needs the positions of one run only; a megabyte of code with a card
    number in it should not pay for a list of every digit.
    """

    def __init__(self, text: str, digits: str) -> None:
        self.text = text
        #: where each run starts in the digit view, and its span in the text
        self.spans = [m.span() for m in _DIGIT_RUN.finditer(text)]
        self.offsets = [0, *(m.end() for m in _BAR.finditer(digits))][: len(self.spans)]
        self.runs: dict[int, list[int]] = {}

    def __getitem__(self, di: int) -> int:
        k = bisect.bisect_right(self.offsets, di) - 1
        run = self.runs.get(k)
        if run is None:
            s, e = self.spans[k]
            run = [d.start() for d in _ONE_DIGIT.finditer(self.text, s, e)]
            run.append(e)
            self.runs[k] = run
        return run[di - self.offsets[k]]


def _digit_view_reference(text: str) -> tuple[str, list[int]]:
    """The digits of each digit run of ``text`` (runs kept apart), and where each came from.

    A run is digits joined by short separators, so ``4 1 1 1 ...`` or
    ``4111.1111...`` reads as the number it spells, but two numbers a word
    apart never join into one.
    """
    chars: list[str] = []
    pos: list[int] = []
    for m in _DIGIT_RUN.finditer(text):
        for k in range(m.start(), m.end()):
            if "0" <= text[k] <= "9":
                chars.append(text[k])
                pos.append(k)
        chars.append("|")
        pos.append(m.end())
    return "".join(chars), pos
