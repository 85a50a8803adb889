"""Which catalog facts are due for re-checking, and which of a config's model ids no longer work.

Facts go stale: prices change, models retire, licences are revised. Every
fact group records ``checked`` — the day someone last compared it with its
source (``null``: never) — and prices record ``as_of``. :func:`stale_facts`
lists groups never checked or checked longer ago than the allowed age;
:func:`config_findings` lists the routes of a ``hybridgate.yaml`` that send a
retired or deprecated model id, with the replacement to use.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from hybridgate.planner.catalog import Catalog, CatalogEntry, _Facts
from hybridgate.planner.gpus import GPUS, Gpu

Severity = Literal["retired", "deprecated", "moving", "unknown"]


@dataclass(frozen=True)
class StaleFact:
    model: str  # entry name, or "licence:<id>" for a shared licence block
    group: str
    checked: dt.date | None
    age_days: int | None
    source: str
    note: str | None = None

    @property
    def reason(self) -> str:
        text = (
            "never compared with its source"
            if self.checked is None
            else f"checked {self.checked}, {self.age_days} days ago"
        )
        return text if self.note is None else f"{text}; {self.note}"


@dataclass(frozen=True)
class Finding:
    route: str
    model_id: str
    severity: Severity
    message: str


def _groups(e: CatalogEntry) -> Iterator[tuple[str, _Facts]]:
    for name in ("release", "openness", "licence", "params", "context", "architecture"):
        g = getattr(e, name)
        if g is not None:
            yield name, g
    if e.licence.output_use is not None:
        yield "licence.output_use", e.licence.output_use
    if e.output_use is not None:
        yield "output_use", e.output_use
    if e.pricing is not None:
        yield "pricing", e.pricing
    if e.api is not None:
        yield "api", e.api
    for i, t in enumerate(e.throughput):
        yield f"throughput[{i}]", t


@dataclass(frozen=True)
class CheckCounts:
    """How many fact groups were compared with their source, and how."""

    total: int
    live: int
    stored_copy: int

    @property
    def unchecked(self) -> int:
        return self.total - self.live - self.stored_copy


def check_counts(cat: Catalog, gpus: Sequence[Gpu] = GPUS) -> CheckCounts:
    """Fact groups of the catalog plus the GPU datasheet figures sizing rests on."""
    groups = [g for e in cat for _, g in _groups(e)]
    live = sum(1 for g in groups if g.checked is not None and g.checked_via != "stored-copy")
    live += sum(1 for g in gpus if g.checked is not None)
    stored = sum(1 for g in groups if g.checked is not None and g.checked_via == "stored-copy")
    return CheckCounts(len(groups) + len(gpus), live, stored)


def _gpu_facts(gpus: Sequence[Gpu], today: dt.date, max_age_days: int) -> list[StaleFact]:
    out = []
    for g in gpus:
        age = None if g.checked is None else (today - g.checked).days
        if age is None or age > max_age_days:
            src = g.source if g.tflops_source is None else f"{g.source}; {g.tflops_source}"
            out.append(StaleFact(f"gpu:{g.name}", "datasheet", g.checked, age, src))
    return out


def stale_facts(
    cat: Catalog, today: dt.date, max_age_days: int, gpus: Sequence[Gpu] = GPUS
) -> list[StaleFact]:
    """Fact groups never checked, or checked more than ``max_age_days`` before ``today``.

    A price is also stale when its ``as_of`` is older than the allowed age,
    even if someone re-checked other facts of the same group. The GPU
    datasheet figures (memory, bandwidth, tensor rate) are listed too, as
    ``gpu:<name>``: replica counts rest on them as much as on the catalog.
    """
    out: list[StaleFact] = []
    for e in cat:
        for name, g in _groups(e):
            checked = g.checked
            age = None if checked is None else (today - checked).days
            price_age = None
            if name == "pricing" and e.pricing is not None and e.pricing.as_of is not None:
                price_age = (today - e.pricing.as_of).days
            old_price = price_age is not None and price_age > max_age_days
            if checked is None or (age is not None and age > max_age_days) or old_price:
                note = (
                    f"price as of {e.pricing.as_of}"
                    if old_price and e.pricing is not None
                    else None
                )
                out.append(StaleFact(e.name, name, checked, age, g.source, note))
    return out + _gpu_facts(gpus, today, max_age_days)


def live_replacement(cat: Catalog, e: CatalogEntry, today: dt.date) -> CatalogEntry | None:
    """The replacement to suggest for ``e``: its ``replacement``, followed while that retired too.

    Claude 3.5 Sonnet's replacement, Claude Sonnet 4.5, has itself retired: the
    suggestion follows the chain to the first catalogued model still active (or
    the last one known, if the chain ends in the catalog's gaps).
    """
    seen = {e.name}
    cur = e
    while cur.api is not None and cur.api.replacement:
        nxt = cat.find(cur.api.replacement)
        if nxt is None or nxt.name in seen:
            break
        seen.add(nxt.name)
        cur = nxt
        if cur.api is None or cur.api.status_on(today) == "active":
            break
    return None if cur is e else cur


def config_findings(cat: Catalog, raw: Mapping[str, Any], today: dt.date) -> list[Finding]:
    """Routes in a config (parsed YAML) whose model id is retired, deprecated or a moving alias.

    Only external routes are judged: an on-prem route's model is whatever the
    operator serves. An external id the catalog does not know is reported as
    ``unknown`` (its status cannot be vouched for).
    """
    routes = raw.get("routes") if isinstance(raw, Mapping) else None
    if not isinstance(routes, Sequence) or isinstance(routes, str):
        return []
    out: list[Finding] = []
    for r in routes:
        if not isinstance(r, Mapping) or r.get("location") != "external":
            continue
        name, model = str(r.get("name", "?")), str(r.get("model", ""))
        e = cat.find(model)
        if e is None or e.api is None:
            out.append(Finding(name, model, "unknown", f"{model}: not in the catalog"))
            continue
        api = e.api
        status = api.status_on(today)
        repl = live_replacement(cat, e, today)
        use = (
            f"; use {repl.name} ({repl.api.id})"
            if repl is not None and repl.api is not None
            else f"; use {api.replacement}"
            if api.replacement
            else ""
        )
        if status == "retired":
            when = api.retired_on or api.retires_on
            msg = f"{model}: retired on {when} — requests fail{use}"
            out.append(Finding(name, model, "retired", msg))
        elif status == "deprecated":
            msg = f"{model}: deprecated, retires on {api.retires_on or 'an unannounced date'}{use}"
            out.append(Finding(name, model, "deprecated", msg))
        elif api.moving or model.lower() != api.id.lower():
            what = "a moving alias" if api.moving else f"an alias of {api.id}"
            msg = f"{model}: {what} — the model behind it (and its price) can change"
            out.append(Finding(name, model, "moving", msg))
    return out
