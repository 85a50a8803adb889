"""evaluate_action(): first match wins, globs, team/agent filters, fail-closed conditions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hybridgate.policy import evaluate_action
from hybridgate.policy.actions import check_condition
from hybridgate.policy.model import ActionRule, ParamCondition, PolicyConfig


def rule(name: str, action: str, effect: str, *conds: ParamCondition, **kw: Any) -> ActionRule:
    return ActionRule.model_validate(
        {"name": name, "action": action, "effect": effect, "when": list(conds), **kw}
    )


def cond(param: str, op: str, value: Any = None) -> ParamCondition:
    return ParamCondition.model_validate({"param": param, "op": op, "value": value})


def verdict(
    policy: PolicyConfig,
    action: str,
    params: dict[str, Any],
    team: str | None = "ops",
    agent: str = "agent-1",
) -> tuple[str, str | None]:
    v = evaluate_action(policy, action=action, params=params, team=team, agent_id=agent)
    return v.effect, v.rule


PAYMENTS = PolicyConfig(
    actions=[
        rule("big", "EXECUTE_TRANSACTION", "require_approval", cond("amount", "gt", 1000)),
        rule("small", "EXECUTE_TRANSACTION", "allow", cond("amount", "lte", 1000)),
        rule("deletes", "DELETE_*", "deny"),
        rule("reads", "READ_*", "allow"),
    ],
    action_default="deny",
)


def test_first_matching_rule_wins() -> None:
    assert verdict(PAYMENTS, "EXECUTE_TRANSACTION", {"amount": 5000}) == ("require_approval", "big")
    assert verdict(PAYMENTS, "EXECUTE_TRANSACTION", {"amount": 10}) == ("allow", "small")
    p = PolicyConfig(actions=[rule("a", "X", "allow"), rule("b", "X", "deny")])
    assert verdict(p, "X", {}) == ("allow", "a")


def test_glob_on_action_name_is_case_sensitive() -> None:
    assert verdict(PAYMENTS, "DELETE_USER", {}) == ("deny", "deletes")
    assert verdict(PAYMENTS, "READ_FILE", {}) == ("allow", "reads")
    assert verdict(PAYMENTS, "read_file", {}) == ("deny", None)
    p = PolicyConfig(actions=[rule("q", "GET_?", "allow"), rule("s", "[AB]_*", "allow")])
    assert verdict(p, "GET_X", {})[0] == "allow"
    assert verdict(p, "GET_XY", {})[0] == "deny"
    assert verdict(p, "B_thing", {}) == ("allow", "s")


def test_no_match_uses_policy_default() -> None:
    for default in ("allow", "deny", "require_approval"):
        p = PolicyConfig.model_validate(
            {"actions": [rule("r", "A", "allow")], "action_default": default}
        )
        v = evaluate_action(p, action="B", params={}, team=None, agent_id="x")
        assert (v.effect, v.rule) == (default, None)
        assert "default" in v.reason


def test_team_and_agent_filters() -> None:
    p = PolicyConfig(
        actions=[
            rule("fin", "PAY", "allow", teams=["finance"]),
            rule("bot", "PAY", "require_approval", agents=["bot-7"]),
        ]
    )
    assert verdict(p, "PAY", {}, team="finance") == ("allow", "fin")
    assert verdict(p, "PAY", {}, team="sales", agent="bot-7") == ("require_approval", "bot")
    assert verdict(p, "PAY", {}, team=None, agent="bot-8") == ("deny", None)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({}, "missing"),
        ({"amount": "5000"}, "string"),
        ({"amount": None}, "null"),
        ({"amount": True}, "bool"),
        ({"amount": float("nan")}, "nan"),
        ({"amount": [1]}, "list"),
    ],
)
def test_unevaluable_condition_fails_closed(params: dict[str, Any], why: str) -> None:
    # require_approval rule matches, so the allow rule after it is never reached
    effect, name = verdict(PAYMENTS, "EXECUTE_TRANSACTION", params)
    assert (effect, name) == ("require_approval", "big"), why
    # an allow rule whose condition cannot be evaluated does not match
    only_allow = PolicyConfig(actions=[rule("small", "PAY", "allow", cond("amount", "lt", 100))])
    assert verdict(only_allow, "PAY", params) == ("deny", None), why
    deny_rule = PolicyConfig(
        actions=[rule("no", "PAY", "deny", cond("amount", "gt", 100))], action_default="allow"
    )
    v = evaluate_action(deny_rule, action="PAY", params=params, team=None, agent_id="a")
    assert (v.effect, v.rule) == ("deny", "no"), why
    assert "could not be evaluated" in v.reason


def test_a_false_condition_beats_an_unevaluable_one() -> None:
    p = PolicyConfig(
        actions=[
            rule("r", "PAY", "deny", cond("amount", "gt", 100), cond("currency", "eq", "USD"))
        ],
        action_default="allow",
    )
    assert verdict(p, "PAY", {"amount": 5})[0] == "allow"  # amount rule is definitely false
    assert verdict(p, "PAY", {"amount": 500})[0] == "deny"  # currency missing: fail closed
    assert verdict(p, "PAY", {"amount": 500, "currency": "EUR"})[0] == "allow"


@pytest.mark.parametrize(
    ("op", "value", "param", "expected"),
    [
        ("gt", 10, 11, True),
        ("gt", 10, 10, False),
        ("gte", 10, 10, True),
        ("lt", 10, 9.5, True),
        ("lte", 10, 10.0, True),
        ("lte", 10, 10.01, False),
        ("eq", "USD", "USD", True),
        ("eq", "USD", "usd", False),
        ("eq", 3, 3.0, True),
        ("eq", "3", 3, None),
        ("ne", "USD", "EUR", True),
        ("ne", True, True, False),
        ("eq", 1, True, None),
        ("in", ["US", "GB"], "GB", True),
        ("in", ["US", "GB"], "FR", False),
        ("not_in", ["US", "GB"], "FR", True),
        ("not_in", ["US"], "US", False),
        ("in", ["US"], 5, None),
        ("in", [1, 2], 2.0, True),
    ],
)
def test_condition_ops(op: str, value: Any, param: Any, expected: bool | None) -> None:
    assert check_condition(cond("p", op, value), {"p": param}) is expected


def test_exists_and_dotted_paths() -> None:
    assert check_condition(cond("a", "exists"), {"a": 1}) is True
    assert check_condition(cond("a", "exists"), {}) is False
    assert check_condition(cond("a", "exists", False), {}) is True
    assert check_condition(cond("payee.country", "eq", "US"), {"payee": {"country": "US"}}) is True
    assert check_condition(cond("payee.country", "eq", "US"), {"payee": "US"}) is None


def test_reasons_name_rules_not_values() -> None:
    secret = "acct-9876543210"
    for params in ({"amount": 5000, "to": secret}, {"to": secret}):
        v = evaluate_action(
            PAYMENTS, action="EXECUTE_TRANSACTION", params=params, team=None, agent_id="a"
        )
        assert v.rule == "big" and secret not in v.reason and "5000" not in v.reason


@pytest.mark.parametrize(
    ("op", "value"),
    [
        ("gt", "1000"),
        ("lt", None),
        ("gte", True),
        ("in", "US"),
        ("not_in", 3),
        ("exists", "yes"),
        ("eq", 2**60),
    ],
)
def test_conditions_that_cannot_ever_be_evaluated_are_rejected_at_load(op: str, value: Any) -> None:
    with pytest.raises(ValidationError):
        cond("p", op, value)
