"""Organization deny-list terms: one Aho-Corasick automaton, any number of terms.

Matching is case-insensitive over the lower-cased text (same offsets, see
:func:`~hybridgate.scan.text.lower_same_length`) and respects word
boundaries wherever a term's own edge is a letter or digit, so ``Falcon``
matches in "Project Falcon's budget" but not in "falconry".
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from hybridgate.errors import ConfigError
from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.text import TextView, build_automaton, lower_same_length


def normalize_term(term: str) -> str:
    return lower_same_length(" ".join(term.split()))


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
        normalized.discard("")
        self.count = len(normalized)
        self._automaton: Any = build_automaton((t, len(t)) for t in normalized)

    def detect(self, view: TextView) -> list[Finding]:
        if self._automaton is None:
            return []
        out: list[Finding] = []
        lower = view.lower
        n = len(lower)
        for last, length in self._automaton.iter(lower):
            start, end = last - length + 1, last + 1
            if lower[start].isalnum() and start > 0 and lower[start - 1].isalnum():
                continue
            if lower[last].isalnum() and end < n and lower[end].isalnum():
                continue
            out.append(Finding("ORG_TERM", DataClass.ORG_CONFIDENTIAL, start, end, 1.0, self.name))
        return out
