"""``verify_action``: what an executor checks offline with the gateway's public key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from actions.actions_fixtures import gate_env
from hybridgate.actions import (
    approval_payload,
    inspect_action_receipt,
    params_hash,
    verify_action,
)
from hybridgate.actions.model import parse_action_request
from hybridgate.errors import InvalidRequest
from hybridgate.ledger import SigningKey, sign_receipt

PARAMS = {"amount": 10, "to": "acct-1"}


async def _issue(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any], str, float]:
    async with gate_env(tmp_path) as env:
        r = await env.authorize("EXECUTE_TRANSACTION", PARAMS)
        out = r.json()
        pub = env.keyring.active.verifier().to_string()
        return out["receipt"], out["bundle"], pub, env.clock.now


async def test_verify_action_offline(tmp_path: Path) -> None:
    receipt, bundle, pub, now = await _issue(tmp_path)
    # Nothing of the gateway is running any more: only the receipt and the key.

    def clock() -> float:
        return now + 1

    ok = verify_action(receipt, "EXECUTE_TRANSACTION", PARAMS, pub, clock=clock)
    assert ok.ok and ok.verdict == "ALLOW", ok.reason
    assert ok.receipt_id == receipt["receipt"]["receipt_id"]
    assert verify_action(receipt, "EXECUTE_TRANSACTION", PARAMS, pub, bundle=bundle, clock=clock).ok
    assert verify_action(bundle, "EXECUTE_TRANSACTION", PARAMS, pub, clock=clock).ok
    assert verify_action(
        receipt, "EXECUTE_TRANSACTION", PARAMS, pub, agent_id="agent-7", clock=clock
    ).ok

    def check(**kw: Any) -> tuple[str, str]:
        args: dict[str, Any] = {
            "receipt": receipt,
            "action": "EXECUTE_TRANSACTION",
            "params": PARAMS,
            "public_key": pub,
            "clock": clock,
        }
        args.update(kw)
        res = verify_action(**args)
        assert res.ok is (res.verdict == "ALLOW")
        return res.verdict, res.reason

    assert check(params={**PARAMS, "amount": 11})[0] == "DENY"
    assert check(action="EXECUTE_REFUND")[0] == "DENY"
    assert check(agent_id="agent-8")[0] == "DENY"
    assert check(clock=lambda: now + 3600)[0] == "DENY"
    assert check(policy_hash="0" * 64)[0] == "DENY"
    assert check(used_nonces={receipt["receipt"]["nonce"]})[0] == "DENY"
    assert check(params={"x": float("nan")})[0] == "DENY"
    stranger = SigningKey.generate("other").verifier()
    assert check(public_key=stranger)[0] == "HALTED"
    assert check(public_key=[stranger, pub])[0] == "ALLOW"
    garbage_inputs: list[Any] = [None, "receipt", 42, [], {}, {"receipt": "x", "signature": "y"}]
    for garbage in garbage_inputs:
        assert check(receipt=garbage)[0] == "HALTED"
    assert check(receipt={"receipt": receipt["receipt"], "simulated": True})[0] == "HALTED"

    tampered = copy.deepcopy(receipt)
    tampered["receipt"]["params_hash"] = params_hash({**PARAMS, "amount": 11})
    assert check(receipt=tampered, params={**PARAMS, "amount": 11})[0] == "DENY"

    other_bundle = copy.deepcopy(bundle)
    other_bundle["receipt"]["nonce"] = "0" * 32
    assert check(bundle=other_bundle)[0] == "DENY"

    with pytest.raises(ValueError):
        verify_action(receipt, "EXECUTE_TRANSACTION", PARAMS, "not a key")


async def test_non_action_receipts_do_not_authorize(tmp_path: Path) -> None:
    key = SigningKey.generate("gw")
    body = {
        "receipt_id": "r1",
        "kind": "chat",
        "action": "EXECUTE_TRANSACTION",
        "params_hash": params_hash(PARAMS),
        "outcome": "allowed",
        "expires_at_ns": str(2**62),
        "nonce": "n" * 32,
    }
    signed = sign_receipt(body, key)
    res = verify_action(signed, "EXECUTE_TRANSACTION", PARAMS, key.verifier())
    assert res.verdict == "DENY" and "action receipt" in res.reason
    signed = sign_receipt(dict(body, kind="action"), key)
    assert verify_action(signed, "EXECUTE_TRANSACTION", PARAMS, key.verifier()).ok
    signed = sign_receipt(dict(body, kind="action", outcome="denied"), key)
    assert verify_action(signed, "EXECUTE_TRANSACTION", PARAMS, key.verifier()).verdict == "DENY"


def test_params_hash_is_canonical() -> None:
    assert params_hash({"a": 1, "b": [1, 2]}) == params_hash({"b": [1, 2], "a": 1})
    assert params_hash({"a": 1}) != params_hash({"a": 1.5})
    assert params_hash({"a": 1}) != params_hash({"a": "1"})
    assert len(params_hash({})) == 64
    with pytest.raises(InvalidRequest):
        params_hash({"a": float("inf")})


def test_approval_payload_is_canonical_json() -> None:
    p = approval_payload(
        approval_id="apr_1", decision="approve", action="A", params_hash="h", agent_id="g"
    )
    assert p == (
        b'{"action":"A","agent_id":"g","approval_id":"apr_1","decision":"approve","params_hash":"h"}'
    )


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"agent_id": "a", "action": "A", "params": "x"},
        {"agent_id": 1, "action": "A"},
        {"agent_id": "a" * 129, "action": "A"},
        {"agent_id": "a", "action": "A\nB"},
        {"agent_id": "a", "action": "A", "params": {"blob": "x" * 70_000}},
    ],
)
def test_parse_action_request_rejects(body: Any) -> None:
    with pytest.raises(InvalidRequest):
        parse_action_request(body)


def test_parse_action_request_defaults_params() -> None:
    req = parse_action_request({"agent_id": "bot@team", "action": "deploy/prod"})
    assert req.params == {}
    assert req.params_hash == params_hash({})


async def test_inspect_action_receipt_without_the_action(tmp_path: Path) -> None:
    receipt, bundle, pub, now = await _issue(tmp_path)
    res = inspect_action_receipt(bundle, pub, clock=lambda: now + 1)
    assert res.ok, res.reason
    assert inspect_action_receipt(receipt, pub, clock=lambda: now + 1).ok
    assert inspect_action_receipt(receipt, pub, clock=lambda: now + 3600).verdict == "DENY"
    bad = copy.deepcopy(receipt)
    bad["receipt"]["action"] = "OTHER"
    assert inspect_action_receipt(bad, pub, clock=lambda: now + 1).verdict == "DENY"
    assert inspect_action_receipt({"receipt": {}}, pub).verdict == "HALTED"


def test_deeply_nested_params_are_refused_not_crashing() -> None:
    nested: dict[str, Any] = {}
    node = nested
    for _ in range(5000):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(InvalidRequest):
        parse_action_request({"agent_id": "a", "action": "A", "params": nested})
