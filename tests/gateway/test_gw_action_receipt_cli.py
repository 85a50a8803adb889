"""`hybridgate receipt verify` checks an action receipt's binding to an action and params."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from gateway_harness import running_gateway
from hybridgate.cli.main import app

RULES = {"actions": [{"name": "transfers", "action": "EXECUTE_TRANSACTION", "effect": "allow"}]}


def test_receipt_verify_binds_action_receipts_to_params(tmp_path: Path) -> None:
    with running_gateway(tmp_path, policy=RULES) as h:
        auth = {"authorization": f"Bearer {h.key}"}
        params = {"amount": 250, "to": "ACME"}
        answer = httpx.post(
            h.url + "/v1/actions/authorize",
            headers=auth,
            json={"agent_id": "a1", "action": "EXECUTE_TRANSACTION", "params": params},
        )
        assert answer.status_code == 200
        pub = httpx.get(h.url + "/v1/log/public-key", headers=auth).json()["active"]
    doc = tmp_path / "answer.json"
    doc.write_text(json.dumps(answer.json()))
    runner = CliRunner()
    base = ["receipt", "verify", str(doc), "--key", pub]
    ok = runner.invoke(
        app, [*base, "--action", "EXECUTE_TRANSACTION", "--params", json.dumps(params)]
    )
    assert ok.exit_code == 0, ok.output
    assert "authorizes EXECUTE_TRANSACTION" in ok.output
    bad = runner.invoke(
        app,
        [*base, "--action", "EXECUTE_TRANSACTION", "--params", '{"amount": 2500, "to": "ACME"}'],
    )
    assert bad.exit_code == 1 and "INVALID" in bad.output
    other = runner.invoke(
        app, [*base, "--action", "DELETE_ACCOUNT", "--params", json.dumps(params)]
    )
    assert other.exit_code == 1
    plain = runner.invoke(app, base)
    assert plain.exit_code == 0 and "kind action" in plain.output
