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


#: Up to this many terms, each led by a word of at least :data:`_HEAD_MIN` characters,
#: terms are found from their first word's hits in the shared keyword pass (no pass
#: of their own over the text); more go through their own automaton.
_HEAD_TERMS = 64
_HEAD_MIN = 4


def _term_pattern(term: str) -> re.Pattern[str]:
    """A normalized term over the lower-cased text: its words joined by any run of
    spaces, ``-`` and ``_`` (what joining and collapsing reads as one space)."""
    return re.compile("[ _-]+".join(re.escape(w) for w in term.split(" ")))


def _any_term(head: str, led: list[str]) -> re.Pattern[str] | None:
    """One regex matching where any term of ``led`` (all led by ``head``) starts;
    None when ``head`` is a term itself (every hit of it is one)."""
    if head in led:
        return None
    rests = "|".join("[ _-]+".join(re.escape(w) for w in t.split(" ")[1:]) for t in led)
    return re.compile(f"{re.escape(head)}[ _-]+(?:{rests})")


class TermDetector:
    name = "org_terms"

    def __init__(self, terms: Iterable[str]) -> None:
        normalized = {normalize_term(t) for t in terms}
        # "ProjectBluebird": a multi-word term written as one word still counts.
        normalized |= {t.replace(" ", "") for t in normalized if " " in t}
        normalized.discard("")
        self.count = len(normalized)
        self._automaton: Any = build_automaton((t, len(t)) for t in normalized)
        by_head: dict[str, list[str]] = {}
        for t in sorted(normalized):
            by_head.setdefault(t.split(" ")[0], []).append(t)
        #: first word -> (a regex for any of the terms it leads, or None when the word
        #: is a term itself; each term's own regex), when the shared pass can find them
        self.heads: dict[str, tuple[re.Pattern[str] | None, list[re.Pattern[str]]]] | None
        self.heads = None
        if len(normalized) <= _HEAD_TERMS and all(len(h) >= _HEAD_MIN for h in by_head):
            self.heads = {h: (_any_term(h, led), [_term_pattern(t) for t in led])
                          for h, led in by_head.items()}  # fmt: skip

    def detect(self, view: TextView, *, reference: bool = False) -> list[Finding]:
        """Every term, from its first word's hits when the view's pass recorded them;
        ``reference=True`` runs the terms' own automaton over the whole text."""
        if self._automaton is None:
            return []
        heads = self.heads
        if not reference and heads is not None and heads.keys() <= view.heads:
            return self._from_heads(view, heads)
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

    def _from_heads(
        self, view: TextView, heads: dict[str, tuple[re.Pattern[str] | None, list[re.Pattern[str]]]]
    ) -> list[Finding]:
        lower = view.lower
        n = len(lower)
        out: list[Finding] = []
        for start, head in view.head_hits:
            led = heads.get(head)
            if led is None or (start > 0 and lower[start].isalnum() and lower[start - 1].isalnum()):
                continue
            if led[0] is not None and led[0].match(lower, start) is None:
                continue  # most hits of a word lead none of its terms: one failed match
            for rx in led[1]:
                m = rx.match(lower, start)
                if m is None:
                    continue
                end = m.end()
                if lower[end - 1].isalnum() and end < n and lower[end].isalnum():
                    continue
                out.append(
                    Finding("ORG_TERM", DataClass.ORG_CONFIDENTIAL, start, end, 1.0, self.name)
                )
        return out
