"""The offline trace rejects a log whose governance story does not hold.

The log is written by a gateway driven in-process (``httpx.ASGITransport``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
from pathlib import Path
from typing import Any

from asgi_harness import ADMIN_KEY, asgi_gateway
from governance.gov_fixtures import doc, keys, proposal_sig, write
from hybridgate.governance.audit import trace_governance


def _bodies(db: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db)
    try:
        return [
            json.loads(bytes(d))["receipt"]
            for (d,) in conn.execute("SELECT data FROM ledger_entries ORDER BY idx")
        ]
    finally:
        conn.close()


async def _write_log(tmp: Path) -> tuple[list[dict[str, Any]], str]:
    ks = keys("alice", "bob")
    v1 = doc(list(ks.values()), 2)
    gov = write(tmp / "governance.yaml", v1)
    async with asgi_gateway(tmp, governance_file=str(gov)) as h:
        c, admin = h.client, {"authorization": f"Bearer {ADMIN_KEY}"}
        for classes, signers in (
            ({"person": "allow"}, ("alice", "bob")),
            ({"person": "block"}, ("bob",)),
        ):
            policy = h.gw.policy.current[0].model_dump(mode="json")
            policy["classes"].update(classes)
            r = await c.post("/v1/admin/policy/proposals", json={"policy": policy}, headers=admin)
            p = r.json()
            for n in signers:
                await c.post(
                    f"/v1/admin/policy/proposals/{p['proposal_id']}/signatures",
                    json={"approver": n, "signature": proposal_sig(ks[n], p)},
                    headers=admin,
                )
            r = await c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply", headers=admin)
            assert r.status_code == 200
            chat = {"model": "auto", "messages": [{"role": "user", "content": "x"}]}
            r = await c.post("/v1/chat/completions", json=chat, headers=h.auth())
            assert r.status_code == 200
        db = h.gw.config.database_path
    return _bodies(db), v1.hash()


def _log(tmp: Path) -> tuple[list[dict[str, Any]], str]:
    return asyncio.run(_write_log(tmp))


def test_trace_of_an_honest_log(tmp_path: Path) -> None:
    bodies, root = _log(tmp_path)
    t = trace_governance(bodies, pinned_root=root)
    assert t.ok, t.problems
    assert [p.approval for p in t.policies] == ["bootstrap", "threshold", "emergency"]
    assert [s["approver"] for s in t.policies[1].signers] == ["alice", "bob"]
    assert t.receipts_checked == 2


def _policy_receipts(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if b["kind"] == "policy"]


def test_trace_rejects_tampered_approvals(tmp_path: Path) -> None:
    bodies, root = _log(tmp_path)

    # a signature dropped: below threshold
    b = copy.deepcopy(bodies)
    _policy_receipts(b)[1]["signatures"].pop()
    assert any("required" in x for x in trace_governance(b).problems)

    # the policy swapped under its signatures
    b = copy.deepcopy(bodies)
    _policy_receipts(b)[1]["policy"]["classes"]["secret"] = "allow"
    assert not trace_governance(b).ok

    # a loosening dressed up as an emergency tightening
    b = copy.deepcopy(bodies)
    pr = _policy_receipts(b)[2]
    pr["approval"] = "emergency"
    t = trace_governance(b)
    assert t.ok  # the real emergency change does tighten
    pr1 = _policy_receipts(b)[1]
    pr1["approval"] = "emergency"
    assert any("loosens" in x for x in trace_governance(b).problems)

    # a request decided under a policy nobody approved
    b = copy.deepcopy(bodies)
    req = next(x for x in b if x["kind"] == "request")
    req["policy_hash"] = "f" * 64
    assert any("never approved" in x for x in trace_governance(b).problems)

    # a second bootstrap after governance started
    b = copy.deepcopy(bodies)
    _policy_receipts(b)[2]["approval"] = "bootstrap"
    assert any("bootstrap" in x for x in trace_governance(b).problems)

    # a forged governance rotation
    b = copy.deepcopy(bodies)
    g = copy.deepcopy(next(x for x in b if x["kind"] == "governance"))
    g["governance"]["version"] = 2
    g["governance"]["previous"] = g["governance_hash"]
    g["governance"]["threshold"] = 1
    b.insert(2, g)
    assert not trace_governance(b).ok
    assert not trace_governance(bodies, pinned_root="0" * 64).ok
    assert trace_governance(bodies, pinned_root=root).ok
