"""Base64 and hex runs that decode to text: scanned as text, masked as a whole.

A model decodes ``NDExMSAxMTExIDExMTEgMTExMQ==`` without being asked, so a
card number in base64 is a card number sent. Runs of the base64 (standard or
URL-safe) or hex alphabet long enough to hold a value are decoded; when the
bytes are UTF-8 text (not binary: hashes, keys and random tokens decode to
bytes that are not), the text is scanned one level deep and any finding
covers the *whole encoded run*, typed by the most severe thing inside.

The candidate search is one regex over the normalized text, and all decoded
runs are scanned together as one text, so the cost stays linear. Decoding is
one level deep: base64 inside base64 is out of scope.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import re
from typing import TYPE_CHECKING

from hybridgate.scan.findings import DataClass, Finding

if TYPE_CHECKING:
    from hybridgate.scan.scanner import Scanner

_B64_RUN = re.compile(r"[A-Za-z0-9+/_\-]{12,}={0,2}")
_B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
#: ASCII: the base64 alphabet -> "b", everything else -> " " (non-ASCII stays: never "b").
_B64_CLASS = {c: ord("b") if chr(c) in _B64_ALPHABET else ord(" ") for c in range(128)}
#: Twelve literal "b"s lead: the engine's substring search, not a class test per position.
_B64_LONG = re.compile("b" * 12 + "b*")


def b64_runs(text: str) -> list[tuple[int, int]]:
    """The spans ``_B64_RUN.finditer(text)`` gives, six times faster.

    Maximal runs of 12+ base64-alphabet characters (and up to two ``=``):
    found on a same-length copy of the text where that alphabet is one
    letter, so the search is for a literal.
    """
    out: list[tuple[int, int]] = []
    n = len(text)
    for m in _B64_LONG.finditer(text.translate(_B64_CLASS)):
        s, e = m.span()
        if e < n and text[e] == "=":
            e += 2 if e + 1 < n and text[e + 1] == "=" else 1
        out.append((s, e))
    return out


_HEX = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_JOIN = "\n|\n"
#: Severity order for naming a run that holds several classes.
_ORDER = (
    DataClass.SECRET,
    DataClass.HEALTH,
    DataClass.GOVERNMENT_ID,
    DataClass.FINANCIAL,
    DataClass.ORG_CONFIDENTIAL,
    DataClass.CONTACT,
    DataClass.PERSON,
)


def _as_text(raw: bytes) -> str | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if len(text) < 6:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\r\t")
    return text if printable >= 0.95 * len(text) else None


def decode_run(run: str) -> str | None:
    """The text a base64/base64url/hex run encodes, or None when it is not text."""
    if _HEX.fullmatch(run):
        try:
            return _as_text(binascii.unhexlify(run))
        except binascii.Error:
            return None
    body = run.rstrip("=")
    if len(body) % 4 == 1:
        return None
    padded = body + "=" * (-len(body) % 4)
    try:
        if "-" in body or "_" in body:
            raw = base64.urlsafe_b64decode(padded)
        else:
            raw = base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _as_text(raw)


def encoded_run_findings(inner: Scanner, text: str) -> list[Finding]:
    """Findings for encoded runs of ``text`` whose decoded text holds something.

    Every decoded run is joined into one text (one per line, bars between) and scanned
    once, so a megabyte of small runs costs one scan, not one per run.
    """
    runs: list[tuple[int, int]] = []
    decoded: list[str] = []
    cache: dict[str, str | None] = {}
    for s, e in b64_runs(text):
        if s > 0 and (text[s - 1].isalnum()):
            continue
        run = text[s:e]
        if run.isalpha() and run.islower():
            continue  # a long word, not an encoding
        if run in cache:
            dec = cache[run]
        else:
            dec = cache[run] = decode_run(run)
        if dec is not None:
            runs.append((s, e))
            decoded.append(dec)
    if not runs:
        return []
    # Runs are kept apart by a bar: a number cannot span two runs.
    starts: list[int] = []
    pos = 0
    for d in decoded:
        starts.append(pos)
        pos += len(d) + len(_JOIN)
    res = inner.scan(_JOIN.join(decoded))
    if not res.complete:
        raise ValueError("decoded runs could not be scanned")
    hits: dict[int, list[Finding]] = {}
    for f in res.findings:
        first = bisect.bisect_right(starts, f.start) - 1
        last = bisect.bisect_right(starts, f.end - 1) - 1
        for k in range(max(first, 0), last + 1):
            hits.setdefault(k, []).append(f)
    out: list[Finding] = []
    for k in sorted(hits):
        found = hits[k]
        classes = {f.data_class for f in found} | {c for f in found for c in f.absorbed}
        top = next(c for c in _ORDER if c in classes)
        kind = next(f.type for f in found if f.data_class is top)
        absorbed = tuple(sorted((c for c in classes if c is not top), key=lambda c: c.value))
        conf = max(f.confidence for f in found)
        s, e = runs[k]
        out.append(Finding(kind, top, s, e, conf, "encoded_run", absorbed))
    return out
