"""Recommendations: where each workload should run, decided by its own numbers.

For a profile (:mod:`hybridgate.planner.profiles`) at the user's volume,
:func:`recommend` picks per tier the first model in the profile's preference
list that the catalog allows (an *active* API id; licence, user threshold,
openness; fine-tuning and redistribution rights for the tuned tier) and that
fits the hardware at its native precision. Then each workload is costed
exactly as ``hybridgate plan tco`` would cost it — the same
:func:`hybridgate.planner.tco.tco` on the same options, replicas sized from
throughput (measured, catalog, or the roofline ceiling) — and goes where the
numbers say:

* data that must stay, or ``no_external``: self-hosted, whatever the cost;
* frontier-quality work: the frontier API (quality is the verdict);
* everything else: the cheaper of the API and self-hosting at this volume.

:mod:`hybridgate.planner.bundle` turns the result into a ``hybridgate.yaml``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from hybridgate.planner.catalog import Catalog, CatalogEntry, CatalogFilter
from hybridgate.planner.check import live_replacement
from hybridgate.planner.gpus import Gpu, find_gpu
from hybridgate.planner.hardware import MissingFact, resolve_precision
from hybridgate.planner.profiles import PROFILES, TIERS, Profile, Tier, WorkloadSpec
from hybridgate.planner.providers import api_provider
from hybridgate.planner.tco import ApiOption, SelfHostOption, Workload, tco
from hybridgate.planner.terms import output_use
from hybridgate.planner.throughput import (
    Throughput,
    best_throughput,
    measured,
    replica_gpus,
)

__all__ = [
    "PROFILES",
    "TIERS",
    "Constraints",
    "Pick",
    "Recommendation",
    "RetiredModel",
    "WorkloadPlan",
    "recommend",
]

ReasonKind = Literal["data_control", "quality", "cost_at_volume", "licence", "hardware", "status"]
Destination = Literal["api", "self_hosted"]
#: fine-tuning cost model: epochs over the examples, and the fraction of peak FLOPs reached
FT_EPOCHS = 3
FT_MFU = 0.3


class RetiredModel(LookupError):
    """A model id the provider no longer serves (or is about to stop serving)."""


@dataclass(frozen=True)
class Constraints:
    """What the user requires; ``None`` keeps the profile's default."""

    no_external: bool | None = None
    fine_tune: bool | None = None
    redistribute: bool | None = None
    fine_tune_budget_usd: float | None = None
    fine_tune_examples: int | None = None
    max_latency_s: float | None = None
    precision: str = "native"
    frontier: str | None = None
    today: dt.date | None = None
    #: catalog model name -> measured tokens/s per GPU (from the user's config routes)
    measured_tps: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    text: str


@dataclass(frozen=True)
class Pick:
    tier: Tier
    model: CatalogEntry
    gpus: int | None  # per replica; None for an API
    reasons: tuple[Reason, ...]
    precision: str | None = None
    throughput: Throughput | None = None
    fine_tune_usd: float | None = None


@dataclass(frozen=True)
class WorkloadPlan:
    workload: WorkloadSpec
    requests_per_month: float
    model: str  # the catalog entry that serves it
    destination: Destination
    reasons: tuple[Reason, ...]
    api_model: str | None = None
    api_monthly_usd: float | None = None
    self_host_model: str | None = None
    self_host_monthly_usd: float | None = None
    replicas: int | None = None
    break_even_requests: float | None = None


@dataclass(frozen=True)
class Recommendation:
    profile: Profile
    volume: int
    today: dt.date
    no_external: bool
    #: "frontier" and "cheap_api" are APIs (absent under no_external); the rest self-hosted
    picks: dict[str, Pick]
    workloads: tuple[WorkloadPlan, ...]
    assumptions: tuple[str, ...] = field(default=())
    #: licence ids the catalog marks non-commercial: the generated policy forbids them
    non_commercial: tuple[str, ...] = field(default=())

    def used(self, key: str) -> bool:
        """Is the pick ``key`` the destination of some workload?"""
        pk = self.picks.get(key)
        return pk is not None and any(w.model == pk.model.name for w in self.workloads)


def _retired_message(e: CatalogEntry, today: dt.date) -> str | None:
    """Why ``e``'s API id must not be emitted, with its replacement; None if active."""
    api = e.api
    if api is None:
        return f"{e.name}: the catalog records no API id for it"
    status = api.status_on(today)
    if status == "active":
        return None
    when = (
        f"was retired on {api.retired_on or api.retires_on}"
        if status == "retired"
        else f"is deprecated and retires on {api.retires_on}"
    )
    repl = f"; use {api.replacement} instead" if api.replacement else ""
    return f"{e.name} ({api.id}) {when} (as of {api.as_of}, {api.source}){repl}"


def check_active(cat: Catalog, name: str, today: dt.date) -> CatalogEntry:
    """The catalog entry for an API model the user named; refuses a retired or deprecated one."""
    e = cat.find(name)
    if e is None:
        raise LookupError(f"no model {name!r} in the catalog")
    if e.self_hostable:
        raise LookupError(f"{e.name} is an open-weight model, not an API")
    msg = _retired_message(e, today)
    if msg is not None:
        repl = live_replacement(cat, e, today)
        if repl is not None and repl.api is not None:
            if e.api is not None and repl.name != e.api.replacement:
                msg += f", which is no longer active either: use {repl.name}"
            msg += f" ({repl.api.id})"
            now = repl.api.status_on(today)
            if now != "active":
                msg += f"; {repl.name} is {now} too, and the catalog records no active successor"
        raise RetiredModel(msg)
    return e


def _licence_reason(e: CatalogEntry, p: Profile) -> Reason:
    lic = e.licence
    t = lic.mau_threshold
    users = "no user threshold" if t == "none" else f"user threshold {t:,} > {p.users:,} users"
    return Reason(
        "licence",
        f"{lic.id}: commercial use allowed, {users}, openness level {e.level}"
        + (", acceptable-use policy applies" if lic.acceptable_use_policy else ""),
    )


def _provider_supported(e: CatalogEntry) -> bool:
    return api_provider(e) is not None


def _pick_api(cat: Catalog, p: Profile, prefs: tuple[str, ...], today: dt.date, tier: Tier) -> Pick:
    flt = CatalogFilter(commercial=True, users=p.users, self_hostable=False)
    passed: list[str] = []
    for name in prefs:
        e = cat.find(name)
        if e is None or e.pricing is None:
            continue
        msg = _retired_message(e, today)
        if msg is not None:
            passed.append(msg)
            continue
        if not flt.admits(e) or not _provider_supported(e):
            passed.append(f"{e.name} (licence terms or no built-in provider)")
            continue
        assert e.api is not None
        pr = e.pricing
        reasons = [
            Reason("quality", f"{e.name} is the first usable model in the profile's list"),
            Reason(
                "status",
                f"{e.api.id}: active (as of {e.api.as_of}, {e.api.source})"
                + ("; a moving alias — its model and price change" if e.api.moving else ""),
            ),
            Reason(
                "cost_at_volume",
                f"${pr.input_per_mtok:g} in / ${pr.output_per_mtok:g} out per Mtok "
                f"(catalog, as of {pr.as_of or 'an unstated date'}): pay per use, no fixed cost",
            ),
            _licence_reason(e, p),
        ]
        if passed:
            reasons.append(Reason("status", "passed over: " + "; ".join(passed)))
        return Pick(tier, e, None, tuple(reasons))
    raise LookupError(
        f"profile {p.name}: no active API model in its list meets its terms"
        + (f" ({'; '.join(passed)})" if passed else "")
    )


def fine_tune_cost(
    e: CatalogEntry, gpu: Gpu, hourly: float, examples: int, tokens_per_example: float
) -> tuple[float | None, str]:
    """One LoRA fine-tuning run: ``6 × params × tokens`` FLOPs at 30 % of the card's peak.

    6·N·T is the full-training estimate (forward + backward); LoRA still runs
    the backward pass through the frozen model, so it costs somewhat less.
    """
    p = e.params
    if p is None or p.total_b is None or gpu.tflops_16bit is None:
        return None, f"{e.name}: fine-tuning cost unknown (parameters or {gpu.name} rate missing)"
    tokens = examples * tokens_per_example * FT_EPOCHS
    flops = 6 * p.total_b * 1e9 * tokens
    hours = flops / (gpu.tflops_16bit * 1e12 * FT_MFU) / 3600
    usd = hours * hourly
    return usd, (
        f"fine-tuning ≈ 6 × {p.total_b:g}e9 params × {examples:,} examples × "
        f"{tokens_per_example:g} tokens × {FT_EPOCHS} epochs / ({gpu.tflops_16bit:g} TFLOPS × "
        f"{FT_MFU:g}) = {hours:,.1f} GPU-hours on {gpu.name} ≈ ${usd:,.0f}"
    )


def _pick_open(
    cat: Catalog,
    p: Profile,
    c: Constraints,
    tier: Tier,
    prefs: tuple[str, ...],
    cap: int,
    works: list[WorkloadSpec],
) -> Pick:
    flt = CatalogFilter(
        min_openness=p.min_openness, commercial=True, users=p.users, self_hostable=True
    )
    gpu_name, hourly = p.gpu_for(tier)
    gpu = find_gpu(gpu_name)
    w_in = max((w.input_tokens for w in works), default=1000)
    w_out = max((w.output_tokens for w in works), default=500)
    tuned = tier == "small_tuned" and bool(_flag(c.fine_tune, p.fine_tune))
    redistribute = tuned and bool(_flag(c.redistribute, p.redistribute))
    examples = c.fine_tune_examples or p.fine_tune_examples
    skipped: list[str] = []
    for name in prefs:
        e = cat.find(name)
        if e is None:
            continue
        if not flt.admits(e):
            skipped.append(f"{e.name} (licence/openness)")
            continue
        lic = e.licence
        if tuned and lic.fine_tuning is not True:
            skipped.append(f"{e.name} (licence does not permit fine-tuning)")
            continue
        if redistribute and lic.redistribution is not True:
            skipped.append(f"{e.name} (licence does not permit redistributing tuned weights)")
            continue
        try:
            precision, why = resolve_precision(e, c.precision)
            if e.name in c.measured_tps:
                n = replica_gpus(e, gpu, precision, w_in + w_out, 1)
                tp = measured(c.measured_tps[e.name], n, precision, "measured (your config)")
            else:
                tp = best_throughput(e, gpu, precision, w_in, w_out)
        except MissingFact as exc:
            skipped.append(f"{e.name} ({exc})")
            continue
        if tp.gpus_per_replica > cap:
            skipped.append(f"{e.name} (needs {tp.gpus_per_replica}× {gpu.name}, limit {cap})")
            continue
        stream = tp.stream_tokens_per_second
        if c.max_latency_s is not None and stream is not None:
            t = w_out / stream
            if t > c.max_latency_s:
                skipped.append(f"{e.name} ({w_out} tokens at ≤{stream:,.0f} tokens/s = {t:.1f} s)")
                continue
        ft_usd: float | None = None
        reasons = [
            Reason(
                "data_control",
                "prompts and outputs stay on hardware you run"
                if tier != "small_tuned"
                else "a small model tuned (LoRA) on your own examples serves a narrow task cheaply",
            ),
            _licence_reason(e, p),
            Reason(
                "hardware",
                f"sized at {why}: {tp.gpus_per_replica}× {gpu.name} per replica; "
                f"throughput {tp.describe()}",
            ),
        ]
        if tuned:
            ft_usd, text = fine_tune_cost(e, gpu, hourly, examples, w_in + w_out)
            if c.fine_tune_budget_usd is not None and (
                ft_usd is None or ft_usd > c.fine_tune_budget_usd
            ):
                skipped.append(f"{e.name} ({text}; budget ${c.fine_tune_budget_usd:,.0f})")
                continue
            rights = "fine-tuning permitted" + (
                ", tuned weights may be redistributed" if redistribute else ""
            )
            reasons.append(Reason("licence", f"{lic.id}: {rights}"))
            reasons.append(Reason("cost_at_volume", text))
        if skipped:
            reasons.append(Reason("licence", "passed over: " + ", ".join(skipped)))
        return Pick(tier, e, tp.gpus_per_replica, tuple(reasons), precision, tp, ft_usd)
    raise LookupError(
        f"profile {p.name}: no {tier} model fits its terms and hardware ({', '.join(skipped)})"
    )


def _usd(v: float) -> str:
    return f"${v:,.0f}" if v >= 100 else f"${v:,.2f}"


def _flag(value: bool | None, default: bool) -> bool:
    return default if value is None else value


def _host_option(p: Profile, pick: Pick, tier: Tier) -> SelfHostOption:
    assert pick.throughput is not None and pick.gpus is not None
    gpu_name, hourly = p.gpu_for(tier)
    tp = pick.throughput
    return SelfHostOption(
        name=f"self-host {pick.model.name}",
        model=pick.model.name,
        gpus_per_replica=pick.gpus,
        tokens_per_second_per_gpu=tp.tokens_per_second_per_gpu,
        throughput_source=tp.source,
        gpu_hourly_usd=hourly,
        setup_usd=pick.fine_tune_usd or 0.0,
        stream_tokens_per_second=tp.stream_tokens_per_second,
        gpu=gpu_name,
        throughput_upper_bound=tp.upper_bound,
    )


def _api_option(pick: Pick) -> ApiOption:
    e = pick.model
    assert e.pricing is not None
    pr = e.pricing
    when = pr.as_of or "an unstated date"
    return ApiOption(e.name, pr.input_per_mtok, pr.output_per_mtok, f"catalog, as of {when}")


def _decide(
    p: Profile,
    c: Constraints,
    w: WorkloadSpec,
    reqs: float,
    api: Pick | None,
    host: Pick | None,
    no_external: bool,
    unavailable: str,
) -> WorkloadPlan:
    host_tier: Tier = "small_tuned" if w.tier == "small_tuned" else "self_hosted"
    wl = Workload(reqs, w.input_tokens, w.output_tokens, p.peak_factor, c.max_latency_s)
    if host is None:
        if api is None or w.must_stay or no_external:  # pragma: no cover - recommend raised
            raise LookupError(f"{w.name}: nowhere to run it ({unavailable})")
        ac0 = tco(wl, [_api_option(api)], []).costs[0]
        return WorkloadPlan(
            workload=w,
            requests_per_month=reqs,
            model=api.model.name,
            destination="api",
            reasons=(
                Reason("hardware", f"no self-hosted model meets the constraints: {unavailable}"),
                Reason("cost_at_volume", f"{ac0.name}: {_usd(ac0.monthly_usd)}/month"),
            ),
            api_model=api.model.name,
            api_monthly_usd=ac0.monthly_usd,
        )
    h = _host_option(p, host, host_tier)
    apis = [] if api is None else [_api_option(api)]
    report = tco(wl, apis, [h])
    costs = {oc.kind: oc for oc in report.costs}
    hc = costs["self_host"]
    ac = costs.get("api")
    be = report.break_evens[0] if report.break_evens else None
    reasons: list[Reason] = []
    host_txt = (
        f"{h.name}: {hc.replicas} replica(s) × {h.gpus_per_replica}× {h.gpu} ≈ "
        f"{_usd(hc.monthly_usd)}/month"
        + (f" plus a one-off ${h.setup_usd:,.0f} to fine-tune" if h.setup_usd else "")
        + (" (replicas at least: throughput is an upper bound)" if h.throughput_upper_bound else "")
    )
    api_txt = "" if ac is None else f"{ac.name}: {_usd(ac.monthly_usd)}/month"
    if be is not None and be.first_volume is not None:
        be_txt = f"self-hosting pays from {be.first_volume:,.0f} requests/month"
    elif be is not None:
        be_txt = "self-hosting never pays at this token mix"
    else:
        be_txt = "no API to compare with"
    if w.must_stay or no_external or api is None:
        dest: Destination = "self_hosted"
        why = (
            "residency: nothing may go to an external API"
            if no_external
            else "its data must stay on hardware you run"
            if w.must_stay
            else "no API in the list is usable"
        )
        reasons.append(Reason("data_control", f"{why} ({w.why})"))
    elif w.tier == "frontier":
        dest = "api"
        reasons.append(Reason("quality", f"{w.why}: frontier quality decides, not cost"))
    else:
        assert ac is not None
        latency_bad = hc.latency_ok is False
        dest = "self_hosted" if hc.monthly_usd < ac.monthly_usd and not latency_bad else "api"
        verdict = (
            "self-hosting is cheaper at this volume"
            if hc.monthly_usd < ac.monthly_usd
            else "the API is cheaper at this volume"
        )
        if latency_bad:
            verdict += "; self-hosting misses the latency limit"
        reasons.append(Reason("data_control" if w.must_stay else "quality", w.why))
    cost_txt = "; ".join(t for t in (api_txt, host_txt) if t)
    if w.tier != "frontier" and ac is not None and not (w.must_stay or no_external):
        reasons.append(Reason("cost_at_volume", f"{cost_txt}: {verdict} ({be_txt})"))
    else:
        reasons.append(Reason("cost_at_volume", f"{cost_txt} ({be_txt})"))
    model = host.model.name if dest == "self_hosted" else (api.model.name if api else "")
    return WorkloadPlan(
        workload=w,
        requests_per_month=reqs,
        model=model,
        destination=dest,
        reasons=tuple(reasons),
        api_model=None if api is None else api.model.name,
        api_monthly_usd=None if ac is None else ac.monthly_usd,
        self_host_model=host.model.name,
        self_host_monthly_usd=hc.monthly_usd,
        replicas=hc.replicas,
        break_even_requests=None if be is None else be.first_volume,
    )


def _teacher_reason(cat: Catalog, picks: dict[str, Pick], no_external: bool) -> Reason:
    """Whose outputs may train the small model: the output-use terms decide."""
    order = ["self_hosted"] if no_external else ["frontier", "self_hosted"]
    lines = []
    for key in order:
        pk = picks.get(key)
        if pk is None:
            continue
        t = output_use(pk.model.name, cat)
        if t is None:
            lines.append(f"{pk.model.name}: output-use terms unknown — do not distil from it")
            continue
        ok = t.allows_training(commercial=True, competing=None)
        verdict = (
            "may be distilled"
            if ok
            else "may not be distilled into a commercial model"
            if ok is False
            else "distilling needs your judgment (the tuned model must not compete with it)"
        )
        obligations = "; ".join(t.obligations())
        lines.append(
            f"{pk.model.name}: {t.training_other_models} — {verdict}"
            + (f" ({obligations})" if obligations else "")
            + f" [{t.source}]"
        )
    return Reason("licence", "training data for the tuned model: " + " | ".join(lines))


def recommend(
    cat: Catalog,
    profile: str,
    volume: int | None = None,
    constraints: Constraints | None = None,
) -> Recommendation:
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    p = PROFILES[profile]
    c = constraints or Constraints()
    today = c.today or dt.date.today()
    vol = p.volume if volume is None else volume
    if vol < 0 or not math.isfinite(vol):
        raise ValueError("volume must not be negative")
    no_external = _flag(c.no_external, p.no_external)
    frontier_prefs = p.frontier
    if c.frontier is not None:
        chosen = check_active(cat, c.frontier, today)
        frontier_prefs = (chosen.name, *p.frontier)
    by_tier = {t: [w for w in p.workloads if w.tier == t] for t in TIERS}
    picks: dict[str, Pick] = {}
    if not no_external:
        picks["frontier"] = _pick_api(cat, p, frontier_prefs, today, "frontier")
        picks["cheap_api"] = _pick_api(cat, p, p.cheap_api, today, "small_tuned")
    big = by_tier["frontier"] + by_tier["self_hosted"]
    unavailable: dict[str, str] = {}
    for key, prefs, cap, works in (
        ("self_hosted", p.self_hosted, p.max_gpus, big),
        ("small_tuned", p.small, 1, by_tier["small_tuned"]),
    ):
        tier: Tier = "small_tuned" if key == "small_tuned" else "self_hosted"
        try:
            picks[key] = _pick_open(cat, p, c, tier, prefs, cap, works)
        except LookupError as exc:
            needed = no_external or any(w.must_stay for w in works)
            if needed:
                raise
            unavailable[key] = str(exc)
    if _flag(c.fine_tune, p.fine_tune) and "small_tuned" in picks:
        small = picks["small_tuned"]
        picks["small_tuned"] = Pick(
            small.tier,
            small.model,
            small.gpus,
            (*small.reasons, _teacher_reason(cat, picks, no_external)),
            small.precision,
            small.throughput,
            small.fine_tune_usd,
        )
    plans = []
    for w in p.workloads:
        reqs = vol * w.share
        key = "small_tuned" if w.tier == "small_tuned" else "self_hosted"
        api = picks.get("cheap_api" if key == "small_tuned" else "frontier")
        host = picks.get(key)
        plans.append(_decide(p, c, w, reqs, api, host, no_external, unavailable.get(key, "")))
    assumptions = (
        *(
            f"{tier} GPU: {g} at ${h:g} per GPU-hour, always on (730 h/month)"
            + (" — a GPU you already own" if h == 0 else "")
            for tier in ("self_hosted", "small_tuned")
            for g, h in [p.gpu_for(tier)]
        ),
        "each workload is costed alone, as `hybridgate plan tco` costs it (utilization 0.5, "
        f"peak factor {p.peak_factor:g}); workloads sharing a model share its replicas",
        "throughput: your measured figure when given (config routes' price.tokens_per_second), "
        "else the catalog's, else a roofline ceiling — then replica counts are a minimum",
        "self-hosting counts GPUs only: add operations and engineering in `plan tco` (ops=, eng=)",
        "a self-hosted or small model is priced against the API the work would otherwise use",
        "quality ranking inside each tier is the profile's preference order, not a measurement",
        f"API statuses as recorded in the catalog; run `hybridgate catalog check` (today {today})",
    )
    non_commercial = sorted(
        {e.licence.id for e in cat.entries if e.licence.commercial_use is False}
    )
    return Recommendation(
        p, vol, today, no_external, picks, tuple(plans), assumptions, tuple(non_commercial)
    )
