"""evaluate(): per-class actions, severity, fail-closed scans, overrides, routes."""

from __future__ import annotations

import pytest

from hybridgate.config import RouteConfig
from hybridgate.policy import Decision, MaskTarget, Principal, RouteFacts, evaluate
from hybridgate.policy.model import (
    Action,
    Openness,
    PolicyConfig,
    PolicyOverride,
    Residency,
    RouteRestrictions,
)
from hybridgate.scan.findings import DataClass, RequestScan, SegmentFindings
from policy.policy_helpers import ALL, CLAUDE, GPT, LLAMA, MISTRAL, finding, route, scan_of

NOBODY = Principal(key_id=None, team=None)
H = "0" * 64


def decide(
    scan: RequestScan,
    policy: PolicyConfig | None = None,
    candidates: tuple[RouteFacts, ...] = ALL,
    principal: Principal = NOBODY,
) -> Decision:
    return evaluate(scan, principal, candidates, policy or PolicyConfig(), H)


def test_clean_scan_allows_every_candidate_in_order() -> None:
    d = decide(RequestScan())
    assert d.action is Action.ALLOW
    assert d.permitted == ("gpt", "claude", "llama", "mistral")
    assert d.masks == () and d.data_classes == ()
    assert d.policy_hash == H and d.log_prompts is False
    assert any("no sensitive data" in r for r in d.reasons)


@pytest.mark.parametrize(
    ("dc", "action", "permitted"),
    [
        (DataClass.SECRET, Action.BLOCK, ()),
        (DataClass.HEALTH, Action.ON_PREM_ONLY, ("llama", "mistral")),
        (DataClass.GOVERNMENT_ID, Action.ON_PREM_ONLY, ("llama", "mistral")),
        (DataClass.ORG_CONFIDENTIAL, Action.ON_PREM_ONLY, ("llama", "mistral")),
        (DataClass.FINANCIAL, Action.REDACT, ("gpt", "claude", "llama", "mistral")),
        (DataClass.CONTACT, Action.REDACT, ("gpt", "claude", "llama", "mistral")),
        (DataClass.PERSON, Action.REDACT, ("gpt", "claude", "llama", "mistral")),
    ],
)
def test_default_action_per_class(
    dc: DataClass, action: Action, permitted: tuple[str, ...]
) -> None:
    d = decide(scan_of(dc))
    assert d.action is action
    assert d.permitted == permitted
    assert d.data_classes == (dc.value,)
    assert any(dc.value in r and action.value in r for r in d.reasons)
    if action is Action.REDACT:
        assert d.masks == (MaskTarget(0, 0, 4, finding(dc).type),)
    else:
        assert d.masks == ()


def test_allow_rule_sends_unmasked_anywhere() -> None:
    p = PolicyConfig(classes={DataClass.CONTACT: Action.ALLOW})
    d = decide(scan_of(DataClass.CONTACT), p)
    assert d.action is Action.ALLOW and d.masks == () and len(d.permitted) == 4


@pytest.mark.parametrize(
    ("classes", "expected"),
    [
        ((DataClass.CONTACT, DataClass.HEALTH), Action.ON_PREM_ONLY),
        ((DataClass.HEALTH, DataClass.SECRET), Action.BLOCK),
        ((DataClass.CONTACT, DataClass.FINANCIAL), Action.REDACT),
        ((DataClass.PERSON, DataClass.SECRET, DataClass.CONTACT), Action.BLOCK),
    ],
)
def test_strictest_action_wins(classes: tuple[DataClass, ...], expected: Action) -> None:
    assert decide(scan_of(*classes)).action is expected
    # order of findings does not matter
    assert decide(scan_of(*reversed(classes))).action is expected


def test_on_prem_only_masks_nothing_even_with_redact_classes() -> None:
    d = decide(scan_of(DataClass.CONTACT, DataClass.HEALTH))
    assert d.action is Action.ON_PREM_ONLY
    assert d.masks == ()
    assert d.data_classes == ("contact", "health")


def test_redact_masks_only_findings_whose_class_redacts() -> None:
    p = PolicyConfig(classes={DataClass.CONTACT: Action.REDACT, DataClass.PERSON: Action.ALLOW})
    scan = RequestScan(
        segments=(
            SegmentFindings(0, (finding(DataClass.PERSON, 0, 3), finding(DataClass.CONTACT, 5, 9))),
            SegmentFindings(2, (finding(DataClass.CONTACT, 1, 7),)),
        )
    )
    d = decide(scan, p)
    assert d.action is Action.REDACT
    assert d.masks == (
        MaskTarget(0, 5, 9, "EMAIL_ADDRESS"),
        MaskTarget(2, 1, 7, "EMAIL_ADDRESS"),
    )


def test_class_without_rule_gets_unknown_action() -> None:
    p = PolicyConfig(classes={DataClass.CONTACT: Action.REDACT}, unknown=Action.ON_PREM_ONLY)
    d = decide(scan_of(DataClass.PERSON), p)
    assert d.action is Action.ON_PREM_ONLY
    assert any("no rule for class person" in r for r in d.reasons)


@pytest.mark.parametrize("how", ["error", "unscannable"])
def test_incomplete_scan_fails_closed(how: str) -> None:
    scan = (
        scan_of(complete=False)
        if how == "error"
        else scan_of(unscannable=("messages[0].content[1]",))
    )
    d = decide(scan)
    assert d.action is Action.ON_PREM_ONLY
    assert d.permitted == ("llama", "mistral")
    assert any("scan incomplete" in r and "fail closed" in r for r in d.reasons)
    assert not any("no sensitive data" in r for r in d.reasons)


def test_incomplete_scan_combines_with_found_classes() -> None:
    d = decide(scan_of(DataClass.CONTACT, complete=False))
    assert d.action is Action.ON_PREM_ONLY and d.masks == ()
    d = decide(scan_of(DataClass.SECRET, complete=False))
    assert d.action is Action.BLOCK
    d = decide(scan_of(complete=False), PolicyConfig(unknown=Action.BLOCK))
    assert d.action is Action.BLOCK and d.permitted == ()


def test_block_permits_nothing_whatever_the_routes() -> None:
    d = decide(scan_of(DataClass.SECRET), candidates=(LLAMA,))
    assert d.action is Action.BLOCK and d.permitted == () and d.masks == ()
    assert any("blocked" in r for r in d.reasons)


def test_team_override_then_key_override() -> None:
    p = PolicyConfig(
        teams={
            "research": PolicyOverride(
                classes={DataClass.HEALTH: Action.REDACT, DataClass.CONTACT: Action.ALLOW},
                log_prompts=True,
            )
        },
        keys={"k1": PolicyOverride(classes={DataClass.HEALTH: Action.BLOCK})},
    )
    base = decide(scan_of(DataClass.HEALTH), p)
    assert base.action is Action.ON_PREM_ONLY and base.log_prompts is False
    team = decide(scan_of(DataClass.HEALTH), p, principal=Principal(None, "research"))
    assert team.action is Action.REDACT and team.log_prompts is True
    assert any("policy.teams.research.classes.health" in r for r in team.reasons)
    key = decide(scan_of(DataClass.HEALTH), p, principal=Principal("k1", "research"))
    assert key.action is Action.BLOCK
    assert any("policy.keys.k1.classes.health" in r for r in key.reasons)
    # classes merge per class: the team's contact rule still applies under the key
    merged = decide(scan_of(DataClass.CONTACT), p, principal=Principal("k1", "research"))
    assert merged.action is Action.ALLOW and merged.log_prompts is True
    # other teams and unknown keys see the base policy
    other = decide(scan_of(DataClass.HEALTH), p, principal=Principal("k2", "sales"))
    assert other.action is Action.ON_PREM_ONLY


def test_override_replaces_forbid_and_unknown() -> None:
    p = PolicyConfig(
        forbid=RouteRestrictions(providers=["anthropic"]),
        teams={"t": PolicyOverride(forbid=RouteRestrictions(routes=["gpt"]), unknown=Action.BLOCK)},
    )
    assert decide(RequestScan(), p).permitted == ("gpt", "llama", "mistral")
    d = decide(RequestScan(), p, principal=Principal(None, "t"))
    assert d.permitted == ("claude", "llama", "mistral")
    d = decide(scan_of(complete=False), p, principal=Principal(None, "t"))
    assert d.action is Action.BLOCK


def test_residency_regions_with_globs_and_unknown_region_fails() -> None:
    p = PolicyConfig(
        residency={DataClass.CONTACT: Residency(regions=["eu-*"])},
    )
    d = decide(scan_of(DataClass.CONTACT), p)
    assert d.permitted == ("claude", "llama")  # mistral has no region: fails closed
    assert any("route mistral excluded" in r and "undeclared" in r for r in d.reasons)
    assert any("route gpt excluded" in r and "residency" in r for r in d.reasons)
    # residency applies only when the class is found
    assert decide(scan_of(DataClass.PERSON), p).permitted == ("gpt", "claude", "llama", "mistral")


def test_residency_providers_and_locations() -> None:
    p = PolicyConfig(
        residency={
            DataClass.FINANCIAL: Residency(providers=["openai", "local"]),
            DataClass.PERSON: Residency(locations=["on_prem"]),
        }
    )
    assert decide(scan_of(DataClass.FINANCIAL), p).permitted == ("gpt", "mistral")
    assert decide(scan_of(DataClass.PERSON), p).permitted == ("llama", "mistral")
    both = decide(scan_of(DataClass.FINANCIAL, DataClass.PERSON), p)
    assert both.permitted == ("mistral",) and both.action is Action.REDACT


def test_residency_override_per_class() -> None:
    p = PolicyConfig(
        residency={DataClass.CONTACT: Residency(locations=["on_prem"])},
        keys={"k": PolicyOverride(residency={DataClass.CONTACT: Residency(regions=["us-*"])})},
    )
    assert decide(scan_of(DataClass.CONTACT), p).permitted == ("llama", "mistral")
    d = decide(scan_of(DataClass.CONTACT), p, principal=Principal("k", None))
    assert d.permitted == ("gpt",)


def test_forbid_licence_provider_route() -> None:
    p = PolicyConfig(forbid=RouteRestrictions(licences=["LLAMA3"]))
    d = decide(RequestScan(), p)
    assert d.permitted == ("gpt", "claude", "mistral")
    assert any("route llama excluded: licence llama3 is forbidden" in r for r in d.reasons)
    p = PolicyConfig(forbid=RouteRestrictions(providers=["openai"], routes=["mistral"]))
    assert decide(RequestScan(), p).permitted == ("claude", "llama")


def test_forbidden_licence_excludes_route_with_undeclared_licence() -> None:
    p = PolicyConfig(forbid=RouteRestrictions(licences=["llama3"]))
    unknown = route("mystery", "on_prem", licence=None)
    d = decide(RequestScan(), p, candidates=(unknown, GPT))
    assert d.permitted == ("gpt",)
    assert any("licence undeclared" in r for r in d.reasons)


def test_min_openness_and_unknown_openness_fails() -> None:
    p = PolicyConfig(forbid=RouteRestrictions(min_openness=Openness.OPEN_WEIGHTS_PERMISSIVE))
    vague = route("vague", "on_prem", openness=None)
    d = decide(RequestScan(), p, candidates=(*ALL, vague))
    assert d.permitted == ("mistral",)
    assert any("route vague excluded: openness unknown" in r for r in d.reasons)
    assert any(
        "route llama excluded: openness open_weights_restricted is below" in r for r in d.reasons
    )


def test_empty_permitted_set_is_explained() -> None:
    d = decide(scan_of(DataClass.HEALTH), candidates=(GPT, CLAUDE))
    assert d.action is Action.ON_PREM_ONLY and d.permitted == ()
    assert any("no permitted route among candidates (gpt, claude)" in r for r in d.reasons)
    assert decide(RequestScan(), candidates=()).permitted == ()


def test_permitted_keeps_candidate_order() -> None:
    order = (MISTRAL, GPT, LLAMA, CLAUDE)
    assert decide(RequestScan(), candidates=order).permitted == (
        "mistral",
        "gpt",
        "llama",
        "claude",
    )


def test_data_classes_sorted_and_unique() -> None:
    d = decide(scan_of(DataClass.PERSON, DataClass.CONTACT, DataClass.CONTACT, DataClass.FINANCIAL))
    assert d.data_classes == ("contact", "financial", "person")


def test_reasons_never_contain_the_values() -> None:
    text = "card 4111 1111 1111 1111 of jane.doe@example.com AKIAZ7QX4MN2PL8RT5VW"
    values = ["4111 1111 1111 1111", "jane.doe@example.com", "AKIAZ7QX4MN2PL8RT5VW"]
    spans = [(text.index(v), text.index(v) + len(v)) for v in values]
    classes = [DataClass.FINANCIAL, DataClass.CONTACT, DataClass.SECRET]
    for n in range(1, 4):
        scan = RequestScan(
            segments=(
                SegmentFindings(
                    0,
                    tuple(finding(c, a, b) for c, (a, b) in zip(classes[:n], spans, strict=False)),
                ),
            ),
            complete=n != 2,
            errors=() if n != 2 else (f"detector failed on {values[0]}",),
        )
        d = decide(scan)
        blob = " ".join(d.reasons) + repr(d.masks)
        for v in values:
            assert v not in blob
            assert v.replace(" ", "") not in blob


def test_route_facts_from_route_config() -> None:
    rc = RouteConfig(
        name="x",
        provider="openai_compat",
        model="m",
        base_url="http://127.0.0.1:1/v1",
        location="on_prem",
        region="eu-west-1",
        licence="apache-2.0",
        openness=Openness.FULLY_OPEN,
        api_key="sk-secret",
    )
    f = RouteFacts.from_route(rc)
    assert f == RouteFacts(
        "x", "openai_compat", "on_prem", "eu-west-1", "apache-2.0", Openness.FULLY_OPEN
    )
