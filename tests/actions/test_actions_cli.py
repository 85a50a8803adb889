"""``hybridgate approvals`` against a real gateway on 127.0.0.1 (uvicorn, port 0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import uvicorn
from typer.testing import CliRunner, Result

from actions.actions_fixtures import ADMIN_KEY, Env, build_app, gate_env
from hybridgate.cli.approvals_cmd import app
from hybridgate.ledger import VerifierKey

BIG = {"amount": 5000, "to": "acct-9"}


@asynccontextmanager
async def served(env: Env) -> AsyncIterator[str]:
    config = uvicorn.Config(
        build_app(env.service), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started:
            break
        await asyncio.sleep(0.01)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


async def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, list(args), env=env)


async def test_keygen_list_approve_reject(tmp_path: Path) -> None:
    keys = tmp_path / "mykeys"
    r = await cli("keygen", "--name", "carol", "--out", str(keys))
    assert r.exit_code == 0, r.output
    assert (keys / "carol.key").stat().st_mode & 0o077 == 0
    pub = VerifierKey.parse((keys / "carol.pub").read_text().strip())
    assert pub.name == "carol"
    again = await cli("keygen", "--name", "carol", "--out", str(keys))
    assert again.exit_code == 1  # never overwrites a key

    async with gate_env(tmp_path / "gw", hold_timeout_s=10) as env, served(env) as url:
        (env.approvers_dir / "carol.pub").write_text((keys / "carol.pub").read_text())
        common = ["--url", url, "--admin-key", ADMIN_KEY]

        task = asyncio.create_task(env.authorize("EXECUTE_TRANSACTION", BIG))
        [held] = await env.wait_pending()
        listed = await cli("list", *common)
        assert listed.exit_code == 0, listed.output
        assert held["approval_id"] in listed.output
        as_json = await cli("list", "--json", *common)
        rows: list[dict[str, Any]] = json.loads(as_json.output)
        assert rows[0]["params"] == BIG

        ok = await cli(
            "approve", held["approval_id"], "--approver-key", str(keys / "carol.key"), *common
        )
        assert ok.exit_code == 0, ok.output
        assert "approved" in ok.output
        res = await asyncio.wait_for(task, 5)
        assert res.status_code == 200
        assert res.json()["receipt"]["receipt"]["approver"] == "carol"

        task = asyncio.create_task(env.authorize("EXECUTE_TRANSACTION", BIG))
        [held] = await env.wait_pending()
        no = await cli(
            "reject",
            held["approval_id"],
            "--approver-key",
            str(keys / "carol.key"),
            "--url",
            url,
            env={"HYBRIDGATE_ADMIN_KEY": ADMIN_KEY},
        )
        assert no.exit_code == 0, no.output
        assert (await asyncio.wait_for(task, 5)).status_code == 403

        # An approver key the gateway does not know is refused, and nothing is released.
        r = await cli("keygen", "--name", "alice", "--out", str(tmp_path / "mallory"))
        assert r.exit_code == 0
        task = asyncio.create_task(env.authorize("EXECUTE_TRANSACTION", BIG))
        [held] = await env.wait_pending()
        forged = await cli(
            "approve",
            held["approval_id"],
            "--approver-key",
            str(tmp_path / "mallory" / "alice.key"),
            *common,
        )
        assert forged.exit_code == 1
        assert "403" in forged.output
        bad_admin = await cli("list", "--url", url, "--admin-key", "wrong")
        assert bad_admin.exit_code == 1
        assert not task.done()
        task.cancel()
        assert env.executor.received == []


async def test_register_through_cli(tmp_path: Path) -> None:
    keys = tmp_path / "k"
    assert (await cli("keygen", "--name", "dave", "--out", str(keys))).exit_code == 0
    async with gate_env(tmp_path / "gw") as env, served(env) as url:
        r = await cli("register", str(keys / "dave.pub"), "--url", url, "--admin-key", ADMIN_KEY)
        assert r.exit_code == 0, r.output
        assert env.service.approvers.lookup("dave") is not None


async def test_cli_without_admin_key_fails_cleanly(tmp_path: Path) -> None:
    r = await cli("list", "--url", "http://127.0.0.1:9", env={"HYBRIDGATE_ADMIN_KEY": ""})
    assert r.exit_code == 1
    r = await cli("list", "--url", "http://127.0.0.1:9", "--admin-key", "x")
    assert r.exit_code == 1
    assert "cannot reach" in r.output
