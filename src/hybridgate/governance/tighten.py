"""Does a new policy only tighten the old one? A mechanical, conservative check. Pure.

"Tighten only" means: every request the new policy lets reach a route, with
some data in clear, the old policy also let reach that route with at least
that data in clear; and every agent action the new rules allow (or hold) the
old rules allowed (or held). The check is sound and deliberately
conservative: when it cannot *show* a change is tighter, it reports it.

It compares, for every principal the policies distinguish (no team, every
named team, every named key, and each team with each key):

* **class actions and ``unknown``** by running the real evaluator on every
  combination of data classes, complete and incomplete scans, against an
  on-prem and an external probe route: the permitted routes must shrink and
  the masked classes must grow (``redact`` -> ``on_prem_only`` is *not*
  tighter: values that were masked would reach on-prem routes in clear);
* **forbid** rules as sets: nothing forbidden before may become allowed;
* **residency** per class: locations, providers and region patterns may only
  narrow (an emptied list means "anywhere" and is a widening);
* **log_prompts** may not turn on;
* **action rules** by alignment: the new list must arise from the old one by
  inserting ``deny`` rules, removing ``allow`` rules and lowering effects in
  place (``allow`` -> ``require_approval`` only for rules without conditions,
  because a held rule also matches when a condition cannot be evaluated);
  a reordering is reported, and the default may only become stricter.
"""

from __future__ import annotations

import itertools
from fnmatch import fnmatchcase

from hybridgate.policy.evaluate import Principal, RouteFacts, effective_policy, evaluate
from hybridgate.policy.model import ActionRule, PolicyConfig, PolicyOverride, RouteRestrictions
from hybridgate.scan.findings import DataClass, Finding, RequestScan, SegmentFindings

_EFFECT_RANK = {"deny": 0, "require_approval": 1, "allow": 2}
_PROBES = (
    RouteFacts("probe-on-prem", "probe", "on_prem", None, None, None),
    RouteFacts("probe-external", "probe", "external", None, None, None),
)
_GLOB = set("*?[")
#: Enough examples to act on; every loosening of a principal shares a cause.
_MAX_PER_PRINCIPAL = 4


def _fold(values: list[str]) -> set[str]:
    return {v.casefold() for v in values}


def _principals(old: PolicyConfig, new: PolicyConfig) -> list[Principal]:
    teams: list[str | None] = [None, *sorted(set(old.teams) | set(new.teams))]
    keys: list[str | None] = [None, *sorted(set(old.keys) | set(new.keys))]
    return [Principal(key_id=k, team=t) for t, k in itertools.product(teams, keys)]


def _who(p: Principal) -> str:
    parts = [f"team {p.team}" if p.team else "", f"key {p.key_id}" if p.key_id else ""]
    return " / ".join(x for x in parts if x) or "every principal"


def _strip(policy: PolicyConfig) -> PolicyConfig:
    """The policy without route rules: only class actions and ``unknown`` remain."""

    def ov(o: PolicyOverride) -> PolicyOverride:
        return o.model_copy(update={"forbid": None, "residency": {}})

    return policy.model_copy(
        update={
            "forbid": RouteRestrictions(),
            "residency": {},
            "teams": {k: ov(v) for k, v in policy.teams.items()},
            "keys": {k: ov(v) for k, v in policy.keys.items()},
        }
    )


def _scan(classes: tuple[DataClass, ...], complete: bool) -> RequestScan:
    segments = tuple(
        SegmentFindings(i, (Finding(c.value.upper(), c, 0, 1, 1.0, "probe"),))
        for i, c in enumerate(classes)
    )
    return RequestScan(segments=segments, complete=complete, errors=() if complete else ("x",))


def _class_problems(old: PolicyConfig, new: PolicyConfig, p: Principal) -> list[str]:
    so, sn = _strip(old), _strip(new)
    all_classes = sorted(DataClass, key=lambda c: c.value)
    problems: list[str] = []
    for n in range(len(all_classes) + 1):
        if len(problems) >= _MAX_PER_PRINCIPAL:
            break
        for combo in itertools.combinations(all_classes, n):
            for complete in (True, False):
                scan = _scan(combo, complete)
                d_old = evaluate(scan, p, _PROBES, so, "")
                d_new = evaluate(scan, p, _PROBES, sn, "")
                what = "+".join(c.value for c in combo) or "no classes"
                if not complete:
                    what += " (incomplete scan)"
                wider = set(d_new.permitted) - set(d_old.permitted)
                if wider:
                    where = ", ".join(sorted(r.removeprefix("probe-") for r in wider))
                    problems.append(f"{_who(p)}: {what} may now reach {where} routes")
                    continue
                if not d_new.permitted:
                    continue
                masked_old = {combo[m.segment] for m in d_old.masks}
                masked_new = {combo[m.segment] for m in d_new.masks}
                unmasked = masked_old - masked_new
                if unmasked:
                    names = ", ".join(sorted(c.value for c in unmasked))
                    problems.append(f"{_who(p)}: {what}: {names} no longer masked")
    return problems


def _forbid_problems(old: RouteRestrictions, new: RouteRestrictions, who: str) -> list[str]:
    out: list[str] = []
    for field in ("routes", "providers", "licences"):
        before, after = getattr(old, field), getattr(new, field)
        lost = set(before) - set(after) if field == "routes" else _fold(before) - _fold(after)
        if lost:
            out.append(f"{who}: forbid.{field} no longer forbids {sorted(lost)}")
    if old.min_openness is not None and (
        new.min_openness is None or new.min_openness.level < old.min_openness.level
    ):
        after_o = new.min_openness.value if new.min_openness else "none"
        out.append(f"{who}: forbid.min_openness lowered from {old.min_openness.value} to {after_o}")
    return out


def _region_covered(pattern: str, old: list[str]) -> bool:
    p = pattern.casefold()
    if any(p == q.casefold() for q in old):
        return True
    return not (set(p) & _GLOB) and any(fnmatchcase(p, q.casefold()) for q in old)


def _residency_problems(old: PolicyConfig, new: PolicyConfig, p: Principal) -> list[str]:
    eo, en = effective_policy(old, p), effective_policy(new, p)
    who = _who(p)
    out: list[str] = []
    for c, ro in eo.residency.items():
        rn = en.residency.get(c)
        tag = f"{who}: residency of {c.value}"
        if rn is None:
            if ro.locations or ro.providers or ro.regions:
                out.append(f"{tag} removed")
            continue
        if ro.locations and (not rn.locations or not set(rn.locations) <= set(ro.locations)):
            out.append(f"{tag}: locations widened to {rn.locations or 'anywhere'}")
        if ro.providers and (not rn.providers or not _fold(rn.providers) <= _fold(ro.providers)):
            out.append(f"{tag}: providers widened to {rn.providers or 'any'}")
        if ro.regions and (
            not rn.regions or not all(_region_covered(x, ro.regions) for x in rn.regions)
        ):
            out.append(f"{tag}: regions widened to {rn.regions or 'any'}")
    out.extend(_forbid_problems(eo.forbid, en.forbid, who))
    if en.log_prompts and not eo.log_prompts:
        out.append(f"{who}: prompts would now be logged")
    return out


def _same_match(a: ActionRule, b: ActionRule) -> bool:
    return (a.action, a.when, a.teams, a.agents) == (b.action, b.when, b.teams, b.agents)


def _lowered_ok(old: ActionRule, new: ActionRule) -> bool:
    """May ``old`` become ``new`` in place? Only to a stricter effect with the same matcher,
    and a rule with conditions may not go from allow to require_approval (see module doc)."""
    if not _same_match(old, new):
        return False
    if _EFFECT_RANK[new.effect] > _EFFECT_RANK[old.effect]:
        return False
    return not (old.effect == "allow" and new.effect == "require_approval" and old.when)


def _action_problems(old: PolicyConfig, new: PolicyConfig) -> list[str]:
    out: list[str] = []
    if _EFFECT_RANK[new.action_default] > _EFFECT_RANK[old.action_default]:
        out.append(f"action_default loosened from {old.action_default} to {new.action_default}")
    pending = list(old.actions)
    for rule in new.actions:
        while True:
            if pending and _lowered_ok(pending[0], rule):
                pending.pop(0)
                break
            if pending and pending[0].effect == "allow":
                pending.pop(0)  # removing an allow rule never widens
                continue
            if rule.effect == "deny":
                break  # an inserted deny rule never widens
            out.append(
                f"action rule {rule.name!r} ({rule.effect} {rule.action!r}) is not an old rule"
                " kept in place or made stricter (rules may not be reordered or added"
                " except as deny)"
            )
            return out
    for rule in pending:
        if rule.effect != "allow":
            out.append(f"action rule {rule.name!r} ({rule.effect}) was removed")
    return out


def loosenings(old: PolicyConfig, new: PolicyConfig) -> list[str]:
    """Every way ``new`` may allow what ``old`` did not; empty when it only tightens."""
    problems: list[str] = []
    seen: set[str] = set()
    for p in _principals(old, new):
        # The class check depends only on the effective class actions and `unknown`:
        # skip principals where they did not change, and those already checked.
        eo, en = effective_policy(old, p), effective_policy(new, p)
        before = repr((sorted(eo.classes.items()), eo.unknown))
        after = repr((sorted(en.classes.items()), en.unknown))
        if before != after and before + after not in seen:
            seen.add(before + after)
            problems.extend(_class_problems(old, new, p))
        problems.extend(_residency_problems(old, new, p))
    problems.extend(_action_problems(old, new))
    return list(dict.fromkeys(problems))
