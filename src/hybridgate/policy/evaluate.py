"""Where a request's data may go: a pure function of scan, principal, routes and policy.

The decision is computed in three independent passes so each can be reasoned
about (and tested) on its own:

1. **action** - the strictest per-class action over every class found, plus
   ``unknown`` when the scan is incomplete (an unscanned part is treated as
   sensitive, never as clean);
2. **permitted** - the candidate routes minus those the ``forbid`` rules, the
   per-class residency rules and the action exclude, in the candidates' order;
3. **masks** - the findings to replace with placeholders, only when the final
   action is ``redact``. A class found where a mask cannot go (an object key,
   a number, an id or enum the protocol needs verbatim) is not redacted: it
   gets the stricter of ``on_prem_only`` and the policy's ``unknown`` action.

Reasons name classes, rules and routes, never the sensitive values themselves:
they end up in error messages, logs and receipts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Literal

from hybridgate.policy.model import (
    ACTION_SEVERITY,
    Action,
    Openness,
    PolicyConfig,
    Residency,
    RouteRestrictions,
)
from hybridgate.scan.findings import DataClass, RequestScan

if TYPE_CHECKING:  # config imports the policy schema; avoid the import cycle at runtime
    from hybridgate.config import RouteConfig


@dataclass(frozen=True)
class RouteFacts:
    """What policy rules can see of a route: where it runs and under which terms."""

    name: str
    provider: str
    location: Literal["on_prem", "external"]
    region: str | None
    licence: str | None
    openness: Openness | None

    @classmethod
    def from_route(cls, r: RouteConfig) -> RouteFacts:
        return cls(
            name=r.name,
            provider=r.provider,
            location=r.location,
            region=r.region,
            licence=r.licence,
            openness=r.openness,
        )


@dataclass(frozen=True)
class Principal:
    """Who is asking; selects the team and key overrides."""

    key_id: str | None
    team: str | None


@dataclass(frozen=True)
class MaskTarget:
    """One span to replace: ``segment`` indexes the request's segment list."""

    segment: int
    start: int
    end: int
    type: str


@dataclass(frozen=True)
class Decision:
    action: Action
    permitted: tuple[str, ...]  # route names, in the candidates' order
    masks: tuple[MaskTarget, ...]
    reasons: tuple[str, ...]
    data_classes: tuple[str, ...]  # sorted
    policy_hash: str
    log_prompts: bool


@dataclass(frozen=True)
class EffectivePolicy:
    """The base policy with the principal's team then key override applied.

    ``sources`` records where each class rule came from, so reasons can point
    an operator at the exact line that decided.
    """

    classes: dict[DataClass, Action]
    sources: dict[DataClass, str]
    residency: dict[DataClass, Residency]
    residency_sources: dict[DataClass, str]
    forbid: RouteRestrictions
    forbid_source: str
    unknown: Action
    unknown_source: str
    log_prompts: bool


def effective_policy(policy: PolicyConfig, principal: Principal) -> EffectivePolicy:
    """Apply overrides per field: team first, then key (the more specific wins)."""
    classes = dict(policy.classes)
    sources = {c: f"policy.classes.{c.value}" for c in classes}
    residency = dict(policy.residency)
    res_sources = {c: f"policy.residency.{c.value}" for c in residency}
    forbid, forbid_source = policy.forbid, "policy.forbid"
    unknown, unknown_source = policy.unknown, "policy.unknown"
    log_prompts = policy.log_prompts
    layers = []
    if principal.team is not None and principal.team in policy.teams:
        layers.append((f"policy.teams.{principal.team}", policy.teams[principal.team]))
    if principal.key_id is not None and principal.key_id in policy.keys:
        layers.append((f"policy.keys.{principal.key_id}", policy.keys[principal.key_id]))
    for prefix, ov in layers:
        for c, a in ov.classes.items():
            classes[c] = a
            sources[c] = f"{prefix}.classes.{c.value}"
        for c, r in ov.residency.items():
            residency[c] = r
            res_sources[c] = f"{prefix}.residency.{c.value}"
        if ov.forbid is not None:
            forbid, forbid_source = ov.forbid, f"{prefix}.forbid"
        if ov.unknown is not None:
            unknown, unknown_source = ov.unknown, f"{prefix}.unknown"
        if ov.log_prompts is not None:
            log_prompts = ov.log_prompts
    return EffectivePolicy(
        classes=classes,
        sources=sources,
        residency=residency,
        residency_sources=res_sources,
        forbid=forbid,
        forbid_source=forbid_source,
        unknown=unknown,
        unknown_source=unknown_source,
        log_prompts=log_prompts,
    )


def _stricter(a: Action, b: Action) -> Action:
    return a if ACTION_SEVERITY[a] >= ACTION_SEVERITY[b] else b


def _fold(value: str) -> str:
    return value.casefold()


def forbidden_because(route: RouteFacts, forbid: RouteRestrictions) -> str | None:
    """Why ``forbid`` excludes the route, or None. Unknown openness fails a minimum."""
    if route.name in forbid.routes:
        return "route name is forbidden"
    if _fold(route.provider) in {_fold(p) for p in forbid.providers}:
        return f"provider {route.provider} is forbidden"
    if forbid.licences:
        # A route without a declared licence cannot be shown not to carry a forbidden
        # one: fail closed; the operator fixes it by declaring the route's licence.
        if route.licence is None:
            return "licence undeclared while some licences are forbidden"
        if _fold(route.licence) in {_fold(x) for x in forbid.licences}:
            return f"licence {route.licence} is forbidden"
    if forbid.min_openness is not None:
        need = forbid.min_openness
        if route.openness is None:
            return f"openness unknown, {need.value} or more open required"
        if route.openness.level < need.level:
            return f"openness {route.openness.value} is below {need.value}"
    return None


def _region_allowed(region: str | None, patterns: list[str]) -> bool:
    if region is None:
        return False
    r = _fold(region)
    return any(fnmatchcase(r, _fold(p)) for p in patterns)


def residency_violation(route: RouteFacts, res: Residency) -> str | None:
    """Why a residency rule excludes the route, or None. An unknown region fails a region rule."""
    if res.locations and route.location not in res.locations:
        return f"location {route.location} not in {sorted(res.locations)}"
    if res.providers and _fold(route.provider) not in {_fold(p) for p in res.providers}:
        return f"provider {route.provider} not in {sorted(res.providers)}"
    if res.regions and not _region_allowed(route.region, res.regions):
        where = route.region if route.region is not None else "undeclared"
        return f"region {where} not in {sorted(res.regions)}"
    return None


def evaluate(
    scan: RequestScan,
    principal: Principal,
    candidates: Sequence[RouteFacts],
    policy: PolicyConfig,
    policy_hash: str,
) -> Decision:
    """Decide action, permitted routes and masks for one request. Pure, no I/O."""
    eff = effective_policy(policy, principal)
    found = sorted(scan.data_classes, key=lambda c: c.value)
    unmaskable = scan.unmaskable_classes
    reasons: list[str] = []

    action = Action.ALLOW
    class_action: dict[DataClass, Action] = {}
    for c in found:
        if c in eff.classes:
            a, src = eff.classes[c], eff.sources[c]
        else:
            a, src = eff.unknown, f"{eff.unknown_source} (no rule for class {c.value})"
        if a is Action.REDACT and c in unmaskable:
            # Found where a mask cannot go (a key, a number, an id): the value
            # would leave as is, so the request is confined or refused instead.
            a = _stricter(Action.ON_PREM_ONLY, eff.unknown)
            src = f"{src}; found in a field that cannot be masked, {eff.unknown_source}"
        class_action[c] = a
        action = _stricter(action, a)
        reasons.append(f"class {c.value}: {a.value} ({src})")
    incomplete = not scan.complete or bool(scan.unscannable)
    if incomplete:
        action = _stricter(action, eff.unknown)
        parts = []
        if not scan.complete:
            parts.append(f"{len(scan.errors)} scanner error(s)")
        if scan.unscannable:
            parts.append(f"{len(scan.unscannable)} unscannable part(s)")
        reasons.append(
            f"scan incomplete ({', '.join(parts) or 'unknown cause'}): "
            f"{eff.unknown.value} ({eff.unknown_source}, fail closed)"
        )
    if not found and not incomplete:
        reasons.append("no sensitive data found")

    data_classes = tuple(c.value for c in found)
    if action is Action.BLOCK:
        reasons.append("blocked: nothing is sent to any route")
        return Decision(
            action=action,
            permitted=(),
            masks=(),
            reasons=tuple(reasons),
            data_classes=data_classes,
            policy_hash=policy_hash,
            log_prompts=eff.log_prompts,
        )

    permitted: list[str] = []
    for route in candidates:
        why = _exclusion(route, eff, found, action)
        if why is None:
            permitted.append(route.name)
        else:
            reasons.append(f"route {route.name} excluded: {why}")
    if not permitted:
        names = ", ".join(r.name for r in candidates) or "none"
        reasons.append(f"no permitted route among candidates ({names})")

    masks: tuple[MaskTarget, ...] = ()
    if action is Action.REDACT:
        masks = tuple(
            MaskTarget(segment=sf.segment, start=f.start, end=f.end, type=f.type)
            for sf in scan.segments
            if sf.maskable
            for f in sf.findings
            if class_action.get(f.data_class) is Action.REDACT
        )
        if masks:
            reasons.append(f"{len(masks)} finding(s) masked with placeholders before sending")

    return Decision(
        action=action,
        permitted=tuple(permitted),
        masks=masks,
        reasons=tuple(reasons),
        data_classes=data_classes,
        policy_hash=policy_hash,
        log_prompts=eff.log_prompts,
    )


def _exclusion(
    route: RouteFacts, eff: EffectivePolicy, found: list[DataClass], action: Action
) -> str | None:
    why = forbidden_because(route, eff.forbid)
    if why is not None:
        return f"{why} ({eff.forbid_source})"
    for c in found:
        res = eff.residency.get(c)
        if res is None:
            continue
        why = residency_violation(route, res)
        if why is not None:
            return f"class {c.value} residency: {why} ({eff.residency_sources[c]})"
    if action is Action.ON_PREM_ONLY and route.location != "on_prem":
        return "external route, request is on-prem only"
    return None
