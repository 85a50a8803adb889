"""A gateway with governance, action rules, a budget and approvers, for console tests:
on loopback (for the browser) or in-process (for plain HTTP checks)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from asgi_harness import AsgiHarness, asgi_gateway
from gateway_harness import Harness, running_gateway
from governance.gov_fixtures import doc, write
from hybridgate.ledger import SigningKey

POLICY = {
    "actions": [
        {
            "name": "big-transfer",
            "action": "EXECUTE_TRANSACTION",
            "effect": "require_approval",
            "when": [{"param": "amount", "op": "gt", "value": 1000}],
        },
        {"name": "transfers", "action": "EXECUTE_TRANSACTION", "effect": "allow"},
    ],
    "action_default": "deny",
}


@dataclass
class ConsoleEnv:
    h: Harness
    alice: SigningKey
    bob: SigningKey
    team_key: str


def _console_setup(tmp: Path) -> tuple[SigningKey, SigningKey, dict[str, Any]]:
    """Two approvers (their public keys on disk) and the gateway settings that use them."""
    alice, bob = SigningKey.generate("alice"), SigningKey.generate("bob")
    approvers = tmp / "approvers"
    approvers.mkdir()
    for k in (alice, bob):
        (approvers / f"{k.name}.pub").write_text(k.verifier().to_string() + "\n")
    gov = write(tmp / "governance.yaml", doc([alice, bob], 2))
    return (
        alice,
        bob,
        {
            "governance_file": str(gov),
            "policy": POLICY,
            "actions": {"hold_timeout_s": 60, "approvers_dir": str(approvers)},
            "budgets": [{"scope": "team", "name": "payments", "usd_per_day": 5}],
        },
    )


@contextmanager
def console_gateway(tmp: Path) -> Iterator[ConsoleEnv]:
    alice, bob, settings = _console_setup(tmp)
    with running_gateway(tmp, **settings) as h:
        team_key = h.new_key("payments")
        yield ConsoleEnv(h, alice, bob, team_key)


ORIGIN = "http://gateway"  # the ASGI harness's base URL: what a same-origin page sends


@dataclass
class AsgiConsoleEnv:
    h: AsgiHarness
    alice: SigningKey
    bob: SigningKey
    team_key: str
    _clients: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def browser(self, **headers: str) -> httpx.AsyncClient:
        """A client with its own cookie jar (one browser), closed with the env."""
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.h.app), base_url=ORIGIN, headers=headers
        )
        return await self._clients.enter_async_context(client)


@asynccontextmanager
async def asgi_console_gateway(tmp: Path) -> AsyncIterator[AsgiConsoleEnv]:
    """The console gateway in-process: enter it inside the test (one task)."""
    alice, bob, settings = _console_setup(tmp)
    async with asgi_gateway(tmp, **settings) as h:
        env = AsgiConsoleEnv(h, alice, bob, h.gw.keys.create("payments"))
        async with env._clients:
            yield env
