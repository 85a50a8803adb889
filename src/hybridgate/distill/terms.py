"""Whether a teacher model's terms allow training other models on its outputs. Pure.

The statement per model comes from a :class:`TermsSource`: the catalog's
output-use terms when it has them, else the ``distill.terms`` config list.
No statement means no capture (fail closed); an operator can record an
override, which is itself a signed receipt in the log.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hybridgate.distill.config import TermsEntry
from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import Catalog, load_catalog
from hybridgate.planner.terms import output_use


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


def judge_terms(
    entry: TermsEntry | None,
    model: str,
    purpose: str,
    *,
    competing: bool | None = None,
    commercial: bool = True,
) -> TermsVerdict:
    """May outputs of ``model`` train a model for ``purpose``? The reason cites the source.
    Anything undecided is a refusal (fail closed)."""
    if entry is None:
        return TermsVerdict(False, f"no output-use terms are known for model {model!r}", None)
    src = f" (source: {entry.source})"
    kind = entry.training_use
    if kind == "unknown":
        return TermsVerdict(False, f"output-use terms of {model!r} are unknown{src}", entry)
    if kind == "no_competing":
        if competing is None:
            return TermsVerdict(
                False,
                f"the terms of {model!r} forbid training competing models and the task does "
                f"not declare capture.competing: false{src}",
                entry,
            )
        if competing:
            return TermsVerdict(
                False, f"the terms of {model!r} forbid training competing models{src}", entry
            )
    if kind == "research_only" and commercial:
        return TermsVerdict(
            False,
            f"the terms of {model!r} allow research use only; the task is commercial{src}",
            entry,
        )
    if commercial and entry.commercial_outputs is False:
        return TermsVerdict(
            False, f"the terms of {model!r} do not allow commercial use of outputs{src}", entry
        )
    if kind == "forbidden" or purpose in entry.forbidden_purposes:
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


class CatalogTerms:
    """The model catalog's structured output-use terms (``hybridgate.planner.terms``)."""

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._catalog = catalog
        self._memo: dict[str, TermsEntry | None] = {}

    def output_terms(self, model: str) -> TermsEntry | None:
        """Parsed once per gateway; answers memoized per model id (a handful per task)."""
        if model in self._memo:
            return self._memo[model]
        if self._catalog is None:
            self._catalog = load_catalog()
        entry = self._convert(model)
        if len(self._memo) < 1024:
            self._memo[model] = entry
        return entry

    def _convert(self, model: str) -> TermsEntry | None:
        t = output_use(model, self._catalog)
        if t is None:
            return None
        return TermsEntry(
            model=model,
            training_use=t.training_other_models,
            commercial_outputs=t.commercial_outputs,
            summary=t.summary,
            source=t.source,
        )


def catalog_terms(config: Any) -> TermsSource | None:
    """Output-use terms from the model catalog (plus the config's extra entries)."""
    extra = getattr(config, "catalog", None)
    if extra:
        try:
            return CatalogTerms(load_catalog(extra=extra))
        except (ConfigError, TypeError, ValueError):
            return CatalogTerms()
    return CatalogTerms()


def entry_dict(entry: TermsEntry | None) -> dict[str, Any] | None:
    return None if entry is None else entry.model_dump(mode="json")
