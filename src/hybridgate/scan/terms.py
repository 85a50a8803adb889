"""Organization deny-list terms: one Aho-Corasick automaton, any number of terms.

Matching is case-insensitive over the lower-cased normalized text (same
offsets, see :func:`~hybridgate.scan.text.lower_same_length`) and respects
word boundaries wherever a term's own edge is a letter or digit, so
``Falcon`` matches in "Project Falcon's budget" but not in "falconry".
The words of a term may be joined by ``-``, ``_`` or any run of spaces
(a line wrap reads as a space in the normalized view), and homoglyphs are
already folded to Latin by the normalization (see
:mod:`hybridgate.scan.normalize`).
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hybridgate.errors import ConfigError
from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.normalize import normalize
from hybridgate.scan.text import TextView, build_automaton, lower_same_length

_JOINERS = {ord("-"): " ", ord("_"): " "}
_SPACES = re.compile(r"  +")  # a literal prefix: the engine skips prose fast


def normalize_term(term: str) -> str:
    text = normalize(term).text
    return lower_same_length(" ".join(text.translate(_JOINERS).split()))


def _collapse(text: str) -> tuple[str, list[int], list[int]]:
    """``text`` with space runs as one space, and breakpoints to map offsets back."""
    parts: list[str] = []
    points: list[int] = []
    removed: list[int] = []
    last = 0
    gone = 0
    for m in _SPACES.finditer(text):
        parts.append(text[last : m.start() + 1])
        gone += m.end() - m.start() - 1
        points.append(m.start() + 1 - (gone - (m.end() - m.start() - 1)))
        removed.append(gone)
        last = m.end()
    parts.append(text[last:])
    return "".join(parts), points, removed


def _orig(pos: int, points: list[int], removed: list[int]) -> int:
    k = bisect.bisect_right(points, pos) - 1
    return pos + (removed[k] if k >= 0 else 0)


class _CollapsedMap:
    """Collapsed-text offsets back to the text, built per 4 KB chunk on first use.

    Chunk boundaries never split a run of spaces, so the collapsed text is
    the chunks collapsed one by one; only a chunk holding a hit pays for the
    exact map (code indented with spaces has thousands of runs a megabyte).
    """

    def __init__(self, text: str, chunk: int = 4096) -> None:
        self.text = text
        self.starts: list[int] = []  # chunk starts in the text
        self.cstarts: list[int] = []  # and in the collapsed text
        self.maps: dict[int, tuple[list[int], list[int]]] = {}
        pos = cpos = 0
        n = len(text)
        while pos < n:
            end = min(pos + chunk, n)
            while end < n and text[end] == " " and text[end - 1] == " ":
                end += 1
            self.starts.append(pos)
            self.cstarts.append(cpos)
            cpos += len(_SPACES.sub(" ", text[pos:end]))
            pos = end
        self.starts.append(n)

    def orig(self, cpos: int) -> int:
        k = bisect.bisect_right(self.cstarts, cpos) - 1
        m = self.maps.get(k)
        if m is None:
            _, points, removed = _collapse(self.text[self.starts[k] : self.starts[k + 1]])
            m = self.maps[k] = (points, removed)
        return self.starts[k] + _orig(cpos - self.cstarts[k], *m)


def load_terms_file(path: str | Path) -> list[str]:
    """One term per line; blank lines and ``#`` comments are ignored."""
    p = Path(path).expanduser()
    try:
        lines = p.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read terms file: {exc}") from exc
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]


class TermDetector:
    name = "org_terms"

    def __init__(self, terms: Iterable[str]) -> None:
        normalized = {normalize_term(t) for t in terms}
        # "ProjectBluebird": a multi-word term written as one word still counts.
        normalized |= {t.replace(" ", "") for t in normalized if " " in t}
        normalized.discard("")
        self.count = len(normalized)
        self._automaton: Any = build_automaton((t, len(t)) for t in normalized)

    def detect(self, view: TextView) -> list[Finding]:
        if self._automaton is None:
            return []
        out: list[Finding] = []
        lower = view.lower.translate(_JOINERS)
        back: _CollapsedMap | None = None
        if "  " in lower:
            collapsed = _SPACES.sub(" ", lower)
            # Most texts hold no term at all: look first, map offsets back only then.
            if next(self._automaton.iter(collapsed), None) is None:
                return out
            back = _CollapsedMap(lower)
            lower = collapsed
        n = len(lower)
        for last, length in self._automaton.iter(lower):
            start, end = last - length + 1, last + 1
            if lower[start].isalnum() and start > 0 and lower[start - 1].isalnum():
                continue
            if lower[last].isalnum() and end < n and lower[end].isalnum():
                continue
            if back is not None:
                start, end = back.orig(start), back.orig(end - 1) + 1
            out.append(Finding("ORG_TERM", DataClass.ORG_CONFIDENTIAL, start, end, 1.0, self.name))
        return out
