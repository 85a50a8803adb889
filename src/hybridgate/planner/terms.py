"""What a model's terms say about using its outputs — above all, to train other models.

Before the gateway keeps a teacher model's answers to tune a smaller model
(the flywheel) or the planner proposes a small tuned tier, someone must know
whether the teacher's licence or terms of service allow it. The catalog
records it as structured facts per licence (``output_use:`` in
``hybridgate/data/catalog.yaml``), each with its source; this module answers
the question for a catalog name, an alias, or the model id a route sends
upstream (``claude-sonnet-4-5-20250929``, ``openai/gpt-4o``,
``meta-llama/Meta-Llama-3-8B-Instruct``)::

    from hybridgate.planner.terms import output_use

    t = output_use("gpt-4o-mini")
    t.training_other_models        # "no_competing"
    t.allows_training(competing=False)   # True; competing=None -> None (undecided)
    t.obligations()                # names and notices a trained model must carry

Lookups fail closed: an id the catalog does not know returns ``None``, and a
recorded ``unknown`` answers ``None`` from :meth:`OutputUseTerms.allows_training`;
callers must treat ``None`` as "not permitted".
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import (
    Catalog,
    CatalogEntry,
    LicenceFacts,
    OutputUseFacts,
    TrainingUse,
    load_catalog,
)

if TYPE_CHECKING:
    from hybridgate.distill.config import TermsEntry

#: suffixes of upstream ids that name the same weights as the catalog entry
_SUFFIXES = ("-instruct", "-it", "-chat-hf", "-hf", "-lora")


@dataclass(frozen=True)
class OutputUseTerms:
    """The output-use terms that apply to one model id, and where they were read."""

    model_id: str  # what was asked
    model: str | None  # the catalog entry it resolved to; None: matched a provider prefix
    licence: str  # licence or terms id
    training_other_models: TrainingUse
    name_prefix: str | None
    attribution: str | None
    derivatives_inherit_restrictions: bool | None
    commercial_outputs: bool | None
    summary: str
    source: str
    checked: dt.date | None  # last compared with the live source; None: never
    note: str | None = None

    def allows_training(
        self, *, commercial: bool = True, competing: bool | None = None
    ) -> bool | None:
        """May these outputs train another model? ``None``: undecided — treat as no.

        ``competing`` says whether the trained model competes with the
        provider's own products; only the deployer can answer that, so for
        ``no_competing`` terms an unanswered question stays undecided.
        ``commercial`` is whether the trained model is used commercially.
        """
        kind = self.training_other_models
        if kind in ("allowed", "attribution_required", "derivative_inherits"):
            return not (commercial and self.commercial_outputs is False)
        if kind == "no_competing":
            return None if competing is None else not competing
        if kind == "research_only":
            return not commercial
        if kind == "forbidden":
            return False
        return None

    def obligations(self) -> list[str]:
        """What a model trained on these outputs must carry, in words."""
        out = []
        if self.name_prefix:
            out.append(f"a distributed model's name must begin with {self.name_prefix!r}")
        if self.attribution:
            out.append(f"display: {self.attribution!r}")
        if self.derivatives_inherit_restrictions:
            out.append(f"the trained model inherits the use restrictions of {self.licence}")
        if self.training_other_models == "no_competing":
            out.append("the trained model must not compete with the provider's products")
        if self.training_other_models == "research_only":
            out.append("research use only")
        return out


def _normalise(model_id: str) -> list[str]:
    """Candidate catalog keys for an upstream id: as given, without org prefix or suffixes."""
    key = model_id.strip().lower()
    keys = [key]
    if "/" in key:
        keys.append(key.rsplit("/", 1)[1])
    for k in list(keys):
        for suf in _SUFFIXES:
            if k.endswith(suf):
                keys.append(k.removesuffix(suf))
        if k.startswith("meta-llama-"):
            keys.append("llama-" + k.removeprefix("meta-llama-"))
    return list(dict.fromkeys(keys))


def _from(
    model_id: str, model: str | None, lic: LicenceFacts, facts: OutputUseFacts
) -> OutputUseTerms:
    return OutputUseTerms(
        model_id=model_id,
        model=model,
        licence=lic.id,
        training_other_models=facts.training_other_models,
        name_prefix=facts.name_prefix,
        attribution=facts.attribution,
        derivatives_inherit_restrictions=facts.derivatives_inherit_restrictions,
        commercial_outputs=facts.commercial_outputs,
        summary=facts.summary,
        source=facts.source,
        checked=facts.checked,
        note=facts.note,
    )


def _entry_terms(model_id: str, e: CatalogEntry) -> OutputUseTerms | None:
    facts = e.output_terms
    return None if facts is None else _from(model_id, e.name, e.licence, facts)


def output_use(model_id: str, catalog: Catalog | None = None) -> OutputUseTerms | None:
    """The output-use terms for a catalog name, alias or upstream model id; None if unknown.

    A catalog entry (or alias, or the entry's API id) wins; otherwise an id
    that starts with a closed provider's prefix (``claude-``, ``gpt-4``,
    ``gemini-``) gets that provider's terms, which cover every model it
    serves. Open-weight ids not in the catalog return ``None``: their licence
    differs from size to size (Qwen2.5 7B is Apache 2.0, 72B is not).
    """
    if not model_id or len(model_id) > 256:
        return None
    cat = load_catalog() if catalog is None else catalog
    keys = _normalise(model_id)
    for key in keys:
        e = cat.find(key)
        if e is not None:
            return _entry_terms(model_id, e)
    for e in cat:
        if e.pricing is not None and e.pricing.api_id and e.pricing.api_id.lower() in keys:
            return _entry_terms(model_id, e)
    licences = list(cat.licences) + [e.licence for e in cat]
    for key in keys:
        for lic in licences:
            if lic.output_use is not None and any(key.startswith(p) for p in lic.model_prefixes):
                return _from(model_id, None, lic, lic.output_use)
    return None


class CatalogTermsSource:
    """The catalog's output-use terms in the shape the distillation flywheel reads.

    Built once (the catalog is parsed here, not per request); answers
    :class:`hybridgate.distill.config.TermsEntry` statements:

    * ``allowed`` / ``attribution_required`` / ``derivative_inherits`` →
      ``allowed`` (the obligations are appended to the source text);
    * ``no_competing`` → ``restricted`` with no allowed purpose: whether a
      model competes with the provider is the deployer's call, so capture
      stays off until they record a ``distill.terms`` entry (or an override);
    * ``research_only`` → ``restricted`` to ``research``;
    * ``forbidden`` and ``unknown`` as they are.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def output_terms(self, model: str) -> TermsEntry | None:
        from hybridgate.distill.config import TermsEntry

        t = output_use(model, self._catalog)
        if t is None:
            return None
        obligations = t.obligations()
        source = t.source + (f"; obligations: {'; '.join(obligations)}" if obligations else "")
        kind = t.training_other_models
        if kind in ("allowed", "attribution_required", "derivative_inherits"):
            if t.commercial_outputs is False:
                return TermsEntry(
                    model=model,
                    training_use="restricted",
                    allowed_purposes=["research"],
                    source=source,
                )
            return TermsEntry(model=model, training_use="allowed", source=source)
        if kind == "no_competing":
            return TermsEntry(
                model=model,
                training_use="restricted",
                forbidden_purposes=["competing-model"],
                source=source + " — allowed only for models that do not compete with the "
                "provider: record your purpose in distill.terms once you have decided",
            )
        if kind == "research_only":
            return TermsEntry(
                model=model, training_use="restricted", allowed_purposes=["research"], source=source
            )
        return TermsEntry(
            model=model,
            training_use="forbidden" if kind == "forbidden" else "unknown",
            source=source,
        )


def catalog_terms_source(config: Any) -> CatalogTermsSource | None:
    """A terms source for the distillation flywheel: the shipped catalog plus the
    config's ``catalog:`` entries; None if they do not load (the flywheel then has
    only its own ``distill.terms`` list: fail closed)."""
    extra = getattr(config, "catalog", None) or []
    try:
        return CatalogTermsSource(load_catalog(extra))
    except ConfigError:
        return None
