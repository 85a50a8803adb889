"""Recommended bundles: which work goes to a frontier API, an open model or a small tuned one.

A profile is data: who the user is (licence needs, how many users, how
sensitive the data), what hardware they would run, and their typical
workloads with a tier each. :func:`recommend` picks, per tier, the first model
in the profile's preference list that the catalog says is allowed (licence,
user threshold, openness) and that fits the hardware, and explains each pick
with the facts that decided it. :func:`bundle_config` turns the result into a
starting ``hybridgate.yaml``.

Quality is the one judgment not derived from the catalog: the preference
lists put stronger models first, from their public reputation at release.
Prices for GPUs are stated assumptions, printed with the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hybridgate.planner.catalog import Catalog, CatalogEntry, CatalogFilter
from hybridgate.planner.gpus import find_gpu
from hybridgate.planner.hardware import MissingFact, ModelShape, estimate_memory, gpus_needed
from hybridgate.planner.tco import HOURS_PER_MONTH, SECONDS_PER_MONTH, ApiOption, Workload

Tier = Literal["frontier", "self_hosted", "small_tuned"]
ReasonKind = Literal["data_control", "quality", "cost_at_volume", "licence", "hardware"]
TIERS: tuple[Tier, ...] = ("frontier", "self_hosted", "small_tuned")


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    tier: Tier
    share: float  # of the profile's monthly requests
    input_tokens: int
    output_tokens: int
    why: str


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    volume: int  # requests per month, all workloads
    users: int  # monthly active users the licence must allow
    min_openness: int  # for models it runs itself
    gpu: str
    gpu_hourly_usd: float  # assumption, stated
    max_gpus: int
    quant: str
    workloads: tuple[WorkloadSpec, ...]
    frontier: tuple[str, ...] = ("claude-3-5-sonnet", "gpt-4o")
    #: the API a narrow task would otherwise go to: the small model's cost yardstick
    cheap_api: tuple[str, ...] = ("gpt-4o-mini", "gemini-1.5-pro")
    self_hosted: tuple[str, ...] = ("gpt-oss-120b", "qwen2.5-72b", "llama-3-70b", "mixtral-8x7b")
    small: tuple[str, ...] = ("qwen2.5-7b", "llama-3-8b", "mistral-7b", "olmo-2-7b")
    strict_classes: tuple[str, ...] = ()
    teams: tuple[str, ...] = ("default",)
    team_budget_usd: float | None = None
    strong_share: float = 0.3
    #: the small tuned model gets its own, smaller card (assumption, stated)
    small_gpu: str = "L4"
    small_gpu_hourly_usd: float = 0.8

    def gpu_for(self, tier: Tier) -> tuple[str, float]:
        if tier == "small_tuned":
            return self.small_gpu, self.small_gpu_hourly_usd
        return self.gpu, self.gpu_hourly_usd


_W = WorkloadSpec
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="solo",
            summary="one developer or a very small team, low volume, one workstation GPU",
            volume=20_000,
            users=1,
            min_openness=2,
            gpu="RTX 4090",
            gpu_hourly_usd=0.0,
            max_gpus=1,
            quant="int4",
            workloads=(
                _W("hard reasoning and code", "frontier", 0.4, 3000, 800, "quality matters most"),
                _W("private notes and drafts", "self_hosted", 0.4, 1500, 400, "stays on the box"),
                _W("autocomplete and tagging", "small_tuned", 0.2, 500, 50, "narrow and frequent"),
            ),
            self_hosted=("gpt-oss-20b", "qwen2.5-7b", "llama-3-8b", "mistral-7b"),
            small=("qwen2.5-7b", "llama-3-8b", "mistral-7b"),
            team_budget_usd=50.0,
            strong_share=0.5,
            small_gpu="RTX 4090",
            small_gpu_hourly_usd=0.0,
        ),
        Profile(
            name="midsize",
            summary="a 50–500 person company: internal assistants, documents, some sensitive data",
            volume=500_000,
            users=500,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=2,
            quant="int4",
            workloads=(
                _W("hard analysis and code", "frontier", 0.2, 3000, 800, "quality matters most"),
                _W("internal documents and chat", "self_hosted", 0.6, 2000, 400, "bulk, internal"),
                _W("classification and extraction", "small_tuned", 0.2, 800, 60, "narrow, tuned"),
            ),
            teams=("engineering", "operations", "sales"),
            team_budget_usd=2_000.0,
        ),
        Profile(
            name="regulated",
            summary="health, finance or public sector: personal data must not leave, audits",
            volume=1_000_000,
            users=5_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=4,
            quant="int8",
            workloads=(
                _W("public research, no personal data", "frontier", 0.1, 3000, 800, "quality"),
                _W("case files and records", "self_hosted", 0.7, 3000, 500, "personal data"),
                _W("form extraction and coding", "small_tuned", 0.2, 1000, 80, "narrow, tuned"),
            ),
            self_hosted=("gpt-oss-120b", "mixtral-8x7b", "olmo-2-13b"),
            small=("qwen2.5-7b", "olmo-2-7b", "mistral-7b"),
            strict_classes=("person", "contact", "financial", "health", "government_id"),
            teams=("clinical", "back-office"),
            team_budget_usd=3_000.0,
            strong_share=0.1,
        ),
        Profile(
            name="consulting",
            summary="client work: each client's material is confidential, costs billed per client",
            volume=300_000,
            users=200,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=2,
            quant="int4",
            workloads=(
                _W("public research and writing", "frontier", 0.4, 3000, 1000, "quality"),
                _W("client documents", "self_hosted", 0.5, 4000, 600, "client confidentiality"),
                _W("timesheets and tagging", "small_tuned", 0.1, 600, 40, "narrow, tuned"),
            ),
            strict_classes=("org_confidential", "person"),
            teams=("client-a", "client-b", "internal"),
            team_budget_usd=1_500.0,
            strong_share=0.4,
        ),
        Profile(
            name="product",
            summary="an LLM feature inside a product with many end users: cost at volume, licence",
            volume=20_000_000,
            users=50_000_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=8,
            quant="int8",
            workloads=(
                _W("hard user questions", "frontier", 0.05, 2000, 600, "quality on the long tail"),
                _W("general assistant", "self_hosted", 0.55, 1500, 400, "cost at volume"),
                _W("the product's narrow task", "small_tuned", 0.4, 800, 100, "volume, latency"),
            ),
            self_hosted=("gpt-oss-120b", "deepseek-r1", "mixtral-8x7b", "qwen2.5-72b"),
            small=("qwen2.5-7b", "mistral-7b", "gpt-oss-20b", "llama-3-8b"),
            teams=("product",),
            team_budget_usd=None,
            strong_share=0.05,
        ),
    )
}


@dataclass(frozen=True)
class Reason:
    kind: ReasonKind
    text: str


@dataclass(frozen=True)
class Pick:
    tier: Tier
    model: CatalogEntry
    gpus: int | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class WorkloadPlan:
    workload: WorkloadSpec
    requests_per_month: float
    model: str
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Recommendation:
    profile: Profile
    volume: int
    picks: dict[Tier, Pick]
    workloads: tuple[WorkloadPlan, ...]
    assumptions: tuple[str, ...] = field(default=())
    #: licence ids the catalog marks non-commercial: the generated policy forbids them
    non_commercial: tuple[str, ...] = field(default=())


def _licence_reason(e: CatalogEntry, p: Profile) -> Reason:
    lic = e.licence
    t = lic.mau_threshold
    users = "no user threshold" if t == "none" else f"user threshold {t:,} > {p.users:,} users"
    return Reason(
        "licence",
        f"{lic.id}: commercial use allowed, {users}, openness level {e.level}"
        + (", acceptable-use policy applies" if lic.acceptable_use_policy else ""),
    )


def _pick_api(cat: Catalog, p: Profile, prefs: tuple[str, ...] | None = None) -> Pick:
    flt = CatalogFilter(commercial=True, users=p.users, self_hostable=False)
    for name in p.frontier if prefs is None else prefs:
        e = cat.find(name)
        if e is not None and flt.admits(e) and e.pricing is not None:
            pr = e.pricing
            return Pick(
                "frontier",
                e,
                None,
                (
                    Reason("quality", f"{e.name} is first in the profile's preference list"),
                    Reason(
                        "cost_at_volume",
                        f"${pr.input_per_mtok:g} in / ${pr.output_per_mtok:g} out per Mtok "
                        f"(catalog, as of {pr.as_of}): pay per use, no fixed cost",
                    ),
                    _licence_reason(e, p),
                ),
            )
    raise LookupError(f"profile {p.name}: no frontier model in the catalog meets its terms")


def _pick_open(cat: Catalog, p: Profile, tier: Tier, prefs: tuple[str, ...], cap: int) -> Pick:
    flt = CatalogFilter(
        min_openness=p.min_openness, commercial=True, users=p.users, self_hostable=True
    )
    gpu_name, _ = p.gpu_for(tier)
    gpu = find_gpu(gpu_name)
    skipped: list[str] = []
    for name in prefs:
        e = cat.find(name)
        if e is None:
            continue
        if not flt.admits(e):
            skipped.append(f"{e.name} (licence/openness)")
            continue
        try:
            est = estimate_memory(ModelShape.from_entry(e), p.quant, 8192, 8)
        except MissingFact:
            skipped.append(f"{e.name} (memory facts missing)")
            continue
        n = gpus_needed(est.variable_bytes, gpu, 1.0)
        if n is None or n > cap:
            skipped.append(f"{e.name} (needs more than {cap}× {gpu.name})")
            continue
        why_data = (
            "prompts and outputs stay on hardware you run"
            if tier == "self_hosted"
            else "a small model tuned (LoRA) on your own examples serves a narrow task cheaply"
        )
        reasons = [
            Reason("data_control", why_data),
            _licence_reason(e, p),
            Reason(
                "hardware",
                f"{p.quant} weights + KV for 8 sequences × 8K context ≈ "
                f"{est.total_bytes / 1024**3:.0f} GiB: {n}× {gpu.name}",
            ),
        ]
        if skipped:
            reasons.append(Reason("licence", "passed over: " + ", ".join(skipped)))
        return Pick(tier, e, n, tuple(reasons))
    raise LookupError(
        f"profile {p.name}: no {tier} model fits its terms and hardware ({', '.join(skipped)})"
    )


def recommend(cat: Catalog, profile: str, volume: int | None = None) -> Recommendation:
    if profile not in PROFILES:
        raise KeyError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    p = PROFILES[profile]
    vol = p.volume if volume is None else volume
    if vol < 0:
        raise ValueError("volume must not be negative")
    picks: dict[Tier, Pick] = {
        "frontier": _pick_api(cat, p),
        "self_hosted": _pick_open(cat, p, "self_hosted", p.self_hosted, p.max_gpus),
        "small_tuned": _pick_open(cat, p, "small_tuned", p.small, 1),
    }
    yardstick = {
        "self_hosted": picks["frontier"].model,
        "small_tuned": _pick_api(cat, p, p.cheap_api).model,
    }
    plans = []
    for w in p.workloads:
        pick = picks[w.tier]
        reqs = vol * w.share
        reasons = [Reason("quality" if w.tier == "frontier" else "data_control", w.why)]
        if w.tier != "frontier" and pick.gpus is not None:
            reasons.append(_cost_reason(p, w, reqs, yardstick[w.tier], pick))
        plans.append(WorkloadPlan(w, reqs, pick.model.name, tuple(reasons)))
    assumptions = (
        *(
            f"{tier} GPU: {g} at ${h:g} per GPU-hour, always on (730 h/month)"
            + (" — a GPU you already own" if h == 0 else "")
            for tier in ("self_hosted", "small_tuned")
            for g, h in [p.gpu_for(tier)]
        ),
        "self-hosting cost counts GPUs only and assumes one replica carries the load; "
        "compare the sustained tokens/s each workload needs with a measured figure "
        "(`hybridgate plan tco --self-host MODEL:tps=...`)",
        "the self-hosted model is priced against the frontier API it replaces, the small "
        "tuned model against the cheapest API in the profile's list",
        "quality ranking inside each tier is the profile's preference order, not a measurement",
    )
    non_commercial = sorted(
        {e.licence.id for e in cat.entries if e.licence.commercial_use is False}
    )
    return Recommendation(p, vol, picks, tuple(plans), assumptions, tuple(non_commercial))


def _cost_reason(
    p: Profile, w: WorkloadSpec, reqs: float, front: CatalogEntry, pick: Pick
) -> Reason:
    assert front.pricing is not None and pick.gpus is not None
    api = ApiOption(front.name, front.pricing.input_per_mtok, front.pricing.output_per_mtok, "")
    wl = Workload(reqs, w.input_tokens, w.output_tokens)
    api_monthly = reqs * api.cost_per_request(wl)
    gpu_name, hourly = p.gpu_for(w.tier)
    gpu_monthly = pick.gpus * hourly * HOURS_PER_MONTH
    c = api.cost_per_request(wl)
    if gpu_monthly <= api_monthly:
        verdict = "self-hosting is cheaper at this volume"
    elif c > 0:
        verdict = f"the API is cheaper below {gpu_monthly / c:,.0f} requests/month"
    else:
        verdict = "the API is cheaper"  # pragma: no cover - catalog prices are positive
    need = reqs * (w.input_tokens + w.output_tokens) / SECONDS_PER_MONTH
    return Reason(
        "cost_at_volume",
        f"{reqs:,.0f} requests/month on {front.name} ≈ ${api_monthly:,.0f}/month; "
        f"{pick.gpus}× {gpu_name} ≈ ${gpu_monthly:,.0f}/month: {verdict} "
        f"(if one replica sustains {need:,.0f} tokens/s)",
    )


def _provider(e: CatalogEntry) -> tuple[str, str] | None:
    org = e.organization.lower()
    if org == "openai":
        return "openai", "${OPENAI_API_KEY}"
    if org == "anthropic":
        return "anthropic", "${ANTHROPIC_API_KEY}"
    return None


def bundle_config(rec: Recommendation, *, home: str | None = None) -> dict[str, Any]:
    """A starting ``hybridgate.yaml`` as data; ``load_config`` accepts it (tests check)."""
    p = rec.profile
    front = rec.picks["frontier"].model
    prov = _provider(front)
    if prov is None:
        raise LookupError(f"{front.name}: no built-in provider for {front.organization}")
    assert front.pricing is not None
    selfm, small = rec.picks["self_hosted"].model, rec.picks["small_tuned"].model
    routes: list[dict[str, Any]] = [
        {
            "name": front.name,
            "provider": prov[0],
            "model": front.pricing.api_id or front.name,
            "api_key": prov[1],
            "location": "external",
            "licence": front.licence.id,
            "openness": front.openness_enum.value,
            "price": {
                "input_per_mtok": front.pricing.input_per_mtok,
                "output_per_mtok": front.pricing.output_per_mtok,
            },
        },
        _onprem_route(selfm, "${HYBRIDGATE_SELF_HOSTED_URL:-http://127.0.0.1:8000/v1}"),
        _onprem_route(small, "${HYBRIDGATE_SMALL_MODEL_URL:-http://127.0.0.1:8001/v1}", "-lora"),
    ]
    sname, tname = routes[1]["name"], routes[2]["name"]
    models: dict[str, Any] = {
        "auto": {
            "routes": [sname, front.name],
            "strategy": "quality",
            "strong": front.name,
            "weak": sname,
            "strong_share": p.strong_share,
        },
        "frontier": {"routes": [front.name], "strategy": "fixed"},
        "private": {"routes": [sname], "strategy": "fixed"},
        "small": {"routes": [tname, sname], "strategy": "fallback"},
    }
    classes = {c: "on_prem_only" for c in p.strict_classes}
    policy: dict[str, Any] = {"classes": {**_default_classes(), **classes}}
    if rec.non_commercial:
        policy["forbid"] = {"licences": list(rec.non_commercial)}
    data: dict[str, Any] = {
        "routes": routes,
        "models": models,
        "policy": policy,
    }
    if home is not None:
        data["home"] = home
    if p.team_budget_usd is not None:
        data["budgets"] = [
            {"scope": "team", "name": t, "usd_per_month": p.team_budget_usd} for t in p.teams
        ]
    return data


def _onprem_route(e: CatalogEntry, url: str, suffix: str = "") -> dict[str, Any]:
    return {
        "name": f"local/{e.name}{suffix}",
        "provider": "openai_compat",
        "base_url": url,
        "model": f"{e.name}{suffix}",
        "location": "on_prem",
        "licence": e.licence.id,
        "openness": e.openness_enum.value,
    }


def _default_classes() -> dict[str, str]:
    from hybridgate.policy.model import PolicyConfig

    return {k.value: v.value for k, v in PolicyConfig().classes.items()}


def render_yaml(rec: Recommendation, data: dict[str, Any]) -> str:
    import yaml

    head = [
        f"# hybridgate.yaml — starting point for the '{rec.profile.name}' profile",
        f"# {rec.profile.summary}",
        f"# volume assumed: {rec.volume:,} requests/month",
        "# Edit freely. Provider keys come from the environment (${...}); load_config fails",
        "# if one is unset. On-prem routes have no price yet: once you measure throughput, set",
        "# price.hourly_usd and price.tokens_per_second so routing and accounting see the cost.",
        *(f"# assumption: {a}" for a in rec.assumptions),
    ]
    for tier in TIERS:
        pk = rec.picks[tier]
        head.append(f"# {tier}: {pk.model.name}")
        head.extend(f"#   - {r.kind}: {r.text}" for r in pk.reasons)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(head) + "\n" + body
