"""A recommendation as a starting ``hybridgate.yaml``: routes only where the numbers sent work.

Every external route carries the provider's pinned model id, checked active
in the catalog on the day of the recommendation (a retired or deprecated id
is never written); on-prem routes carry the price per hour of their replica
and the throughput it is spread over, so routing and accounting see their
cost from the first request. Under ``no_external`` the file has no external
route at all, and every data class is on-prem only.
"""

from __future__ import annotations

from typing import Any

from hybridgate.planner.providers import api_provider
from hybridgate.planner.recommend import Pick, Recommendation, RetiredModel, _retired_message
from hybridgate.scan.findings import DataClass

UTILIZATION = 0.5


def _api_route(rec: Recommendation, pk: Pick) -> dict[str, Any]:
    e = pk.model
    msg = _retired_message(e, rec.today)
    if msg is not None:  # recommend never picks one; this guards the file itself
        raise RetiredModel(msg)
    prov = api_provider(e)
    if prov is None or e.pricing is None or e.api is None:
        raise LookupError(f"{e.name}: no built-in provider for {e.organization}")
    route: dict[str, Any] = {
        "name": e.name,
        "provider": prov[0],
        "model": e.api.id,
        "api_key": prov[1],
        "location": "external",
        "licence": e.licence.id,
        "openness": e.openness_enum.value,
        "price": {
            "input_per_mtok": e.pricing.input_per_mtok,
            "output_per_mtok": e.pricing.output_per_mtok,
        },
    }
    if prov[2] is not None:
        route["base_url"] = prov[2]
    return route


def _onprem_route(rec: Recommendation, pk: Pick, url: str, suffix: str = "") -> dict[str, Any]:
    e = pk.model
    route: dict[str, Any] = {
        "name": f"local/{e.name}{suffix}",
        "provider": "openai_compat",
        "base_url": url,
        "model": f"{e.name}{suffix}",
        "location": "on_prem",
        "licence": e.licence.id,
        "openness": e.openness_enum.value,
    }
    tp, gpus = pk.throughput, pk.gpus
    if tp is not None and gpus is not None:
        _, hourly = rec.profile.gpu_for(pk.tier)
        if hourly > 0:
            route["price"] = {
                "hourly_usd": round(hourly * gpus, 4),
                "tokens_per_second": round(tp.tokens_per_second_per_gpu * gpus * UTILIZATION, 1),
            }
    return route


def bundle_config(rec: Recommendation, *, home: str | None = None) -> dict[str, Any]:
    """A starting ``hybridgate.yaml`` as data; ``load_config`` accepts it (tests check)."""
    p = rec.profile
    routes: list[dict[str, Any]] = []
    route_of: dict[str, str] = {}  # catalog model name -> route name
    for key in ("frontier", "cheap_api"):
        pk = rec.picks.get(key)
        if pk is not None and rec.used(key) and pk.model.name not in route_of:
            r = _api_route(rec, pk)
            routes.append(r)
            route_of[pk.model.name] = r["name"]
    selfp, small = rec.picks.get("self_hosted"), rec.picks.get("small_tuned")
    if selfp is not None and rec.used("self_hosted"):
        r = _onprem_route(rec, selfp, "${HYBRIDGATE_SELF_HOSTED_URL:-http://127.0.0.1:8000/v1}")
        routes.append(r)
        route_of[selfp.model.name] = r["name"]
    if small is not None and rec.used("small_tuned") and small.model.name not in route_of:
        r = _onprem_route(
            rec, small, "${HYBRIDGATE_SMALL_MODEL_URL:-http://127.0.0.1:8001/v1}", "-lora"
        )
        routes.append(r)
        route_of[small.model.name] = r["name"]
    tier_route: dict[str, str] = {}
    for wp in rec.workloads:
        tier_route.setdefault(wp.workload.tier, route_of[wp.model])
    names = {"frontier": "frontier", "self_hosted": "general", "small_tuned": "small"}
    models: dict[str, Any] = {
        names[t]: {"routes": [r], "strategy": "fixed"} for t, r in tier_route.items()
    }
    strong, weak = tier_route.get("frontier"), tier_route.get("self_hosted")
    if strong and weak and strong != weak:
        models["auto"] = {
            "routes": [weak, strong],
            "strategy": "quality",
            "strong": strong,
            "weak": weak,
            "strong_share": p.strong_share,
        }
    else:
        models["auto"] = {"routes": [strong or weak or routes[0]["name"]], "strategy": "fixed"}
    from hybridgate.policy.model import PolicyConfig

    classes = {k.value: v.value for k, v in PolicyConfig().classes.items()}
    strict = (
        [d.value for d in DataClass if d is not DataClass.SECRET]
        if rec.no_external
        else list(p.strict_classes)
    )
    classes.update({c: "on_prem_only" for c in strict})
    policy: dict[str, Any] = {"classes": classes}
    if rec.non_commercial:
        policy["forbid"] = {"licences": list(rec.non_commercial)}
    data: dict[str, Any] = {"routes": routes, "models": models, "policy": policy}
    if home is not None:
        data["home"] = home
    if p.team_budget_usd is not None:
        data["budgets"] = [
            {"scope": "team", "name": t, "usd_per_month": p.team_budget_usd} for t in p.teams
        ]
    return data


def render_yaml(rec: Recommendation, data: dict[str, Any]) -> str:
    import yaml

    head = [
        f"# hybridgate.yaml — starting point for the '{rec.profile.name}' profile",
        f"# {rec.profile.summary}",
        f"# volume assumed: {rec.volume:,} requests/month; API statuses as of {rec.today}",
        "# Edit freely. Provider keys come from the environment (${...}); load_config fails",
        "# if one is unset. On-prem prices spread the replica's hourly cost over half its",
        "# throughput ceiling: replace tokens_per_second with your measured figure.",
        *(f"# assumption: {a}" for a in rec.assumptions),
    ]
    if rec.no_external:
        head.append("# residency: no external route; every data class is on-prem only")
    elif not any(wp.destination == "self_hosted" for wp in rec.workloads):
        head.append(
            "# no on-prem route: requests whose data classes are on_prem_only are refused "
            "(fail closed) until you add one"
        )
    for wp in rec.workloads:
        head.append(
            f"# workload '{wp.workload.name}' ({wp.requests_per_month:,.0f} req/month) -> "
            f"{wp.model} ({wp.destination})"
        )
        head.extend(f"#   - {r.kind}: {r.text}" for r in wp.reasons)
    for key, pk in rec.picks.items():
        head.append(f"# {key}: {pk.model.name}")
        head.extend(f"#   - {r.kind}: {r.text}" for r in pk.reasons)
    body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(head) + "\n" + body
