"""`hybridgate receipt …` and `hybridgate log …` through Typer's test runner."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from hybridgate.cli.ledger_cmd import log_app, receipt_app
from hybridgate.config import LedgerConfig
from ledger.ledger_env import LedgerEnv, request_fields

DEFAULT_ORIGIN = LedgerConfig().origin
runner = CliRunner()


def run(app: typer.Typer, *args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args], env={"HYBRIDGATE_HOME": "/nonexistent"})


@pytest.fixture
def home(tmp_path: Path) -> LedgerEnv:
    env = LedgerEnv(tmp_path / "home", origin=DEFAULT_ORIGIN)
    env.fill(9)
    env.ledger.checkpoint()
    env.fill(3)
    return env


def test_receipt_verify_bundle(home: LedgerEnv, tmp_path: Path) -> None:
    rid = home.ledger.new_receipt_id()
    home.ledger.append_sync(rid, request_fields())
    bundle = tmp_path / "b.json"
    bundle.write_text(json.dumps(home.ledger.bundle(rid)))
    pub = home.ring.active.verifier().to_string()
    r = run(receipt_app, "verify", bundle, "--key", pub)
    assert r.exit_code == 0 and "valid" in r.output and "on_prem" in r.output, r.output
    keyfile = tmp_path / "gw.pub"
    keyfile.write_text("# gateway\n" + pub + "\n")
    assert run(receipt_app, "verify", bundle, "--key", keyfile).exit_code == 0

    doc = json.loads(bundle.read_text())
    doc["receipt"]["route"] = "gpt-4o"
    bundle.write_text(json.dumps(doc))
    r = run(receipt_app, "verify", bundle, "--key", pub)
    assert r.exit_code == 1 and "INVALID" in r.output and "signature" in r.output


def test_receipt_verify_action_receipts(home: LedgerEnv, tmp_path: Path) -> None:
    rid = home.ledger.new_receipt_id()
    fields = {
        "kind": "action",
        "action": "EXECUTE_TRANSACTION",
        "params_hash": "ab" * 32,
        "agent_id": "agent-7",
        "team": "payments",
        "key_id": "k1",
        "policy_hash": "cd" * 32,
        "expires_at_ns": str(2**62),
        "nonce": "00" * 16,
        "outcome": "allowed",
    }
    home.ledger.append_sync(rid, fields)
    answer = {"verdict": "ALLOW", "receipt": home.ledger.get_receipt(rid)}
    answer["bundle"] = home.ledger.bundle(rid)
    f = tmp_path / "answer.json"
    f.write_text(json.dumps(answer))
    pub = home.ring.active.verifier().to_string()
    r = run(receipt_app, "verify", f, "--key", pub)
    assert r.exit_code == 0 and "EXECUTE_TRANSACTION" in r.output and "agent-7" in r.output
    f.write_text(json.dumps(answer["receipt"]))  # a bare signed receipt: signature only
    r = run(receipt_app, "verify", f, "--key", pub)
    assert r.exit_code == 0 and "signature only" in r.output


def test_receipt_verify_usage_errors(home: LedgerEnv, tmp_path: Path) -> None:
    f = tmp_path / "x.json"
    f.write_text("{not json")
    pub = home.ring.active.verifier().to_string()
    assert run(receipt_app, "verify", f, "--key", pub).exit_code == 2
    assert run(receipt_app, "verify", f).exit_code == 2
    f.write_text("{}")
    assert run(receipt_app, "verify", f, "--key", "garbage").exit_code == 2
    assert run(receipt_app, "verify", f, "--key", pub).exit_code == 1


def test_log_verify_database_and_names_bad_index(home: LedgerEnv) -> None:
    r = run(log_app, "verify", "--home", home.root)
    assert r.exit_code == 0 and "12 receipts" in r.output and "newer" in r.output, r.output
    with sqlite3.connect(home.root / "gateway.db") as db:
        db.execute("DELETE FROM ledger_entries WHERE idx = 6")
    r = run(log_app, "verify", "--home", home.root)
    assert r.exit_code == 1 and "index 6" in r.output, r.output


def test_export_verifies_elsewhere(home: LedgerEnv, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    r = run(log_app, "export", out, "--home", home.root)
    assert r.exit_code == 0 and "exported 12" in r.output, r.output
    pub = (out / "public-keys.txt").read_text().splitlines()[0]
    home.close()
    shutil.rmtree(home.root)  # another machine: no database, no private keys
    r = run(log_app, "verify", "--dir", out, "--key", pub)
    assert r.exit_code == 0 and "12 receipts" in r.output, r.output
    assert run(log_app, "verify", "--dir", out).exit_code == 2  # the key must come from elsewhere
    lines = (out / "receipts.jsonl").read_bytes().splitlines(keepends=True)
    (out / "receipts.jsonl").write_bytes(b"".join(lines[:5] + lines[6:]))
    r = run(log_app, "verify", "--dir", out, "--key", pub)
    assert r.exit_code == 1 and "index 5" in r.output


def test_checkpoint_and_public_key(home: LedgerEnv) -> None:
    r = run(log_app, "checkpoint", "--home", home.root)
    assert r.exit_code == 0 and r.output.startswith(DEFAULT_ORIGIN + "\n12\n"), r.output
    r = run(log_app, "public-key", "--home", home.root)
    assert r.exit_code == 0 and r.output.strip() == home.ring.active.verifier().to_string()


def test_consistency_growth_rollback_and_fork(home: LedgerEnv, tmp_path: Path) -> None:
    old = tmp_path / "old.cp"
    old.write_text(home.ledger.checkpoint())  # size 12
    home.fill(5)
    r = run(log_app, "consistency", "--old", old, "--home", home.root)
    assert r.exit_code == 0 and "12 -> 17" in r.output, r.output

    # A fork: another log under the same key with different entries.
    forked = tmp_path / "fork"
    forked.mkdir()
    shutil.copytree(home.root / "keys", forked / "keys")
    other = LedgerEnv(forked, origin=DEFAULT_ORIGIN)
    other.fill(20)
    other.close()
    r = run(log_app, "consistency", "--old", old, "--home", forked)
    assert r.exit_code == 1 and "fork" in r.output, r.output

    # A rollback: the log lost its tail (checkpoints after it included).
    newer = tmp_path / "newer.cp"
    newer.write_text(home.ledger.checkpoint())  # size 17
    home.close()
    with sqlite3.connect(home.root / "gateway.db") as db:
        db.execute("DELETE FROM ledger_entries WHERE idx >= 14")
        db.execute("DELETE FROM ledger_checkpoints WHERE tree_size > 14")
    r = run(log_app, "consistency", "--old", newer, "--home", home.root)
    assert r.exit_code == 1 and "rollback" in r.output, r.output


def test_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    r = run(log_app, "verify", "--home", tmp_path / "nothing")
    assert r.exit_code == 2


def test_the_by_hand_check_in_docs_works(home: LedgerEnv, tmp_path: Path) -> None:
    """docs/audit.md shows an auditor how to verify with hashlib and cryptography alone."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "audit.md"
    text = doc.read_text(encoding="utf-8")
    section = text[text.index("## Checking by hand") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("\n```", start)]
    work = tmp_path / "auditor"
    work.mkdir()
    assert run(log_app, "export", work / "audit", "--home", home.root).exit_code == 0
    (work / "gw.pub").write_text(home.ring.active.verifier().to_string() + "\n")
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok 12", proc.stderr
    lines = (work / "audit" / "receipts.jsonl").read_bytes().splitlines(keepends=True)
    (work / "audit" / "receipts.jsonl").write_bytes(b"".join(lines[1:]))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=work, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
