"""Actions held for a person: approve, reject, timeout, forged and unknown approvers."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

from actions.actions_fixtures import AGENT_KEY, Env, gate_env
from hybridgate.actions import approval_payload
from hybridgate.ledger import SigningKey

BIG = {"amount": 50_000, "currency": "EUR", "to": "DE89370400440532013000"}


async def _held(env: Env) -> tuple[asyncio.Task[Any], dict[str, Any]]:
    task = asyncio.create_task(env.authorize("EXECUTE_TRANSACTION", BIG))
    pending = await env.wait_pending()
    assert len(pending) == 1
    return task, pending[0]


async def test_approve_releases_a_receipt_bound_to_the_approval(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        task, held = await _held(env)
        assert held["status"] == "pending"
        assert held["params"] == BIG
        assert held["agent_id"] == "agent-7"
        assert held["team"] == "payments"
        assert not task.done()
        d = await env.decide(held, "approve")
        assert d.status_code == 200, d.text
        assert d.json()["status"] == "approved"
        r = await asyncio.wait_for(task, 5)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["verdict"] == "ALLOW"
        body = out["receipt"]["receipt"]
        assert body["approval_id"] == held["approval_id"]
        assert body["approver"] == "alice"
        assert body["approver_key_id"] == env.approver.key_id

        # The decision itself is in the log, signed by alice's own key.
        decision = env.ledger.get_receipt(d.json()["receipt_id"])
        assert decision is not None
        rec = decision["receipt"]
        assert rec["kind"] == "approval"
        assert rec["decision"] == "approve"
        assert rec["approver"] == "alice"
        assert rec["approver_key_id"] == env.approver.key_id
        payload = approval_payload(
            approval_id=held["approval_id"],
            decision="approve",
            action="EXECUTE_TRANSACTION",
            params_hash=held["params_hash"],
            agent_id="agent-7",
        )
        assert env.approver.verifier().verify(payload, base64.b64decode(rec["approver_signature"]))
        assert not env.keyring.active.verifier().verify(
            payload, base64.b64decode(rec["approver_signature"])
        )

        g = await env.gate("EXECUTE_TRANSACTION", BIG, out["receipt"])
        assert g.status_code == 200
        assert len(env.executor.received) == 1

        listed = await env.client.get("/v1/admin/approvals", headers=env.admin())
        [row] = listed.json()["data"]
        assert row["status"] == "approved"
        assert row["approver"] == "alice"
        assert "params" not in row  # parameters are not kept at rest


async def test_reject_is_deny(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        task, held = await _held(env)
        d = await env.decide(held, "reject")
        assert d.status_code == 200
        r = await asyncio.wait_for(task, 5)
        assert r.status_code == 403
        assert r.json()["verdict"] == "DENY"
        assert "alice" in r.json()["reason"]
        logged = env.ledger.get_receipt(r.json()["receipt_id"])
        assert logged is not None and logged["receipt"]["outcome"] == "denied"
        again = await env.decide(held, "approve")
        assert again.status_code == 409
        assert env.executor.received == []


async def test_no_decision_is_halted_and_nothing_released(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=0.2) as env:
        task, held = await _held(env)
        r = await asyncio.wait_for(task, 5)
        assert r.status_code == 408
        out = r.json()
        assert out["verdict"] == "HALTED"
        assert out["approval_id"] == held["approval_id"]
        assert "receipt" not in out
        logged = env.ledger.get_receipt(out["receipt_id"])
        assert logged is not None and logged["receipt"]["outcome"] == "halted"
        late = await env.decide(held, "approve")
        assert late.status_code == 409
        got = await env.client.get(
            f"/v1/admin/approvals/{held['approval_id']}", headers=env.admin()
        )
        assert got.json()["status"] == "expired"
        assert env.executor.received == []


async def test_forged_and_unknown_approvers_are_403(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        task, held = await _held(env)
        mallory = SigningKey.generate("alice")  # claims alice's name, has her own key
        forged = env.sign_decision(held, "approve", key=mallory)
        assert (await env.decide(held, "approve", sig=forged)).status_code == 403
        # alice's signature over *reject* does not approve
        wrong = env.sign_decision(held, "reject")
        assert (await env.decide(held, "approve", sig=wrong)).status_code == 403
        # a signature for another approval does not carry over
        other = env.sign_decision(dict(held, approval_id="apr_" + "0" * 24), "approve")
        assert (await env.decide(held, "approve", sig=other)).status_code == 403
        assert (await env.decide(held, "approve", approver="bob")).status_code == 403
        assert (await env.decide(held, "approve", sig="!!not base64!!")).status_code == 403
        assert (await env.decide(held, "approve", approver="../alice")).status_code == 400
        assert not task.done()
        # After all that the real approver can still decide.
        assert (await env.decide(held, "approve")).status_code == 200
        assert (await asyncio.wait_for(task, 5)).status_code == 200


async def test_admin_endpoints_need_the_admin_key(tmp_path: Path) -> None:
    async with gate_env(tmp_path) as env:
        agent = {"authorization": f"Bearer {AGENT_KEY}"}
        assert (await env.client.get("/v1/admin/approvals", headers=agent)).status_code == 403
        assert (await env.client.get("/v1/admin/approvals")).status_code == 401
        r = await env.client.post(
            "/v1/admin/approvals/apr_" + "0" * 24,
            json={"decision": "approve", "approver": "alice", "signature": "AAAA"},
            headers=agent,
        )
        assert r.status_code == 403
        assert (await env.client.get("/v1/admin/approvers", headers=agent)).status_code == 403
        missing = await env.client.get("/v1/admin/approvals/apr_" + "0" * 24, headers=env.admin())
        assert missing.status_code == 404


async def test_register_approver_through_the_api(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        bob = SigningKey.generate("bob")
        r = await env.client.post(
            "/v1/admin/approvers",
            json={"public_key": bob.verifier().to_string()},
            headers=env.admin(),
        )
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "bob"
        # same name, another key: refused rather than silently replaced
        r = await env.client.post(
            "/v1/admin/approvers",
            json={"public_key": SigningKey.generate("bob").verifier().to_string()},
            headers=env.admin(),
        )
        assert r.status_code == 409
        # a name from the approvers directory cannot be shadowed
        r = await env.client.post(
            "/v1/admin/approvers",
            json={"public_key": SigningKey.generate("alice").verifier().to_string()},
            headers=env.admin(),
        )
        assert r.status_code == 409
        r = await env.client.post(
            "/v1/admin/approvers", json={"public_key": "garbage"}, headers=env.admin()
        )
        assert r.status_code == 400
        listed = await env.client.get("/v1/admin/approvers", headers=env.admin())
        names = [a["name"] for a in listed.json()["data"]]
        assert names == ["alice", "bob"]

        task, held = await _held(env)
        d = await env.decide(
            held, "approve", approver="bob", sig=env.sign_decision(held, "approve", key=bob)
        )
        assert d.status_code == 200
        assert (await asyncio.wait_for(task, 5)).status_code == 200


async def test_restart_expires_pending_approvals(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        task, held = await _held(env)
        restarted = env.new_service()
        assert restarted.get_approval(held["approval_id"])["status"] == "expired"
        task.cancel()


async def test_cancelled_request_expires_its_approval(tmp_path: Path) -> None:
    async with gate_env(tmp_path, hold_timeout_s=10) as env:
        task, held = await _held(env)
        task.cancel()
        await asyncio.sleep(0.05)
        assert (await env.decide(held, "approve")).status_code == 409
        for _ in range(100):
            if env.service.get_approval(held["approval_id"])["status"] == "expired":
                break
            await asyncio.sleep(0.01)
        assert env.service.get_approval(held["approval_id"])["status"] == "expired"
