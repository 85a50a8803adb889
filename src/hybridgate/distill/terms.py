"""Whether a teacher model's terms allow training other models on its outputs. Pure.

The statement per model comes from a :class:`TermsSource`: the catalog's
output-use terms when it has them, else the ``distill.terms`` config list.
No statement means no capture (fail closed); an operator can record an
override, which is itself a signed receipt in the log.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hybridgate.distill.config import TermsEntry


class TermsSource(Protocol):
    def output_terms(self, model: str) -> TermsEntry | None: ...


class ListTerms:
    """Terms from a list of entries, matched on the model id (case-insensitive)."""

    def __init__(self, entries: Iterable[TermsEntry]) -> None:
        self._by_model = {e.model.casefold(): e for e in entries}

    def output_terms(self, model: str) -> TermsEntry | None:
        return self._by_model.get(model.casefold())


class ChainTerms:
    """The first source that has a statement for the model wins."""

    def __init__(self, sources: Sequence[TermsSource]) -> None:
        self._sources = list(sources)

    def output_terms(self, model: str) -> TermsEntry | None:
        for s in self._sources:
            entry = s.output_terms(model)
            if entry is not None:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class TermsVerdict:
    allowed: bool
    reason: str
    entry: TermsEntry | None


def judge_terms(entry: TermsEntry | None, model: str, purpose: str) -> TermsVerdict:
    """May outputs of ``model`` be used for ``purpose``? The reason cites the source."""
    if entry is None:
        return TermsVerdict(False, f"no output-use terms are known for model {model!r}", None)
    src = f" (source: {entry.source})"
    if entry.training_use == "unknown":
        return TermsVerdict(False, f"output-use terms of {model!r} are unknown{src}", entry)
    if entry.training_use == "forbidden" or purpose in entry.forbidden_purposes:
        return TermsVerdict(
            False,
            f"the terms of {model!r} forbid using its outputs for {purpose!r}{src}",
            entry,
        )
    if entry.training_use == "restricted" and purpose not in entry.allowed_purposes:
        allowed = ", ".join(entry.allowed_purposes) or "none"
        return TermsVerdict(
            False,
            f"the terms of {model!r} restrict output use to: {allowed}; "
            f"{purpose!r} is not among them{src}",
            entry,
        )
    return TermsVerdict(True, f"the terms of {model!r} allow {purpose!r}{src}", entry)


def catalog_terms(config: Any) -> TermsSource | None:
    """Output-use terms from the model catalog, when the catalog carries them."""
    try:
        planner_terms = importlib.import_module("hybridgate.planner.terms")
    except ImportError:
        return None
    factory = getattr(planner_terms, "distill_terms_source", None)
    return factory(config) if callable(factory) else None


def entry_dict(entry: TermsEntry | None) -> dict[str, Any] | None:
    return None if entry is None else entry.model_dump(mode="json")
