"""Authorize and gate over HTTP: every verdict, tampering, replay, expiry, rotation."""

from __future__ import annotations

import base64
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from actions.actions_fixtures import AGENT_KEY, OTHER_KEY, Env, gate_env, gate_policy
from hybridgate.actions import params_hash
from hybridgate.ledger import SigningKey, sign_receipt
from hybridgate.policy.model import ActionRule

TRANSFER = {"amount": 250, "currency": "EUR", "to": "DE89370400440532013000"}


async def allowed_receipt(env: Env, params: dict[str, Any] | None = None) -> dict[str, Any]:
    r = await env.authorize("EXECUTE_TRANSACTION", params or TRANSFER)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["verdict"] == "ALLOW"
    receipt: dict[str, Any] = body["receipt"]
    return receipt


async def test_allow_issues_bound_receipt_and_gate_forwards_once(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        r = await env.authorize("EXECUTE_TRANSACTION", TRANSFER)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["verdict"] == "ALLOW"
        assert out["bundle"] is not None
        body = out["receipt"]["receipt"]
        _, phash = env.holder.current
        assert body["kind"] == "action"
        assert body["action"] == "EXECUTE_TRANSACTION"
        assert body["params_hash"] == params_hash(TRANSFER)
        assert body["agent_id"] == "agent-7"
        assert body["team"] == "payments"
        assert body["key_id"] == "agentkey01"
        assert body["policy_hash"] == phash
        assert body["outcome"] == "allowed"
        assert body["expires_at_ns"] == str(int((env.clock.now + 60.0) * 1e9))
        assert len(body["nonce"]) == 32
        assert out["receipt"]["signature"]["alg"] == "ed25519"
        assert env.ledger.get_receipt(out["receipt_id"]) == out["receipt"]
        assert env.executor.received == []

        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, out["receipt"])
        assert g.status_code == 200, g.text
        assert g.json()["verdict"] == "ALLOW"
        assert g.json()["receipt_id"] == out["receipt_id"]
        assert g.json()["forwarded"] is True
        assert env.executor.received == [
            {
                "agent_id": "agent-7",
                "action": "EXECUTE_TRANSACTION",
                "params": TRANSFER,
                "receipt_id": out["receipt_id"],
            }
        ]


async def test_deny_rule_is_403_and_logged(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        r = await env.authorize("DELETE_CUSTOMER", {"id": 7})
        assert r.status_code == 403
        out = r.json()
        assert out["verdict"] == "DENY"
        assert out["rule"] == "no-deletes"
        assert out["reason"]
        logged = env.ledger.get_receipt(out["receipt_id"])
        assert logged is not None
        assert logged["receipt"]["kind"] == "action"
        assert logged["receipt"]["outcome"] == "denied"
        assert logged["receipt"]["nonce"] is None
        # A refusal receipt is signed and in the log, but authorizes nothing.
        g = await env.gate("DELETE_CUSTOMER", {"id": 7}, logged)
        assert g.status_code == 403
        assert env.executor.received == []


async def test_unlisted_action_gets_policy_default(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        r = await env.authorize("LAUNCH_ROCKET", {})
        assert r.status_code == 403
        assert r.json()["verdict"] == "DENY"


async def test_admin_key_and_bad_keys_cannot_authorize(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        r = await env.client.post(
            "/v1/actions/authorize",
            json={"agent_id": "a", "action": "EXECUTE_TRANSACTION", "params": {}},
        )
        assert r.status_code == 401
        assert r.json()["error"]["type"]
        r = await env.authorize("EXECUTE_TRANSACTION", {}, key="hg-nope-nope")
        assert r.status_code == 401
        r = await env.client.post(
            "/v1/actions/authorize",
            json={"agent_id": "a", "action": "EXECUTE_TRANSACTION", "params": {}},
            headers=env.admin(),
        )
        assert r.status_code == 403
        assert "error" in r.json()


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"agent_id": "a", "action": "X", "params": {"v": NaN}}',
        b'{"agent_id": "a", "action": "X", "params": [1]}',
        b'{"agent_id": "", "action": "X", "params": {}}',
        b'{"agent_id": "a", "action": "bad action!", "params": {}}',
        b'{"agent_id": "a", "action": "X", "params": {"v": 99999999999999999999}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
async def test_hostile_bodies_are_400(tmp_path: Path, body: bytes) -> None:
    async with gate_env(tmp_path) as env:
        for path, headers in (
            ("/v1/actions/authorize", {"authorization": f"Bearer {AGENT_KEY}"}),
            ("/v1/gate", {}),
        ):
            r = await env.client.post(path, content=body, headers=headers)
            assert r.status_code in (400, 413), (path, r.text)
            assert "error" in r.json()
        assert env.executor.received == []


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        big = {"agent_id": "a", "action": "X", "params": {"blob": "x" * 300_000}}
        r = await env.client.post("/v1/gate", json=big)
        assert r.status_code == 413


def _no_receipt(_: dict[str, Any]) -> Any:
    return None


def _simulated(rc: dict[str, Any]) -> Any:
    return {"receipt": rc["receipt"], "simulated": True, "valid": True}


def _simulated_inside(rc: dict[str, Any]) -> Any:
    fake = copy.deepcopy(rc)
    fake["receipt"]["simulated"] = True
    return fake


def _unsigned(rc: dict[str, Any]) -> Any:
    return {"receipt": rc["receipt"]}


def _not_ed25519(rc: dict[str, Any]) -> Any:
    fake = copy.deepcopy(rc)
    fake["signature"]["alg"] = "none"
    return fake


def _unknown_key(rc: dict[str, Any]) -> Any:
    return sign_receipt(rc["receipt"], SigningKey.generate("mallory"))


def _garbage(_: dict[str, Any]) -> Any:
    return "trust me"


@pytest.mark.parametrize(
    "make",
    [_no_receipt, _simulated, _simulated_inside, _unsigned, _not_ed25519, _unknown_key, _garbage],
)
async def test_no_real_receipt_is_halted_after_hold(
    tmp_path: Path, make: Callable[[dict[str, Any]], Any]
) -> None:
    async with gate_env(tmp_path, hold_timeout_s=0.2) as env:
        rc = await allowed_receipt(env)
        t0 = time.monotonic()
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, make(rc))
        waited = time.monotonic() - t0
        assert g.status_code == 408, g.text
        assert g.json()["verdict"] == "HALTED"
        assert waited >= 0.18
        assert env.executor.received == []
        # The genuine receipt was not consumed by the fake.
        ok = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert ok.status_code == 200
        assert len(env.executor.received) == 1


def _flip_sig_byte(rc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(rc["signature"]["sig"]))
    raw[10] ^= 0x01
    rc["signature"]["sig"] = base64.b64encode(bytes(raw)).decode()


def _set(field: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(rc: dict[str, Any]) -> None:
        rc["receipt"][field] = value

    return mutate


RECEIPT_TAMPERING: dict[str, Callable[[dict[str, Any]], None]] = {
    "policy_hash": _set("policy_hash", "0" * 64),
    "signature_byte": _flip_sig_byte,
    "action": _set("action", "EXECUTE_REFUND"),
    "agent": _set("agent_id", "agent-8"),
    "params_hash": _set("params_hash", params_hash({**TRANSFER, "amount": 999})),
    "expiry": _set("expires_at_ns", str(2**62)),
    "nonce": _set("nonce", "f" * 32),
    "outcome": _set("outcome", "allowed!"),
    "team": _set("team", "marketing"),
}


@pytest.mark.parametrize("what", sorted(RECEIPT_TAMPERING))
async def test_altered_receipt_is_denied(tmp_path: Path, what: str) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        bad = copy.deepcopy(rc)
        RECEIPT_TAMPERING[what](bad)
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, bad)
        assert g.status_code == 403, g.text
        assert g.json()["verdict"] == "DENY"
        assert g.json()["reason"]
        assert env.executor.received == []
        ok = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert ok.status_code == 200


REQUEST_TAMPERING: dict[str, tuple[str, dict[str, Any], str]] = {
    "amount": ("EXECUTE_TRANSACTION", {**TRANSFER, "amount": 25000}, "agent-7"),
    "amount_as_string": ("EXECUTE_TRANSACTION", {**TRANSFER, "amount": "250"}, "agent-7"),
    "recipient": ("EXECUTE_TRANSACTION", {**TRANSFER, "to": "GB33BUKB20201555555555"}, "agent-7"),
    "extra_param": ("EXECUTE_TRANSACTION", {**TRANSFER, "memo": "hi"}, "agent-7"),
    "missing_param": ("EXECUTE_TRANSACTION", {"amount": 250, "currency": "EUR"}, "agent-7"),
    "action_name": ("EXECUTE_REFUND", TRANSFER, "agent-7"),
    "agent": ("EXECUTE_TRANSACTION", TRANSFER, "agent-8"),
}


@pytest.mark.parametrize("what", sorted(REQUEST_TAMPERING))
async def test_request_not_matching_receipt_is_denied(tmp_path: Path, what: str) -> None:
    action, params, agent = REQUEST_TAMPERING[what]
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        g = await env.gate(action, params, rc, agent=agent)
        assert g.status_code == 403, g.text
        assert g.json()["verdict"] == "DENY"
        assert env.executor.received == []


async def test_params_key_order_does_not_matter(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        reordered = dict(reversed(list(TRANSFER.items())))
        g = await env.gate("EXECUTE_TRANSACTION", reordered, rc)
        assert g.status_code == 200


async def test_receipt_signed_by_gateway_key_but_not_in_log_is_denied(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        forged_body = dict(rc["receipt"], receipt_id="rcpt_forged", nonce="a" * 32)
        forged = sign_receipt(forged_body, env.keyring.active)
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, forged)
        assert g.status_code == 403
        assert "log" in g.json()["reason"]
        assert env.executor.received == []


async def test_replay_is_409_even_after_restart(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        assert (await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)).status_code == 200
        again = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert again.status_code == 409
        assert again.json()["verdict"] == "DENY"
        restarted = env.new_service()
        from hybridgate.actions.model import parse_action_request

        req = parse_action_request(
            {"agent_id": "agent-7", "action": "EXECUTE_TRANSACTION", "params": TRANSFER}
        )
        result = await restarted.gate(req, rc)
        assert result.status == 409
        assert len(env.executor.received) == 1


async def test_concurrent_replays_run_once(tmp_path: Path) -> None:
    import asyncio

    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        results = await asyncio.gather(
            *(env.gate("EXECUTE_TRANSACTION", TRANSFER, rc) for _ in range(8))
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [200] + [409] * 7
        assert len(env.executor.received) == 1


async def test_expired_receipt_is_denied(tmp_path: Path) -> None:
    async with gate_env(tmp_path, receipt_ttl_s=30) as env:
        rc = await allowed_receipt(env)
        env.clock.now += 30.0
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert g.status_code == 403
        assert "expired" in g.json()["reason"]
        env.clock.now -= 0.5  # just inside the window again
        assert (await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)).status_code == 200


async def test_policy_change_invalidates_outstanding_receipts(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        result = env.holder.reload(lambda: gate_policy(log_prompts=True))
        assert result.ok
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert g.status_code == 403
        assert "policy" in g.json()["reason"]
        assert env.executor.received == []


async def test_team_scoped_rule(tmp_path: Path) -> None:
    policy = gate_policy().model_copy(
        update={
            "actions": [
                ActionRule(
                    name="payments-only", action="REFUND", effect="allow", teams=["payments"]
                )
            ]
        }
    )
    async with gate_env(tmp_path, policy=policy) as env:
        assert (await env.authorize("REFUND", {"n": 1})).status_code == 200
        assert (await env.authorize("REFUND", {"n": 1}, key=OTHER_KEY)).status_code == 403


async def test_old_key_still_verifies_after_rotation(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        old_id = rc["signature"]["key_id"]
        env.keyring.rotate()
        assert env.keyring.active.key_id != old_id
        assert old_id in {v.key_id for v in env.keyring.verifiers()}
        new_rc = await allowed_receipt(env, {**TRANSFER, "amount": 251})
        assert new_rc["signature"]["key_id"] == env.keyring.active.key_id
        assert (await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)).status_code == 200
        assert (
            await env.gate("EXECUTE_TRANSACTION", {**TRANSFER, "amount": 251}, new_rc)
        ).status_code == 200


async def test_executor_failure_is_502_and_receipt_stays_spent(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        rc = await allowed_receipt(env)
        env.executor.status = 500
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert g.status_code == 502
        assert g.json()["error"]["message"]
        assert g.json()["receipt_used"] is True
        env.executor.status = 200
        assert (await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)).status_code == 409
        assert len(env.executor.received) == 1  # it was asked exactly once


async def test_gate_without_executor_answers_allow_only(tmp_path: Path) -> None:
    async with gate_env(tmp_path, forward=False) as env:
        rc = await allowed_receipt(env)
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, rc)
        assert g.status_code == 200
        assert g.json()["forwarded"] is False
        assert env.executor.received == []


async def test_gate_accepts_the_bundle_as_the_receipt(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        r = await env.authorize("EXECUTE_TRANSACTION", TRANSFER)
        g = await env.gate("EXECUTE_TRANSACTION", TRANSFER, r.json()["bundle"])
        assert g.status_code == 200, g.text
        assert len(env.executor.received) == 1
