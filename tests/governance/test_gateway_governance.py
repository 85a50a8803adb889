"""Governance on a gateway: propose, sign, thresholds, emergency tightening, refused
reloads, stale proposals, rotation across restarts, and the CLI end to end.

The gateway runs in-process (``asgi_gateway_sync``: Starlette's test client, no
sockets) except where the CLI must reach it over HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from asgi_harness import SyncAsgiHarness, asgi_gateway_sync
from gateway_harness import ADMIN_KEY, Harness, running_gateway
from governance.gov_fixtures import doc, keys, proposal_sig, save_keys, signed, write
from hybridgate.cli.main import app as cli
from hybridgate.ledger import SigningKey
from hybridgate.policy import policy_hash
from hybridgate.scan.findings import DataClass

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


def _api(h: SyncAsgiHarness) -> TestClient:
    """The harness's client, speaking as the admin unless a request says otherwise."""
    h.client.headers.update(ADMIN)
    return h.client


def _policy(h: Harness | SyncAsgiHarness, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = h.gw.policy.current[0].model_dump(mode="json")
    for k, v in changes.items():
        if k == "classes":
            data["classes"] = {**data["classes"], **v}
        else:
            data[k] = v
    return data


def _propose(c: TestClient, policy: dict[str, Any]) -> dict[str, Any]:
    r = c.post("/v1/admin/policy/proposals", json={"policy": policy, "note": "test"})
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _sign(c: TestClient, p: dict[str, Any], k: SigningKey) -> Any:
    """The response (the test client's own response type: httpx's or httpx2's)."""
    return c.post(
        f"/v1/admin/policy/proposals/{p['proposal_id']}/signatures",
        json={"approver": k.name, "signature": proposal_sig(k, p)},
    )


@pytest.fixture
def approvers() -> dict[str, SigningKey]:
    return keys("alice", "bob", "carol")


def _gov_file(tmp: Path, ks: dict[str, SigningKey], m: int = 2) -> Path:
    return write(tmp / "governance.yaml", doc(list(ks.values()), m))


def test_loosening_needs_m_signatures_and_requests_carry_the_approved_hash(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    gov = _gov_file(tmp_path, approvers)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        st = c.get("/v1/admin/governance").json()
        assert st["threshold"] == 2 and st["governance_version"] == 1
        assert [a["name"] for a in st["approvers"]] == ["alice", "bob", "carol"]
        # a team key may not touch governance
        assert (
            c.get("/v1/admin/governance", headers={"authorization": f"Bearer {h.key}"}).status_code
            == 403
        )

        loose = _policy(h, classes={"financial": "allow"})
        p = _propose(c, loose)
        assert p["policy_hash"] == policy_hash(type(h.gw.policy.current[0]).model_validate(loose))
        assert "financial: allow" in p["diff"] and "financial: redact" in p["diff"]
        assert p["tightens_only"] is False and p["loosenings"]
        # nobody signed: refused; one signature on a loosening: refused
        assert c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply").status_code == 403
        assert _sign(c, p, approvers["alice"]).status_code == 200
        r = c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply")
        assert r.status_code == 403 and "loosens" in r.text
        # an outsider, a forged signature and alice's signature under bob's name do not count
        mallory = SigningKey.generate("mallory")
        assert _sign(c, p, mallory).status_code == 403
        r = c.post(
            f"/v1/admin/policy/proposals/{p['proposal_id']}/signatures",
            json={"approver": "bob", "signature": proposal_sig(approvers["alice"], p)},
        )
        assert r.status_code == 400
        assert c.get(f"/v1/admin/policy/proposals/{p['proposal_id']}").json()["valid_signers"] == [
            "alice"
        ]
        # the second approver makes M
        assert _sign(c, p, approvers["bob"]).json()["valid_signers"] == ["alice", "bob"]
        r = c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply")
        assert r.status_code == 200, r.text
        applied = r.json()
        assert applied["approval"] == "threshold" and applied["signers"] == ["alice", "bob"]
        assert h.gw.policy.current[1] == p["policy_hash"]
        # the applied version is a receipt with the signatures in it
        rec = h.gw.ledger.get_receipt(applied["receipt_id"])
        assert rec is not None and rec["receipt"]["kind"] == "policy"
        assert [s["approver"] for s in rec["receipt"]["signatures"]] == ["alice", "bob"]
        # applying twice is a conflict
        assert c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply").status_code == 409

        chat = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
        out = c.post("/v1/chat/completions", json=chat, headers=h.auth())
        assert out.status_code == 200, out.text
        rid = out.headers["x-hybridgate-receipt"]
        body = h.gw.ledger.get_receipt(rid)
        assert body is not None and body["receipt"]["policy_hash"] == p["policy_hash"]


def test_unapproved_policy_is_refused_by_reload(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    gov = _gov_file(tmp_path, approvers)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        before = h.gw.policy.current[1]
        r = c.post("/v1/admin/policy/reload", json=_policy(h, classes={"secret": "allow"}))
        assert r.status_code == 400
        assert "not the approved policy" in r.json()["error"]["message"]
        assert h.gw.policy.current[1] == before
        # re-loading the approved policy itself is fine
        r = c.post("/v1/admin/policy/reload", json=_policy(h))
        assert r.status_code == 200 and r.json()["policy_hash"] == before


def test_without_governance_reload_works_as_before(tmp_path: Path) -> None:
    with asgi_gateway_sync(tmp_path) as h:
        c = _api(h)
        r = c.post("/v1/admin/policy/reload", json=_policy(h, classes={"person": "allow"}))
        assert r.status_code == 200
        assert c.get("/v1/admin/policy/proposals").status_code == 404


def test_one_approver_may_apply_only_a_tightening_logged_as_emergency(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    gov = _gov_file(tmp_path, approvers, m=3)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        tight = _propose(c, _policy(h, classes={"financial": "block"}))
        assert tight["tightens_only"] is True
        assert _sign(c, tight, approvers["carol"]).status_code == 200
        r = c.post(f"/v1/admin/policy/proposals/{tight['proposal_id']}/apply")
        assert r.status_code == 200, r.text
        assert r.json()["approval"] == "emergency"
        rec = h.gw.ledger.get_receipt(r.json()["receipt_id"])
        assert rec is not None and rec["receipt"]["approval"] == "emergency"


def test_a_proposal_made_against_an_older_policy_goes_stale(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    gov = _gov_file(tmp_path, approvers, m=1)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        a = _propose(c, _policy(h, classes={"person": "block"}))
        b = _propose(c, _policy(h, classes={"contact": "block"}))
        for p in (a, b):
            assert _sign(c, p, approvers["alice"]).status_code == 200
        assert c.post(f"/v1/admin/policy/proposals/{a['proposal_id']}/apply").status_code == 200
        r = c.post(f"/v1/admin/policy/proposals/{b['proposal_id']}/apply")
        assert r.status_code == 409
        assert c.get(f"/v1/admin/policy/proposals/{b['proposal_id']}").json()["status"] == "stale"
        assert [
            x["proposal_id"] for x in c.get("/v1/admin/policy/proposals?status=open").json()["data"]
        ] == []


def test_bad_input_gets_clear_errors(tmp_path: Path, approvers: dict[str, SigningKey]) -> None:
    gov = _gov_file(tmp_path, approvers)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        assert (
            c.post("/v1/admin/policy/proposals", json={"policy": {"classes": {"x": 1}}}).status_code
            == 400
        )
        assert c.post("/v1/admin/policy/proposals", json={"policy": _policy(h)}).status_code == 409
        assert c.post("/v1/admin/policy/proposals", content=b"{").status_code == 400
        assert c.get("/v1/admin/policy/proposals/../../x").status_code == 404
        assert c.get("/v1/admin/policy/proposals/prop_" + "0" * 24).status_code == 404
        assert c.get("/v1/admin/policy/proposals?status=bogus").status_code == 400
        p = _propose(c, _policy(h, classes={"person": "block"}))
        for body in (
            {},
            {"approver": 1, "signature": "x"},
            {"approver": "alice", "signature": "x" * 300},
        ):
            r = c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/signatures", json=body)
            assert r.status_code == 400, (body, r.text)


def test_rotation_across_restarts_and_the_offline_trace(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    dave = SigningKey.generate("dave")
    v1 = doc(list(approvers.values()), 2)
    gov = write(tmp_path / "governance.yaml", v1)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        p = _propose(c, _policy(h, classes={"contact": "allow"}))
        for k in ("alice", "bob"):
            _sign(c, p, approvers[k])
        applied = c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply").json()
        chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        out = c.post("/v1/chat/completions", json=chat, headers=h.auth())
        assert out.status_code == 200, out.text
        traced_rid = out.headers["x-hybridgate-receipt"]

    # a rotation signed by one current approver only is not accepted: v1 stays
    v2 = doc([approvers["alice"], approvers["bob"], dave], 2, version=2, previous=v1.hash())
    write(gov, signed(v2, approvers["alice"], dave))
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        st = c.get("/v1/admin/governance").json()
        assert st["governance_version"] == 1 and "not accepted" in st["file_error"]
        # the approved policy survived the restart, not the config's
        assert h.gw.policy.current[1] == p["policy_hash"]

    # M of the current approvers and M of the new ones: accepted
    write(gov, signed(v2, approvers["alice"], approvers["bob"]))
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        c = _api(h)
        st = c.get("/v1/admin/governance").json()
        assert st["governance_version"] == 2 and st["file_error"] is None
        assert "dave" in [a["name"] for a in st["approvers"]]
        # carol is no longer an approver
        q = _propose(c, _policy(h, classes={"person": "block"}))
        assert _sign(c, q, approvers["carol"]).status_code == 403
        _sign(c, q, dave)
        assert (
            c.post(f"/v1/admin/policy/proposals/{q['proposal_id']}/apply").json()["approval"]
            == "emergency"
        )
        pub = h.gw.ledger_verifiers()[0].to_string()
        home = h.gw.config.home

    runner = CliRunner()
    res = runner.invoke(
        cli, ["policy", "history", "--verify", "--home", home, "--receipt", traced_rid]
    )
    assert res.exit_code == 0, res.output
    assert "governance v1" in res.output and "governance v2" in res.output
    assert f"receipt {traced_rid}: policy {applied['policy_hash']}" in res.output
    assert "approved by alice at" in res.output and "bob at" in res.output

    export = tmp_path / "export"
    assert runner.invoke(cli, ["log", "export", str(export), "--home", home]).exit_code == 0
    res = runner.invoke(
        cli,
        ["policy", "history", "--verify", "--dir", str(export), "--key", pub, "--root", v1.hash()],
    )
    assert res.exit_code == 0, res.output
    assert "emergency" in res.output
    res = runner.invoke(cli, ["policy", "history", "--dir", str(export), "--root", "0" * 64])
    assert res.exit_code == 1 and "pinned root" in res.output


def test_cli_propose_sign_apply(tmp_path: Path, approvers: dict[str, SigningKey]) -> None:
    gov = _gov_file(tmp_path, approvers)
    key_files = save_keys(tmp_path / "keys", approvers)
    with running_gateway(tmp_path, governance_file=str(gov)) as h:
        new = tmp_path / "policy.yaml"
        new.write_text(json.dumps({"policy": _policy(h, classes={"person": "allow"})}))
        runner = CliRunner(env={"HYBRIDGATE_ADMIN_KEY": ADMIN_KEY})
        res = runner.invoke(cli, ["policy", "propose", str(new), "--url", h.url])
        assert res.exit_code == 0, res.output
        pid = res.output.split()[1]
        assert pid.startswith("prop_") and "person: allow" in res.output
        r = runner.invoke(cli, ["policy", "apply", pid, "--url", h.url])
        assert r.exit_code == 1 and "403" in r.output
        for name in ("alice", "carol"):
            r = runner.invoke(
                cli, ["policy", "sign", pid, "--key", str(key_files[name]), "--url", h.url]
            )
            assert r.exit_code == 0, r.output
        assert "2 of 2" in r.output
        r = runner.invoke(cli, ["policy", "apply", pid, "--url", h.url])
        assert r.exit_code == 0, r.output
        assert "signed by alice, carol" in r.output
        assert h.gw.policy.current[0].classes[DataClass.PERSON].value == "allow"


def test_governance_sign_cli_builds_an_accepted_rotation(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    from hybridgate.governance.model import GovernanceDoc, check_rotation
    from hybridgate.governance.service import load_governance_file

    v1 = doc(list(approvers.values()), 2)
    key_files = save_keys(tmp_path / "keys", approvers)
    path = write(
        tmp_path / "v2.yaml", doc(list(approvers.values()), 3, version=2, previous=v1.hash())
    )
    runner = CliRunner()
    for name in ("alice", "bob", "carol"):
        r = runner.invoke(
            cli, ["policy", "governance-sign", str(path), "--key", str(key_files[name])]
        )
        assert r.exit_code == 0, r.output
    v2: GovernanceDoc = load_governance_file(path)
    assert check_rotation(v1, v2) == ["alice", "bob", "carol"]


def test_a_second_replica_adopts_an_applied_policy_after_checking_its_receipt(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    gov = _gov_file(tmp_path, approvers)
    with (
        asgi_gateway_sync(tmp_path, governance_file=str(gov)) as a,
        asgi_gateway_sync(tmp_path, governance_file=str(gov)) as b,
    ):
        c = _api(a)
        assert a.gw.policy.current[1] == b.gw.policy.current[1]
        p = _propose(c, _policy(a, classes={"contact": "allow"}))
        for k in ("alice", "bob"):
            assert _sign(c, p, approvers[k]).status_code == 200
        assert c.post(f"/v1/admin/policy/proposals/{p['proposal_id']}/apply").status_code == 200
        for _ in range(1000):  # replica b follows the shared store every 2 s
            if b.gw.policy.current[1] == p["policy_hash"]:
                break
            time.sleep(0.01)
        assert b.gw.policy.current[1] == p["policy_hash"]
        # and b's gate now admits exactly that policy
        r = b.client.post(
            "/v1/admin/policy/reload",
            json=_policy(a, classes={"contact": "block"}),
            headers=ADMIN,
        )
        assert r.status_code == 400


def test_sync_refuses_a_version_row_without_a_valid_receipt(
    tmp_path: Path, approvers: dict[str, SigningKey]
) -> None:
    from hybridgate.governance.store import GovernanceStore, PolicyVersion

    gov = _gov_file(tmp_path, approvers)
    with asgi_gateway_sync(tmp_path, governance_file=str(gov)) as h:
        svc = h.app.state.governance
        forged = _policy(h, classes={"secret": "allow"})
        from hybridgate.policy.model import PolicyConfig

        phash = policy_hash(PolicyConfig.model_validate(forged))
        before = h.gw.policy.current[1]
        # a row written straight into the store, pointing at an existing (bootstrap) receipt
        boot = GovernanceStore(h.gw.store).latest_version()
        assert boot is not None
        GovernanceStore(h.gw.store).add_version_sync(
            PolicyVersion(
                0, phash, forged, None, "threshold", [], boot.governance_hash, 1, boot.receipt_id
            )
        )
        assert svc.sync() is False
        assert h.gw.policy.current[1] == before
