"""The model catalog: facts about models, each carrying the document it came from.

Facts are grouped (release, openness, licence, parameters, context,
architecture, pricing, throughput) and every group that is present must name
a ``source`` — a URL or a document citation. A group may also give
``sources: {field: citation}`` for a fact that came from a different document
than the rest of its group. An entry whose facts lack a source is rejected, so
nothing reaches a cost or memory estimate without a trail back to where it
was read. Unknown is ``null``: a missing figure stays missing, it is never
filled with a plausible-looking guess.

The shipped data is ``hybridgate/data/catalog.yaml``; operators add or
override entries under ``catalog:`` in their config (same schema).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from hybridgate.errors import ConfigError
from hybridgate.policy.model import Openness

#: words that look like a source but say nothing about where a fact came from
_PLACEHOLDERS = frozenset(
    {"unknown", "n/a", "na", "none", "todo", "tbd", "?", "guess", "estimate", "null", "-"}
)
_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$")


def _check_source(value: str) -> str:
    """A source is a URL or a citation of at least two words; placeholders are not sources."""
    text = value.strip()
    if text.lower() in _PLACEHOLDERS or len(text) < 8:
        raise ValueError(f"source must be a URL or a document citation, got {value!r}")
    for token in text.split():  # a citation may name its URL anywhere: "Terms, https://…, §2"
        if "://" in token and not _URL.match(token.rstrip(",;)")):
            raise ValueError(f"source URL is malformed: {value!r}")
    if "://" not in text and len(text.split()) < 2:
        raise ValueError(f"a citation needs a document and a location, got {value!r}")
    return text


Source = Annotated[str, Field(max_length=500), AfterValidator(_check_source)]
Name = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


CheckedVia = Literal["live", "stored-copy"]
#: a sourced throughput is used only for workloads whose input/output ratio is within this factor
MIX_RATIO_LIMIT = 4.0
_META_FIELDS = frozenset({"source", "sources", "note", "checked", "checked_via"})


class _Facts(_Strict):
    """A group of facts from one document; ``sources`` cites per fact where they differ."""

    source: Source
    sources: dict[str, Source] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=1000)
    #: the day these facts were last compared with their source; null: never
    checked: dt.date | None = Field(default=None, strict=False)
    #: how: ``live`` (the source as published that day; the default when only ``checked``
    #: is given) or ``stored-copy`` (an archived copy of it, whose own date may be
    #: earlier: it shows the value was published, not that it is still current)
    checked_via: CheckedVia | None = None

    @model_validator(mode="after")
    def _per_fact_sources_name_facts(self) -> _Facts:
        fields = set(type(self).model_fields) - _META_FIELDS
        unknown = sorted(set(self.sources) - fields)
        if unknown:
            raise ValueError(f"sources names unknown facts: {', '.join(unknown)}")
        if self.checked is None and self.checked_via is not None:
            raise ValueError("`checked_via` says how a check was made: give its day in `checked`")
        return self

    def source_of(self, fact: str) -> str:
        return self.sources.get(fact, self.source)


class ReleaseFacts(_Facts):
    date: dt.date | None = Field(strict=False)


class OpennessFacts(_Facts):
    """Level on the five-level scale; levels 3+ need an OSI-approved licence (see docs)."""

    level: int = Field(ge=1, le=5)


#: ``"none"``: the licence has no user-count clause; null: not known
MauThreshold = int | Literal["none"] | None


#: what a licence or terms of service say about training other models on the outputs
TrainingUse = Literal[
    "allowed",  # no clause restricts it
    "attribution_required",  # allowed, with a name or notice on the trained model
    "derivative_inherits",  # the trained model is a derivative: the use restrictions pass on
    "no_competing",  # forbidden for models that compete with the provider
    "research_only",  # outputs may be used for research only
    "forbidden",  # forbidden (except to improve the same model family)
    "unknown",  # not recorded: treat as not permitted
]


class OutputUseFacts(_Facts):
    """What the terms say about using a model's outputs, above all to train other models."""

    training_other_models: TrainingUse
    name_prefix: str | None = Field(
        default=None,
        max_length=64,
        description="a model trained with the outputs and distributed must be named starting so",
    )
    attribution: str | None = Field(
        default=None, max_length=300, description="notice to display, verbatim"
    )
    derivatives_inherit_restrictions: bool | None = None
    commercial_outputs: bool | None = Field(
        default=None, description="may outputs be used commercially at all"
    )
    summary: str = Field(min_length=1, max_length=1000)


class LicenceFacts(_Facts):
    id: Name
    name: str = Field(min_length=1, max_length=200)
    weights_available: bool
    commercial_use: bool | None
    mau_threshold: MauThreshold = Field(
        description="monthly active users above which a separate licence is needed"
    )
    acceptable_use_policy: bool | None
    attribution: bool | None
    restrictions: list[str] = Field(default_factory=list, description="other key terms, verbatim")
    fine_tuning: bool | None = Field(default=None, description="may the weights be fine-tuned")
    redistribution: bool | None = Field(
        default=None, description="may fine-tuned weights be redistributed"
    )
    output_use: OutputUseFacts | None = None
    model_prefixes: list[str] = Field(
        default_factory=list,
        description="API model ids starting so fall under these terms (a provider's terms)",
    )


#: weight formats the planner sizes; ``mxfp4`` is 4-bit microscaling (4.25 bits per value)
Precision = Literal["bf16", "fp16", "fp8", "int8", "mxfp4", "int4"]


class ParamFacts(_Facts):
    """Billions of parameters. ``active_b`` equals ``total_b`` for dense models.

    ``native_precision`` is the format the publisher ships the weights in: the
    planner sizes a model at it unless told otherwise (gpt-oss ships MXFP4, so
    sizing it at int8 would double its memory).
    """

    total_b: float | None = Field(default=None, gt=0)
    active_b: float | None = Field(default=None, gt=0)
    moe: bool | None = None
    native_precision: Precision | None = None

    @model_validator(mode="after")
    def _active_within_total(self) -> ParamFacts:
        if self.total_b is not None and self.active_b is not None and self.active_b > self.total_b:
            raise ValueError("active_b cannot exceed total_b")
        known = None not in (self.total_b, self.active_b)
        if self.moe is False and known and self.active_b != self.total_b:
            raise ValueError("a dense model (moe: false) has active_b == total_b")
        return self


class ContextFacts(_Facts):
    tokens: int = Field(gt=0)


class ArchitectureFacts(_Facts):
    """The attention shape memory estimates need.

    ``kv_latent_dim`` is for multi-head latent attention (DeepSeek-V2/V3), whose
    cache holds one compressed vector per layer per token instead of K and V per
    head; when set, the KV cache uses it instead of ``2 × kv_heads × head_dim``.
    """

    layers: int | None = Field(default=None, gt=0)
    hidden_size: int | None = Field(default=None, gt=0)
    attention_heads: int | None = Field(default=None, gt=0)
    kv_heads: int | None = Field(default=None, gt=0)
    head_dim: int | None = Field(default=None, gt=0)
    kv_latent_dim: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _grouped_query_shape(self) -> ArchitectureFacts:
        h, kv = self.attention_heads, self.kv_heads
        if h is not None and kv is not None and (kv > h or h % kv):
            raise ValueError("kv_heads must divide attention_heads")
        return self


class PricingFacts(_Facts):
    """List price in USD per million tokens, as of ``as_of``."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)
    api_id: str | None = Field(default=None, max_length=128, description="model id on the API")
    as_of: dt.date | None = Field(default=None, strict=False)


ApiStatus = Literal["active", "deprecated", "retired"]


class ApiFacts(_Facts):
    """How to call the model on its provider's API, and whether that id still works.

    ``id`` is the pinned (dated) id to send; ``aliases`` are ids that pointed
    at it when recorded (``claude-sonnet-4-5`` -> ``claude-sonnet-4-5-20250929``).
    ``moving`` marks an ``id`` that is itself an alias whose model changes
    (``deepseek-chat``): its price and context move with it. A deprecated
    model retires on ``retires_on``; after that day it counts as retired.
    """

    id: str = Field(min_length=1, max_length=128)
    aliases: list[str] = Field(default_factory=list)
    moving: bool = False
    status: ApiStatus
    as_of: dt.date = Field(strict=False, description="the day the status was stated so")
    deprecated_on: dt.date | None = Field(default=None, strict=False)
    retires_on: dt.date | None = Field(default=None, strict=False)
    retired_on: dt.date | None = Field(default=None, strict=False)
    replacement: Name | None = None

    @model_validator(mode="after")
    def _dates(self) -> ApiFacts:
        if self.status == "retired" and self.replacement is None and self.note is None:
            raise ValueError("a retired model names its replacement (or says why not in `note`)")
        if self.status == "active" and (self.retired_on or self.deprecated_on):
            raise ValueError("an active model has no deprecation or retirement date")
        return self

    def status_on(self, day: dt.date) -> ApiStatus:
        """The status on ``day``: a deprecated model past its retirement date is retired."""
        if self.status == "deprecated" and self.retires_on is not None and day >= self.retires_on:
            return "retired"
        return self.status

    def ids(self) -> list[str]:
        return [self.id, *self.aliases]


class ThroughputFact(_Facts):
    """A sustained throughput: input + output tokens per second per GPU, at a stated mix.

    ``upper_bound`` is true for a best-case figure (a vendor's peak benchmark,
    or the roofline the planner computes): replicas sized on it are a minimum.
    """

    gpu: str = Field(min_length=1, max_length=64)
    quant: Precision
    tokens_per_second: float = Field(gt=0)
    engine: str | None = Field(default=None, max_length=64, description="vLLM 0.x, TRT-LLM ...")
    input_tokens: int | None = Field(default=None, gt=0, description="the mix measured at")
    output_tokens: int | None = Field(default=None, gt=0)
    upper_bound: bool = True
    #: the figure as published, when the source reports output tokens/s for a whole
    #: replica: ``tokens_per_second`` must then equal
    #: ``published_output_tps × (input + output) / output / published_gpus``
    published_output_tps: float | None = Field(default=None, gt=0)
    published_gpus: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _matches_published(self) -> ThroughputFact:
        if (self.published_output_tps is None) != (self.published_gpus is None):
            raise ValueError("published_output_tps and published_gpus go together")
        if self.published_output_tps is None or self.published_gpus is None:
            return self
        if self.input_tokens is None or self.output_tokens is None:
            raise ValueError("a published output figure needs its input/output mix")
        mix = (self.input_tokens + self.output_tokens) / self.output_tokens
        want = self.published_output_tps * mix / self.published_gpus
        if abs(self.tokens_per_second - want) > max(1.0, want * 0.005):
            raise ValueError(
                f"tokens_per_second {self.tokens_per_second:g} does not follow from the "
                f"published {self.published_output_tps:g} output tokens/s on "
                f"{self.published_gpus} GPU(s) at {self.input_tokens}/{self.output_tokens} "
                f"(expected {want:.1f})"
            )
        return self


class CatalogEntry(_Strict):
    name: Name
    aliases: list[Name] = Field(default_factory=list)
    organization: str = Field(min_length=1, max_length=100)
    source: Source = Field(description="where the model's name and organization are stated")
    release: ReleaseFacts | None = None
    openness: OpennessFacts
    licence: LicenceFacts
    params: ParamFacts | None = None
    context: ContextFacts | None = None
    architecture: ArchitectureFacts | None = None
    pricing: PricingFacts | None = None
    api: ApiFacts | None = None
    throughput: list[ThroughputFact] = Field(default_factory=list)
    #: overrides the licence's output terms where the model's own card says more
    output_use: OutputUseFacts | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CatalogEntry:
        closed = self.openness.level == 1
        if closed == self.licence.weights_available:
            raise ValueError("openness level 1 means weights are not available, and only level 1")
        if self.pricing is not None and self.api is None:
            raise ValueError("a priced model says how it is called: add `api` (id and status)")
        return self

    @property
    def native_precision(self) -> str | None:
        return None if self.params is None else self.params.native_precision

    def api_status(self, day: dt.date) -> ApiStatus | None:
        return None if self.api is None else self.api.status_on(day)

    @property
    def level(self) -> int:
        return self.openness.level

    @property
    def openness_enum(self) -> Openness:
        return Openness.from_level(self.openness.level)

    @property
    def self_hostable(self) -> bool:
        return self.licence.weights_available

    @property
    def output_terms(self) -> OutputUseFacts | None:
        return self.output_use or self.licence.output_use

    def throughput_for(
        self, gpu: str, quant: str, mix: tuple[float, float] | None = None
    ) -> ThroughputFact | None:
        """The figure for ``gpu`` at ``quant``; with several, the one measured nearest ``mix``.

        Throughput depends on the input/output mix (prefill-heavy work moves
        fewer tokens a second than decode-heavy work, and longer sequences
        fewer than short ones), so among figures for the same GPU and precision
        the one whose ratio and length are closest (on a log scale) is taken;
        a figure with no stated mix comes last. A figure whose input/output
        ratio is more than ``MIX_RATIO_LIMIT`` times off the workload's is not
        used at all: a prefill-heavy benchmark (4,000 in / 200 out) says little
        about a decode-heavy workload (500 in / 1,000 out), and would overstate it.
        """
        sixteen = {"bf16", "fp16"}  # the same size and speed: one figure serves both
        found = [
            t
            for t in self.throughput
            if t.gpu.lower() == gpu.lower() and (t.quant == quant or {t.quant, quant} <= sixteen)
        ]
        if not found:
            return None
        if mix is None or mix[0] <= 0 or mix[1] <= 0:
            return found[0]

        def ratio_off(t: ThroughputFact) -> float:
            if t.input_tokens is None or t.output_tokens is None:
                return 0.0  # no stated mix: the operator's own figure, taken as given
            return abs(math.log((t.input_tokens / t.output_tokens) / (mix[0] / mix[1])))

        def distance(t: ThroughputFact) -> float:
            if t.input_tokens is None or t.output_tokens is None:
                return math.inf
            length = math.log((t.input_tokens + t.output_tokens) / (mix[0] + mix[1]))
            return ratio_off(t) + abs(length)

        near = [t for t in found if ratio_off(t) <= math.log(MIX_RATIO_LIMIT)]
        return min(near, key=distance) if near else None


@dataclass(frozen=True)
class CatalogFilter:
    """Licence and openness terms a model must meet; None means no constraint.

    ``users`` is the deployer's monthly active users: a model qualifies only if
    its licence has no user clause or one above that number. An *unknown*
    licence term never qualifies — not knowing is not permission.
    """

    min_openness: int | None = None
    commercial: bool = False
    users: int | None = None
    licences: frozenset[str] = frozenset()
    self_hostable: bool | None = None
    no_acceptable_use_policy: bool = False

    def admits(self, e: CatalogEntry) -> bool:
        lic = e.licence
        if self.min_openness is not None and e.level < self.min_openness:
            return False
        if self.commercial and lic.commercial_use is not True:
            return False
        if self.users is not None:
            t = lic.mau_threshold
            if t is None or (t != "none" and t <= self.users):
                return False
        if self.licences and lic.id not in self.licences:
            return False
        if self.self_hostable is not None and e.self_hostable != self.self_hostable:
            return False
        return not (self.no_acceptable_use_policy and lic.acceptable_use_policy is not False)


@dataclass(frozen=True)
class Catalog:
    entries: tuple[CatalogEntry, ...]
    #: the shipped file's shared licence blocks (provider terms that cover API families)
    licences: tuple[LicenceFacts, ...] = ()

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return [e.name for e in self.entries]

    def find(self, name: str) -> CatalogEntry | None:
        """By name, alias, or an API id / API alias the entry records."""
        key = name.strip().lower()
        for e in self.entries:
            if e.name == key or key in e.aliases:
                return e
        for e in self.entries:
            if e.api is not None and key in (i.lower() for i in e.api.ids()):
                return e
        return None

    def get(self, name: str) -> CatalogEntry:
        e = self.find(name)
        if e is None:
            raise KeyError(f"no model {name!r} in the catalog")
        return e

    def filter(self, f: CatalogFilter) -> list[CatalogEntry]:
        return [e for e in self.entries if f.admits(e)]


def builtin_catalog_text() -> str:
    return resources.files("hybridgate").joinpath("data/catalog.yaml").read_text(encoding="utf-8")


def _validate(raw: Any, where: str) -> CatalogEntry:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a catalog entry must be a mapping")
    try:
        return CatalogEntry.model_validate(dict(raw))
    except ValidationError as exc:
        lines = [f"{where}: invalid catalog entry {raw.get('name', '?')!r}"]
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "<entry>"
            lines.append(f"  {loc}: {err['msg']}")
        raise ConfigError("\n".join(lines)) from exc


def parse_licences(raw: Any, where: str) -> list[LicenceFacts]:
    """The shared ``licences:`` blocks of a catalog file, validated like an entry's licence."""
    if not isinstance(raw, Mapping) or raw.get("licences") is None:
        return []
    blocks = raw["licences"]
    if not isinstance(blocks, list):
        raise ConfigError(f"{where}: `licences` must be a list")
    out = []
    for i, b in enumerate(blocks):
        try:
            out.append(LicenceFacts.model_validate(dict(b) if isinstance(b, Mapping) else b))
        except ValidationError as exc:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"{where}: licences[{i}]: {msgs}") from exc
    return out


def parse_entries(raw: Any, where: str) -> list[CatalogEntry]:
    """Validate a list of raw entries; names and aliases must be unique within it."""
    if isinstance(raw, Mapping):  # the shipped file: shared licence blocks, then models
        if not set(raw) <= {"licences", "models"} or "models" not in raw:
            raise ConfigError(f"{where}: expected top-level keys `models` (and `licences`)")
        raw = raw["models"]
    if not isinstance(raw, list):
        raise ConfigError(f"{where}: the catalog must be a list of entries")
    entries = [_validate(r, f"{where}[{i}]") for i, r in enumerate(raw)]
    seen: dict[str, str] = {}
    for e in entries:
        for key in (e.name, *e.aliases):
            if key in seen:
                raise ConfigError(f"{where}: {key!r} names both {seen[key]!r} and {e.name!r}")
            seen[key] = e.name
    return entries


def load_catalog(
    extra: Sequence[Mapping[str, Any]] = (), *, path: str | Path | None = None
) -> Catalog:
    """The shipped catalog (or ``path``) plus ``extra`` entries from the user's config.

    An extra entry with the name of a shipped one replaces it: the operator
    knows their negotiated price or their fine-tune better than we do.
    """
    if path is None:
        text, where = builtin_catalog_text(), "hybridgate/data/catalog.yaml"
    else:
        try:
            text, where = Path(path).read_text(encoding="utf-8"), str(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read catalog: {exc}") from exc
    try:
        base_raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    base = parse_entries(base_raw, where)
    licences = parse_licences(base_raw, where)
    added = parse_entries(list(extra), "config catalog") if extra else []
    replaced = {e.name for e in added}
    merged = [e for e in base if e.name not in replaced] + added
    names: dict[str, str] = {}
    for e in merged:
        for key in (e.name, *e.aliases):
            if key in names:
                raise ConfigError(f"catalog: {key!r} names both {names[key]!r} and {e.name!r}")
            names[key] = e.name
    return Catalog(tuple(merged), tuple(licences))
