"""The tighten-only check: real tightenings pass; changes that look stricter but are not fail."""

from __future__ import annotations

from typing import Any

import pytest

from hybridgate.governance.tighten import loosenings
from hybridgate.policy.model import PolicyConfig


def base(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "classes": {
            "secret": "block",
            "health": "on_prem_only",
            "financial": "redact",
            "contact": "redact",
            "person": "allow",
        },
        "unknown": "on_prem_only",
        "residency": {"health": {"regions": ["eu-*"], "providers": ["acme", "local"]}},
        "forbid": {"licences": ["agpl-3.0"], "min_openness": "open_weights_permissive"},
        "teams": {"research": {"classes": {"contact": "on_prem_only"}}},
        "actions": [
            {"name": "no-deletes", "action": "DELETE_*", "effect": "deny"},
            {
                "name": "big",
                "action": "PAY",
                "effect": "require_approval",
                "when": [{"param": "amount", "op": "gt", "value": 1000}],
            },
            {
                "name": "small",
                "action": "PAY",
                "effect": "allow",
                "when": [{"param": "amount", "op": "lte", "value": 1000}],
            },
        ],
        "action_default": "deny",
    }
    data.update(extra)
    return data


def p(data: dict[str, Any]) -> PolicyConfig:
    return PolicyConfig.model_validate(data)


def change(**extra: Any) -> list[str]:
    return loosenings(p(base()), p(base(**extra)))


def test_identical_policy_is_not_a_loosening() -> None:
    assert loosenings(p(base()), p(base())) == []


@pytest.mark.parametrize(
    "extra",
    [
        # a class made stricter in ways that keep it masked or keep it from leaving
        {"classes": {**base()["classes"], "financial": "block"}},
        {"classes": {**base()["classes"], "person": "redact"}},
        {"unknown": "block"},
        # narrower residency and more forbidden routes
        {"residency": {"health": {"regions": ["eu-west-1"], "providers": ["acme"]}}},
        {
            "residency": {
                "health": {"regions": ["eu-*"], "providers": ["acme", "local"]},
                "person": {"locations": ["on_prem"]},
            }
        },
        {"forbid": {"licences": ["agpl-3.0", "sspl"], "min_openness": "open_weights_code"}},
        # a new team override that only tightens
        {"teams": {**base()["teams"], "sales": {"classes": {"person": "block"}}}},
        # action rules: a deny inserted, an allow removed, an effect lowered in place
        {"actions": [{"name": "freeze", "action": "PAY", "effect": "deny"}, *base()["actions"]]},
        {"actions": base()["actions"][:2]},
        {
            "actions": [
                *base()["actions"][:2],
                {**base()["actions"][2], "effect": "deny"},
            ]
        },
    ],
)
def test_real_tightenings_pass(extra: dict[str, Any]) -> None:
    assert change(**extra) == []


def test_team_override_loosening_is_caught_even_when_the_base_tightens() -> None:
    # Looks stricter: the base blocks health now. But team "research" may now send
    # health data anywhere.
    problems = change(
        classes={**base()["classes"], "health": "block"},
        teams={"research": {"classes": {"contact": "on_prem_only", "health": "allow"}}},
    )
    assert any("team research" in x and "health" in x for x in problems), problems


def test_redact_to_allow_hidden_in_a_team_is_caught() -> None:
    problems = change(
        teams={
            "research": {"classes": {"contact": "on_prem_only"}},
            "ops": {"classes": {"financial": "allow"}},
        }
    )
    assert any("team ops" in x and "financial no longer masked" in x for x in problems), problems


def test_redact_to_on_prem_only_is_not_a_tightening() -> None:
    # on_prem_only is "stricter" in the severity order, but the value that used to be
    # masked everywhere now reaches on-prem routes in clear.
    problems = change(classes={**base()["classes"], "contact": "on_prem_only"})
    assert any("contact no longer masked" in x for x in problems), problems


def test_a_stricter_class_can_unmask_another_class_in_the_same_request() -> None:
    # person allow -> on_prem_only looks stricter, but a request holding a contact
    # (redact) and a person is now on-prem only, where masks do not apply: the contact
    # that used to be masked reaches on-prem routes in clear.
    problems = change(classes={**base()["classes"], "person": "on_prem_only"})
    assert any("contact+person: contact no longer masked" in x for x in problems), problems


def test_key_override_loosening_is_caught() -> None:
    problems = change(keys={"k1": {"classes": {"secret": "on_prem_only"}}})
    assert any("key k1" in x and "secret" in x for x in problems), problems


@pytest.mark.parametrize(
    "residency",
    [
        {"health": {"regions": ["eu-*", "us-east-1"], "providers": ["acme", "local"]}},
        {"health": {"regions": ["*"], "providers": ["acme", "local"]}},
        {"health": {"regions": ["eu-*"], "providers": []}},  # empty list = any provider
        {"health": {"regions": ["e*"], "providers": ["acme"]}},  # a wider glob
        {},
    ],
)
def test_residency_widened_is_caught(residency: dict[str, Any]) -> None:
    problems = change(residency=residency)
    assert any("residency of health" in x for x in problems), problems


def test_residency_widened_only_for_a_team_is_caught() -> None:
    problems = change(
        teams={
            "research": {
                "classes": {"contact": "on_prem_only"},
                "residency": {"health": {"regions": ["us-*"]}},
            }
        }
    )
    assert any("team research" in x and "residency of health" in x for x in problems)


@pytest.mark.parametrize(
    "forbid",
    [
        {"licences": [], "min_openness": "open_weights_permissive"},
        {"licences": ["agpl-3.0"], "min_openness": "open_weights_restricted"},
        {"licences": ["agpl-3.0"]},
        {"licences": ["AGPL-3.0", "x"], "min_openness": "closed"},
    ],
)
def test_forbid_relaxed_is_caught(forbid: dict[str, Any]) -> None:
    assert any("forbid" in x for x in change(forbid=forbid))


def test_forbid_relaxed_by_a_team_override_is_caught() -> None:
    problems = change(teams={"research": {"classes": {"contact": "on_prem_only"}, "forbid": {}}})
    assert any("team research" in x and "forbid" in x for x in problems), problems


def test_unknown_relaxed_is_caught() -> None:
    problems = change(unknown="redact")
    assert any("incomplete scan" in x for x in problems), problems


def test_class_removed_falls_back_to_unknown_which_may_be_looser() -> None:
    classes = {k: v for k, v in base()["classes"].items() if k != "secret"}
    problems = change(classes=classes)
    assert any("secret" in x for x in problems), problems


def test_logging_prompts_is_a_loosening() -> None:
    assert any("prompts" in x for x in change(log_prompts=True))


def test_action_rule_reordering_is_caught() -> None:
    rules = base()["actions"]
    problems = change(actions=[rules[2], rules[0], rules[1]])
    assert problems
    problems = change(actions=[{"name": "all", "action": "*", "effect": "allow"}, *rules])
    assert problems


def test_allow_lowered_to_require_approval_with_a_condition_is_not_a_tightening() -> None:
    # The held rule also matches when `amount` is missing (fail closed for holds), so a
    # request without `amount`, denied before, would now be held for approval.
    rules = base()["actions"]
    problems = change(actions=[rules[0], rules[1], {**rules[2], "effect": "require_approval"}])
    assert problems


def test_deny_rule_removed_or_default_loosened_is_caught() -> None:
    rules = base()["actions"]
    assert change(actions=rules[1:])
    assert change(action_default="require_approval")
    assert change(actions=[rules[0], {**rules[1], "effect": "allow"}, rules[2]])


def test_require_approval_inserted_is_not_a_tightening() -> None:
    rules = base()["actions"]
    assert change(
        actions=[*rules, {"name": "review", "action": "EXPORT", "effect": "require_approval"}]
    )
