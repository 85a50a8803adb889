"""Soundness of the tighten-only check, tested against the evaluator itself.

Hypothesis builds a policy and a variant of it (mostly tightening edits, some
loosening ones). Whenever the check says the variant only tightens, no request
may be treated more permissively by it: for random principals, data classes,
scan completeness and routes, every route the new policy permits the old one
permitted, no class masked before goes out unmasked, and no agent action gets
a more permissive effect.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridgate.governance.tighten import loosenings
from hybridgate.policy.actions import evaluate_action
from hybridgate.policy.evaluate import Principal, RouteFacts, evaluate
from hybridgate.policy.model import Openness, PolicyConfig
from hybridgate.scan.findings import DataClass, Finding, RequestScan, SegmentFindings

ACTIONS = ["allow", "redact", "on_prem_only", "block"]
CLASSES = [c.value for c in DataClass]
REGIONS = ["eu-west", "eu-north", "us-east", None]
PROVIDERS = ["acme", "local", "openai"]
LICENCES = ["apache-2.0", "agpl-3.0", None]
RANK = {"deny": 0, "require_approval": 1, "allow": 2}

residency = st.fixed_dictionaries(
    {},
    optional={
        "regions": st.lists(st.sampled_from(["eu-*", "eu-west", "us-*", "*"]), max_size=2),
        "providers": st.lists(st.sampled_from(PROVIDERS), max_size=2),
        "locations": st.lists(st.sampled_from(["on_prem", "external"]), max_size=2, unique=True),
    },
)
forbid = st.fixed_dictionaries(
    {},
    optional={
        "providers": st.lists(st.sampled_from(PROVIDERS), max_size=1),
        "licences": st.lists(st.sampled_from(["apache-2.0", "agpl-3.0"]), max_size=1),
        "min_openness": st.sampled_from([o.value for o in Openness]),
    },
)
classes = st.dictionaries(st.sampled_from(CLASSES), st.sampled_from(ACTIONS), max_size=4)
override = st.fixed_dictionaries(
    {},
    optional={
        "classes": classes,
        "residency": st.dictionaries(st.sampled_from(CLASSES), residency, max_size=1),
        "forbid": forbid,
        "unknown": st.sampled_from(ACTIONS),
    },
)
rule = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["a", "b", "c", "d"]),
        "action": st.sampled_from(["PAY", "PAY*", "DELETE_*", "*"]),
        "effect": st.sampled_from(list(RANK)),
    },
    optional={"when": st.just([{"param": "amount", "op": "gt", "value": 100}])},
)
policies = st.fixed_dictionaries(
    {
        "classes": classes,
        "unknown": st.sampled_from(ACTIONS),
        "residency": st.dictionaries(st.sampled_from(CLASSES), residency, max_size=2),
        "forbid": forbid,
        "teams": st.dictionaries(st.sampled_from(["t1", "t2"]), override, max_size=1),
        "actions": st.lists(rule, max_size=3),
        "action_default": st.sampled_from(list(RANK)),
    }
)


@st.composite
def variants(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    old: dict[str, Any] = draw(policies)
    new: dict[str, Any] = {**old}
    for _ in range(draw(st.integers(1, 3))):
        edit = draw(
            st.sampled_from(["class", "unknown", "residency", "forbid", "team", "rule", "swap"])
        )
        if edit == "class":
            new["classes"] = {
                **new["classes"],
                draw(st.sampled_from(CLASSES)): draw(st.sampled_from(ACTIONS)),
            }
        elif edit == "unknown":
            new["unknown"] = draw(st.sampled_from(ACTIONS))
        elif edit == "residency":
            new["residency"] = {**new["residency"], draw(st.sampled_from(CLASSES)): draw(residency)}
        elif edit == "forbid":
            new["forbid"] = draw(forbid)
        elif edit == "team":
            new["teams"] = {**new["teams"], draw(st.sampled_from(["t1", "t2"])): draw(override)}
        elif edit == "rule":
            rules = list(new["actions"])
            rules.insert(draw(st.integers(0, len(rules))), draw(rule))
            new["actions"] = rules
        else:
            new = draw(policies)
    return old, new


def _scan(found: list[DataClass], complete: bool) -> RequestScan:
    return RequestScan(
        segments=tuple(
            SegmentFindings(i, (Finding("X", c, 0, 1, 1.0, "t"),)) for i, c in enumerate(found)
        ),
        complete=complete,
        errors=() if complete else ("x",),
    )


ROUTES = [
    RouteFacts(f"r{i}", p, loc, reg, lic, op)  # type: ignore[arg-type]
    for i, (p, loc, reg, lic, op) in enumerate(
        [
            (p, loc, reg, lic, op)
            for p in PROVIDERS
            for loc in ("on_prem", "external")
            for reg in REGIONS
            for lic in LICENCES
            for op in (None, Openness.CLOSED, Openness.FULLY_OPEN)
        ]
    )
]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    variants(),
    st.lists(
        st.tuples(
            st.sampled_from([None, "t1", "t2", "t3"]),
            st.lists(st.sampled_from(list(DataClass)), max_size=3, unique=True),
            st.booleans(),
        ),
        min_size=1,
        max_size=6,
    ),
    st.lists(
        st.tuples(
            st.sampled_from(["PAY", "PAYOUT", "DELETE_X", "OTHER"]),
            st.sampled_from([{}, {"amount": 5}, {"amount": 500}, {"amount": "x"}]),
            st.sampled_from([None, "t1"]),
        ),
        max_size=4,
    ),
)
def test_a_change_the_check_accepts_never_widens(
    pair: tuple[dict[str, Any], dict[str, Any]],
    requests: list[tuple[str | None, list[DataClass], bool]],
    actions: list[tuple[str, dict[str, Any], str | None]],
) -> None:
    old, new = (PolicyConfig.model_validate(p) for p in pair)
    if loosenings(old, new):
        return
    for team, found, complete in requests:
        p = Principal(key_id=None, team=team)
        scan = _scan(found, complete)
        d_old = evaluate(scan, p, ROUTES, old, "")
        d_new = evaluate(scan, p, ROUTES, new, "")
        assert set(d_new.permitted) <= set(d_old.permitted), (team, found, complete)
        if d_new.permitted:
            masked_old = {found[m.segment] for m in d_old.masks}
            masked_new = {found[m.segment] for m in d_new.masks}
            assert masked_old <= masked_new, (team, found, complete)
    for name, params, team in actions:
        v_old = evaluate_action(old, action=name, params=params, team=team, agent_id="a")
        v_new = evaluate_action(new, action=name, params=params, team=team, agent_id="a")
        assert RANK[v_new.effect] <= RANK[v_old.effect], (name, params, team)
