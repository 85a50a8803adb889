"""A real gateway with governance, action rules, a budget and an approver, for console tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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


@contextmanager
def console_gateway(tmp: Path) -> Iterator[ConsoleEnv]:
    alice, bob = SigningKey.generate("alice"), SigningKey.generate("bob")
    approvers = tmp / "approvers"
    approvers.mkdir()
    for k in (alice, bob):
        (approvers / f"{k.name}.pub").write_text(k.verifier().to_string() + "\n")
    gov = write(tmp / "governance.yaml", doc([alice, bob], 2))
    with running_gateway(
        tmp,
        governance_file=str(gov),
        policy=POLICY,
        actions={"hold_timeout_s": 60, "approvers_dir": str(approvers)},
        budgets=[{"scope": "team", "name": "payments", "usd_per_day": 5}],
    ) as h:
        team_key = h.new_key("payments")
        yield ConsoleEnv(h, alice, bob, team_key)
