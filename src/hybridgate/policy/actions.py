"""Agent action rules: allow, deny or hold an action for a person. Pure.

The first matching rule wins. A rule whose condition cannot be evaluated
(missing parameter, wrong type) is decided by its effect, so the gate always
errs towards caution: a ``deny`` or ``require_approval`` rule then matches, an
``allow`` rule does not. Reasons name rules and parameters, never parameter
values, because action parameters may themselves be sensitive.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal

from hybridgate.policy.model import ActionRule, ParamCondition, PolicyConfig

Effect = Literal["allow", "deny", "require_approval"]

_MISSING = object()


@dataclass(frozen=True)
class ActionVerdict:
    effect: Effect
    rule: str | None  # the matching rule's name; None when the default applied
    reason: str


def _lookup(params: Mapping[str, Any], name: str) -> Any:
    """``params[name]``, or a dotted path into nested objects (``payee.country``)."""
    if name in params:
        return params[name]
    node: Any = params
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _number(v: Any) -> float | int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _same(a: Any, b: Any) -> bool | None:
    """Typed equality: None when the two values are of incomparable types."""
    na, nb = _number(a), _number(b)
    if na is not None and nb is not None:
        return na == nb
    for t in (bool, str):
        if isinstance(a, t) and isinstance(b, t):
            return bool(a == b)
    if a is None and b is None:
        return True
    return None


def check_condition(cond: ParamCondition, params: Mapping[str, Any]) -> bool | None:
    """True/False when the condition can be evaluated, None when it cannot."""
    value = _lookup(params, cond.param)
    if cond.op == "exists":
        present = value is not _MISSING and value is not None
        return present if cond.value is None or cond.value is True else not present
    if value is _MISSING:
        return None
    if cond.op in ("gt", "gte", "lt", "lte"):
        x, y = _number(value), _number(cond.value)
        if x is None or y is None:
            return None
        return {"gt": x > y, "gte": x >= y, "lt": x < y, "lte": x <= y}[cond.op]
    if cond.op in ("eq", "ne"):
        same = _same(value, cond.value)
        if same is None:
            return None
        return same if cond.op == "eq" else not same
    # in / not_in
    if not isinstance(cond.value, list):
        return None
    results = [_same(value, item) for item in cond.value]
    if any(r is True for r in results):
        return cond.op == "in"
    if all(r is None for r in results):
        return None
    return cond.op == "not_in"


def _describe(cond: ParamCondition) -> str:
    if cond.op == "exists":
        return f"{cond.param} exists" if cond.value is not False else f"{cond.param} absent"
    return f"{cond.param} {cond.op} {cond.value!r}"


def _rule_applies(
    rule: ActionRule, action: str, params: Mapping[str, Any], team: str | None, agent_id: str
) -> tuple[bool, str]:
    if not fnmatchcase(action, rule.action):
        return False, ""
    if rule.teams and team not in rule.teams:
        return False, ""
    if rule.agents and agent_id not in rule.agents:
        return False, ""
    unknown: list[str] = []
    for cond in rule.when:
        held = check_condition(cond, params)
        if held is False:
            return False, ""
        if held is None:
            unknown.append(cond.param)
    if unknown:
        names = ", ".join(sorted(set(unknown)))
        if rule.effect == "allow":
            return False, ""
        return True, f"condition on {names} could not be evaluated; fail closed"
    if rule.when:
        return True, "conditions hold: " + "; ".join(_describe(c) for c in rule.when)
    return True, f"action matches {rule.action!r}"


def evaluate_action(
    policy: PolicyConfig,
    *,
    action: str,
    params: Mapping[str, Any],
    team: str | None,
    agent_id: str,
) -> ActionVerdict:
    """The first matching rule's effect, or ``policy.action_default``."""
    for rule in policy.actions:
        applies, why = _rule_applies(rule, action, params, team, agent_id)
        if applies:
            return ActionVerdict(rule.effect, rule.name, f"rule {rule.name}: {rule.effect} ({why})")
    return ActionVerdict(
        policy.action_default,
        None,
        f"no action rule matched {action[:128]!r}: policy default {policy.action_default}",
    )
