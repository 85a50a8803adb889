"""The normalized view detectors run on, with an offset map back to the raw text.

People (and their tools) spell the same value in many ways: fullwidth or
Arabic-Indic digits, a no-break or thin space between card groups, an en dash
or a Unicode minus instead of ``-``, a soft hyphen or a zero-width space
pasted in from a web page, a line break where a word wrapped, ``&#64;``
instead of ``@``, ``%20`` instead of a space, ``\\u0034`` instead of ``4``.
The model reads all of them as the plain value, so the scanner must too.

:func:`normalize` builds that view once per text:

1. **decoders** turn a multi-character encoded run into what a reader would
   read (HTML character references, percent-encoded UTF-8, JSON/Python
   ``\\uXXXX`` and ``\\n``-style escapes);
2. **character rules** (:data:`CHAR_RULES`) map each remaining character to
   zero or more characters: NFKC, any ``str.isdecimal`` digit to ASCII,
   format characters (category Cf) removed, every space to ``" "``, every
   dash to ``"-"``, and a small confusables skeleton (Cyrillic/Greek letters
   that look Latin). Adding a normalization is one more entry in that tuple.

Every character of the normalized text knows the raw span it came from, so a
finding on the normalized view masks the exact raw span (whole escape
sequences and entities included). ASCII text without escapes is the common
case and costs one ``str.isascii`` and one ``str.translate``.
"""

from __future__ import annotations

import bisect
import html
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

# ----------------------------------------------------------------- char rules

#: Latin look-alikes from Cyrillic, Greek and Armenian that survive NFKC
#: (a skeleton in the spirit of Unicode TR39 confusables, kept small on purpose:
#: enough to undo homoglyph spellings of tokens and org terms).
_CONFUSABLES: dict[str, str] = {
    **dict(zip("АВЕЅІЈКМНОРСТХУԁаеіјорсԛѕԝхуһӏɡ", "ABESIJKMHOPCTXYdaeijopcqswxyhlg", strict=True)),
    **dict(zip("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧοαιкνρτυϲ", "ABEZHIKMNOPTYXoaikvptuc", strict=True)),
    **dict(zip("օսոհ", "ounh", strict=True)),
}
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d\u2043\u02d7")


def _nfkc(c: str) -> str:
    return unicodedata.normalize("NFKC", c)


def _decimal_digit(c: str) -> str:
    return str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c


def _drop_format(c: str) -> str:
    return "" if unicodedata.category(c) == "Cf" else c


def _space(c: str) -> str:
    return " " if c.isspace() or unicodedata.category(c) == "Zs" else c


def _dash(c: str) -> str:
    return "-" if c in _DASHES or unicodedata.category(c) == "Pd" else c


def _confusable(c: str) -> str:
    return _CONFUSABLES.get(c, c)


#: Applied in order to every character; each maps one character to a string.
CHAR_RULES: tuple[Callable[[str], str], ...] = (
    _nfkc,
    _decimal_digit,
    _drop_format,
    _space,
    _dash,
    _confusable,
)


@lru_cache(maxsize=65536)
def normalize_char(c: str) -> str:
    """One character through every rule (a rule's output feeds the next, per character).

    Cached: a pure function of one code point, so the cache is a memo, not state.
    """
    out = c
    for rule in CHAR_RULES:
        out = "".join(rule(x) for x in out)
    return out


#: ASCII: whitespace (tab, newline, ...) reads as a space; everything else stays.
_ASCII_TABLE: dict[int, int] = {c: 0x20 for c in range(128) if chr(c).isspace()}


# ------------------------------------------------------------------- decoders

# Every alternative starts with a literal outside its group, so the regex engine
# skips to the next "&", "%" or "\\" with its first-character set instead of
# trying every alternative at every position (40x faster on a megabyte).
_HTML_REF = r"&(#[0-9]{1,7};|#[xX][0-9a-fA-F]{1,6};|[A-Za-z][A-Za-z0-9]{1,31};)"
_PERCENT = r"%([0-9A-Fa-f]{2}(?:%[0-9A-Fa-f]{2})*)"
_U_ESCAPE = r"\\(u[0-9a-fA-F]{4}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?)"
_C_ESCAPE = r"\\([nrtfb/\\\"'])"
_DECODER_TRIGGERS = ("&", "%", "\\")
_DECODE = re.compile(f"{_HTML_REF}|{_PERCENT}|{_U_ESCAPE}|{_C_ESCAPE}")
_C_MAP = {"n": "\n", "r": "\r", "t": "\t", "f": "\f", "b": "\b", "/": "/", "\\": "\\"}


def _printable(s: str) -> bool:
    """Text a reader sees (format characters count: the view drops them anyway)."""
    return all(c.isprintable() or c.isspace() or unicodedata.category(c) == "Cf" for c in s)


def _decode(m: re.Match[str]) -> str | None:
    """What a reader would read for one encoded run, or None to leave it as is."""
    g = m.group()
    if m.group(1) is not None:
        out = html.unescape(g)
    elif m.group(2) is not None:
        try:
            out = unquote(g, errors="strict")
        except UnicodeDecodeError:
            return None
    elif m.group(3) is not None:
        units = [int(g[i + 2 : i + 6], 16) for i in range(0, len(g), 6)]
        if len(units) == 2:
            out = chr(0x10000 + ((units[0] - 0xD800) << 10) + (units[1] - 0xDC00))
            if not 0xD800 <= units[0] <= 0xDBFF:
                out = chr(units[0]) + chr(units[1])
        else:
            out = chr(units[0])
        if 0xD800 <= ord(out[0]) <= 0xDFFF:
            return None
    else:
        out = _C_MAP.get(g[1], g[1])
    if out == g or not _printable(out):
        return None
    return out


# ----------------------------------------------------------------- the view


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalized text and the raw span each of its characters came from.

    ``pieces`` is None when every character maps to the same raw position
    (the common case). Otherwise it is a list of ``(norm_start, raw_start,
    raw_end, copy)``: a *copy* piece maps character for character; a
    replacement piece maps every one of its characters to the whole raw run.
    """

    raw: str
    text: str
    pieces: tuple[tuple[int, int, int, bool], ...] | None = None
    #: A second pass decodes what the first one revealed (``\\u0034`` in JSON
    #: text is ``\u0034``, which is ``4``): ``pieces`` then map into ``base.text``.
    base: Normalized | None = None

    @property
    def identity(self) -> bool:
        return self.pieces is None and self.base is None

    def to_raw(self, start: int, end: int) -> tuple[int, int]:
        """The raw span ``[start, end)`` of the normalized text came from (``end > start``)."""
        if self.pieces is not None:
            start, end = self._raw_start(start), self._raw_end(end - 1)
        if self.base is not None:
            return self.base.to_raw(start, end)
        return start, end

    def _piece(self, pos: int) -> tuple[int, int, int, bool]:
        pieces = self.pieces
        assert pieces is not None
        i = bisect.bisect_right(pieces, (pos, 1 << 62)) - 1
        return pieces[max(i, 0)]

    def _raw_start(self, pos: int) -> int:
        ns, rs, _, copy = self._piece(pos)
        return rs + (pos - ns) if copy else rs

    def _raw_end(self, pos: int) -> int:
        ns, rs, re_, copy = self._piece(pos)
        return rs + (pos - ns) + 1 if copy else re_


def normalize(raw: str) -> Normalized:
    """The normalized view of ``raw`` (see the module docstring).

    Decoding runs twice at most: an escape inside JSON text (``\\u0034`` in
    tool arguments) is an escape again once the JSON is read.
    """
    first = _normalize_once(raw)
    if first.text == raw or not any(t in first.text for t in _DECODER_TRIGGERS):
        return first
    second = _normalize_once(first.text)
    if second.pieces is None:
        return first
    return Normalized(raw, second.text, second.pieces, base=first)


def led_matches(rx: re.Pattern[str], text: str, chars: list[str]) -> Iterator[re.Match[str]]:
    """``rx.finditer(text)`` for a regex whose every match starts with one of ``chars``.

    The matches are tried only where such a character is: ``str.find`` skips
    prose at memchr speed, where the regex engine tests each position against
    a character set (about 15 ns a character, 20 ms a megabyte). Text dense
    with such characters goes to ``finditer`` itself.
    """
    if sum(text.count(c) for c in chars) * 16 > len(text):
        # Dense (a hostile run of entities or escapes): the engine's own loop is cheaper
        # than a Python step per trigger.
        yield from rx.finditer(text)
        return
    starts: list[int] = []
    for c in chars:
        i = text.find(c)
        while i != -1:
            starts.append(i)
            i = text.find(c, i + 1)
    starts.sort()
    free = 0  # matches never overlap: the next one starts where the last ended
    for p in starts:
        if p < free:
            continue
        m = rx.match(text, p)
        if m is not None:
            free = m.end()
            yield m


def _normalize_once(raw: str) -> Normalized:
    special: dict[str, str] = {}
    table: dict[int, int | str] = dict(_ASCII_TABLE)
    if not raw.isascii():
        for c in set(raw):
            if c.isascii():
                continue
            mapped = normalize_char(c)
            if len(mapped) == 1:
                if mapped != c:
                    table[ord(c)] = mapped
            else:
                special[c] = mapped
    decoding = any(t in raw for t in _DECODER_TRIGGERS)
    if not special and not decoding:
        return Normalized(raw, raw.translate(table))
    alternatives = []
    if decoding:
        alternatives.append(_DECODE.pattern)
    # Each special character is its own literal alternative without a group: a match
    # with no group set is one.
    alternatives.extend(re.escape(c) for c in special)
    rx = _DECODE if not special else re.compile("|".join(alternatives))
    parts: list[str] = []
    pieces: list[tuple[int, int, int, bool]] = []
    npos = 0
    rpos = 0
    # What a run reads as depends only on its text: a dense megabyte of entities
    # repeats a few runs, each decoded once.
    memo: dict[str, str | None] = {}
    for m in led_matches(rx, raw, [*_DECODER_TRIGGERS, *special]):
        g = m.group()
        if g in memo:
            out = memo[g]
        elif m.lastindex is None:
            out = memo[g] = special[g]
        else:
            dec = _decode(m)
            out = memo[g] = None if dec is None else "".join(normalize_char(c) for c in dec)
        if out is None:
            continue
        s, e = m.span()
        if s > rpos:
            pieces.append((npos, rpos, s, True))
            parts.append(raw[rpos:s])
            npos += s - rpos
        if out:
            pieces.append((npos, s, e, False))
            parts.append(out)
            npos += len(out)
        rpos = e
    if not pieces and rpos == 0:
        return Normalized(raw, raw.translate(table))
    if rpos < len(raw):
        pieces.append((npos, rpos, len(raw), True))
        parts.append(raw[rpos:])
    text = "".join(parts).translate(table)
    return Normalized(raw, text, tuple(pieces))
