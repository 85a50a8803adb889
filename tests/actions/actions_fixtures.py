"""A gateway-shaped test bed for the action gate: real store, real ledger, real
policy holder, the gate's Starlette routes behind an ASGI transport, and a
loopback executor on 127.0.0.1 that records every action it is asked to run."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from starlette.applications import Starlette
from starlette.requests import Request

from hybridgate.actions import ActionService, approval_payload, params_hash
from hybridgate.api.actions import action_routes
from hybridgate.api.errors import exception_handlers
from hybridgate.config import ActionsConfig, LedgerConfig
from hybridgate.errors import AuthenticationError
from hybridgate.keys import KeyInfo
from hybridgate.ledger import KeyRing, Ledger, SigningKey
from hybridgate.policy import PolicyHolder
from hybridgate.policy.model import ActionRule, ParamCondition, PolicyConfig
from hybridgate.store.sqlite import SQLiteStore

AGENT_KEY = "hg-agentkey01-secret"
OTHER_KEY = "hg-otherteam1-secret"
ADMIN_KEY = "admin-secret-key"
KEYS = {
    AGENT_KEY: KeyInfo(key_id="agentkey01", team="payments"),
    OTHER_KEY: KeyInfo(key_id="otherteam1", team="marketing"),
    ADMIN_KEY: KeyInfo(key_id=None, team=None, is_admin=True, name="admin"),
}


def gate_policy(**overrides: Any) -> PolicyConfig:
    rules = [
        ActionRule(
            name="big-transfer",
            action="EXECUTE_TRANSACTION",
            effect="require_approval",
            when=[ParamCondition(param="amount", op="gt", value=1000)],
        ),
        ActionRule(name="transfers", action="EXECUTE_TRANSACTION", effect="allow"),
        ActionRule(name="no-deletes", action="DELETE_*", effect="deny"),
    ]
    return PolicyConfig(actions=rules, action_default="deny", **overrides)


class Clock:
    """Injectable wall clock for receipt expiry."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class Executor:
    """Loopback executor: records every POST; answers ``status``."""

    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    url: str = ""


@asynccontextmanager
async def loopback_executor() -> AsyncIterator[Executor]:
    ex = Executor()

    async def handle(request: web.Request) -> web.Response:
        ex.received.append(await request.json())
        return web.json_response({"executed": True}, status=ex.status)

    app = web.Application()
    app.router.add_post("/execute", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    ex.url = f"http://127.0.0.1:{port}/execute"
    try:
        yield ex
    finally:
        await runner.cleanup()


async def authenticate(request: Request) -> KeyInfo:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    info = KEYS.get(value.strip()) if scheme.lower() == "bearer" else None
    if info is None:
        raise AuthenticationError("invalid API key")
    return info


@dataclass
class Env:
    root: Path
    store: SQLiteStore
    keyring: KeyRing
    ledger: Ledger
    holder: PolicyHolder
    service: ActionService
    client: httpx.AsyncClient
    executor: Executor
    clock: Clock
    approver: SigningKey
    approvers_dir: Path

    async def authorize(
        self, action: str, params: dict[str, Any], *, agent: str = "agent-7", key: str = AGENT_KEY
    ) -> httpx.Response:
        return await self.client.post(
            "/v1/actions/authorize",
            json={"agent_id": agent, "action": action, "params": params},
            headers={"authorization": f"Bearer {key}"},
        )

    async def gate(
        self, action: str, params: dict[str, Any], receipt: Any, *, agent: str = "agent-7"
    ) -> httpx.Response:
        body: dict[str, Any] = {"agent_id": agent, "action": action, "params": params}
        if receipt is not None:
            body["receipt"] = receipt
        return await self.client.post("/v1/gate", json=body)

    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN_KEY}"}

    async def wait_pending(self, n: int = 1) -> list[dict[str, Any]]:
        for _ in range(200):
            r = await self.client.get("/v1/admin/approvals?status=pending", headers=self.admin())
            data: list[dict[str, Any]] = r.json()["data"]
            if len(data) >= n:
                return data
            await asyncio.sleep(0.01)
        raise AssertionError("no pending approval appeared")

    def sign_decision(
        self, held: dict[str, Any], decision: str, key: SigningKey | None = None
    ) -> str:
        payload = approval_payload(
            approval_id=held["approval_id"],
            decision=decision,
            action=held["action"],
            params_hash=held["params_hash"],
            agent_id=held["agent_id"],
        )
        return base64.b64encode((key or self.approver).sign(payload)).decode()

    async def decide(
        self,
        held: dict[str, Any],
        decision: str,
        *,
        approver: str = "alice",
        sig: str | None = None,
    ) -> httpx.Response:
        return await self.client.post(
            f"/v1/admin/approvals/{held['approval_id']}",
            json={
                "decision": decision,
                "approver": approver,
                "signature": sig if sig is not None else self.sign_decision(held, decision),
            },
            headers=self.admin(),
        )

    def new_service(self) -> ActionService:
        """A second service on the same store, as after a gateway restart."""
        return ActionService(
            self.ledger,
            self.holder,
            self.store,
            self.service.config,
            self.clock,
            verifiers=self.keyring.verifiers,
        )


def build_app(service: ActionService) -> Starlette:
    return Starlette(
        routes=action_routes(service, authenticate), exception_handlers=exception_handlers()
    )


@asynccontextmanager
async def gate_env(
    root: Path,
    *,
    hold_timeout_s: float = 0.2,
    receipt_ttl_s: float = 60.0,
    forward: bool = True,
    policy: PolicyConfig | None = None,
) -> AsyncIterator[Env]:
    approvers_dir = root / "approvers"
    approvers_dir.mkdir(parents=True, exist_ok=True)
    approver = SigningKey.generate("alice")
    (approvers_dir / "alice.pub").write_text(approver.verifier().to_string() + "\n")
    store = SQLiteStore(root / "gw.db")
    store.open([*Ledger.migrations(), *ActionService.migrations()])
    keyring = KeyRing.load_or_create(root / "keys", "test.local/receipts")
    ledger = Ledger(
        store,
        keyring,
        LedgerConfig(
            origin="test.local/receipts", checkpoint_interval_s=3600, commit_interval_ms=0
        ),
        commitment_secret=b"s" * 32,
    )
    await ledger.start()
    holder = PolicyHolder(policy or gate_policy())
    clock = Clock()
    async with loopback_executor() as executor:
        config = ActionsConfig(
            hold_timeout_s=hold_timeout_s,
            receipt_ttl_s=receipt_ttl_s,
            executor_url=executor.url if forward else None,
            approvers_dir=str(approvers_dir),
        )
        service = ActionService(ledger, holder, store, config, clock, verifiers=keyring.verifiers)
        transport = httpx.ASGITransport(app=build_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            try:
                yield Env(
                    root,
                    store,
                    keyring,
                    ledger,
                    holder,
                    service,
                    client,
                    executor,
                    clock,
                    approver,
                    approvers_dir,
                )
            finally:
                await service.aclose()
                await ledger.aclose()
                store.close()


__all__ = ["Env", "gate_env", "params_hash"]
