"""Every `hybridgate distill` command from the command line, on SQLite and on PostgreSQL.

A gateway captures a task's pairs; then, as an operator would beside it, the
commands read its configuration file: status, override, train, provenance,
verify, promote, report. On PostgreSQL the gateway's sequencer is slowed to
ten minutes, so nothing merges until the test steps it: the receipts the
commands queue (the override, the registration, the manifest) are reported
as pending, with no index, and once merged the manifest's index is the one
its inclusion proof verifies. The commands never sequence the log themselves.
"""

from __future__ import annotations

import copy
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from distill.flywheel_env import service, triage_gateway
from gateway_harness import Harness
from hybridgate.cli.main import app as cli
from hybridgate.distill.provenance import PROVENANCE_FILE, verify_provenance
from hybridgate.distill.tickets import ticket, vocabulary
from hybridgate.ledger.receipt import BUNDLE_FORMAT, PROMISE_FORMAT

pytest.importorskip("peft")
pytest.importorskip("tokenizers")

from hybridgate.distill.tiny import build_tiny_base

TASK = "ticket-triage"
PAIRS = 40
runner = CliRunner()


def _cli(cfg: Path, *args: str) -> Result:
    return runner.invoke(cli, ["distill", *args, "--config", str(cfg)])


def _merge(h: Harness) -> int:
    """On the shared log, one sequencer step of the gateway (the elected leader)."""
    seq = getattr(h.gw.ledger, "sequencer", None)
    return 0 if seq is None else int(seq.step())


def _status_row(cfg: Path) -> dict[str, str]:
    r = _cli(cfg, "status", TASK)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    head = next(line for line in lines if "pending" in line)
    row = next(line for line in lines if TASK in line)
    names = [c.strip() for c in head.split("┃")[1:-1]]
    return dict(zip(names, [c.strip() for c in row.split("│")[1:-1]], strict=True))


def _events(cfg: Path) -> list[dict[str, Any]]:
    r = _cli(cfg, "report", TASK, "--json")
    assert r.exit_code == 0, r.output
    events: list[dict[str, Any]] = json.loads(r.output)["events"]
    return events


def _capture(h: Harness) -> None:
    client = h.openai(h.new_key(team="support"))
    rng = random.Random(5)
    for _ in range(PAIRS):
        client.chat.completions.create(
            model=f"task:{TASK}", messages=[{"role": "user", "content": ticket(rng)[0]}]
        )
    svc = service(h)
    deadline = time.monotonic() + 60
    while svc.busy or svc.store.count(TASK) < PAIRS:  # captures finish in the background
        assert time.monotonic() < deadline, "captures did not finish"
        time.sleep(0.02)


@pytest.mark.timeout(600)
def test_the_distill_commands_on_either_store(
    tmp_path: Path, store_section: dict[str, Any]
) -> None:
    shared = store_section["kind"] == "postgres"
    store = {**store_section, "sequencer_interval_ms": 600_000} if shared else store_section
    base = build_tiny_base(tmp_path / "tiny-llama", vocabulary(), seed=0)
    with triage_gateway(
        tmp_path,
        store=store,
        student={"base_model": str(base), "max_new_tokens": 3},
        train={"seed": 0, "epochs": 2, "cpu_threads": 1},
    ) as h:
        cfg = tmp_path / "hybridgate.yaml"
        cfg.write_text(yaml.safe_dump(h.config.model_dump(mode="json", exclude_unset=True)))
        _capture(h)
        row = _status_row(cfg)
        assert (row["stage"], row["pairs"]) == ("off", str(PAIRS))
        # on the shared log the captured pairs' receipts wait for the sequencer
        assert row["pending"] == (str(PAIRS) if shared else "0")
        if shared:
            r = _cli(cfg, "train", TASK, "--device", "cpu")
            assert r.exit_code == 2, r.output
            assert f"{PAIRS} more captured pairs wait for the shared log" in r.output
            assert _merge(h) == PAIRS
            assert _status_row(cfg)["pending"] == "0"

        # an override, a signed receipt the command queues (pending until merged)
        r = _cli(cfg, "override", TASK, "llama-3.1-8b", "--reason", "a", "--operator", "ops")
        assert r.exit_code == 0 and "override recorded" in r.output, r.output
        (ev,) = _events(cfg)
        assert ev["event"] == "terms_override"
        assert (ev["log_index"] is None) == shared and ev.get("pending", False) == shared

        # train, evaluate, register, publish the manifest
        r = _cli(cfg, "train", TASK, "--device", "cpu", "--wait", "0")
        assert r.exit_code == 0, r.output
        assert "registered as 'ticket-triage'" in r.output
        (run_dir,) = (h.config.home_path / "distill" / TASK).glob("run-*")
        doc = json.loads((run_dir / PROVENANCE_FILE).read_text())
        manifest = doc["manifest"]["receipt"]
        rids = manifest["training_receipts"]["receipt_ids"]
        cited = manifest["training_receipts"]["log_indices"]
        # every cited index is the one the log proves for that receipt, in log order
        assert cited == [h.gw.ledger.bundle(rid)["log_index"] for rid in rids]  # type: ignore[index]
        assert cited == sorted(cited) and len(cited) == manifest["dataset"]["pairs"] >= 20
        keys = h.gw.ledger_verifiers()
        key_arg = keys[0].to_string()
        mr_id = doc["manifest_receipt"]["receipt"]["receipt_id"]
        if shared:
            assert doc["manifest_receipt"]["format"] == PROMISE_FORMAT
            assert f"manifest receipt {mr_id} is pending" in r.output
            assert "hybridgate distill provenance" in r.output
            # offline verification does not pass a promise for a proof
            r = runner.invoke(cli, ["distill", "verify", str(run_dir), "--key", key_arg])
            assert r.exit_code == 1 and "is pending" in r.output, r.output
            r = _cli(cfg, "provenance", str(run_dir))
            assert r.exit_code == 3 and "is pending" in r.output, r.output
            assert [e["log_index"] for e in _events(cfg)] == [None, None]
            assert _merge(h) == 3  # the override, the manifest, the registration
        r = _cli(cfg, "provenance", str(run_dir))
        assert r.exit_code == 0, r.output
        index = h.gw.ledger.bundle(mr_id)["log_index"]  # type: ignore[index]
        assert f"manifest receipt {mr_id} at log index {index} (inclusion proof verified" in (
            r.output
        )
        doc = json.loads((run_dir / PROVENANCE_FILE).read_text())
        assert doc["manifest_receipt"]["format"] == BUNDLE_FORMAT
        assert verify_provenance(doc, keys) == []
        r = runner.invoke(cli, ["distill", "verify", str(run_dir), "--key", key_arg])
        assert r.exit_code == 0, r.output
        assert f"in the log at index {index};" in r.output
        # a training receipt's bundle claiming another index fails (SQLite: against its
        # signed body; the shared log: against its inclusion proof)
        moved = copy.deepcopy(doc)
        moved["training_receipts"][0]["log_index"] += 1
        problems = verify_provenance(moved, keys)
        assert len(problems) == 1 and f"training receipt {rids[0]}" in problems[0], problems
        assert ("inclusion" if shared else "differs from the signed receipt") in problems[0]

        # promote; the report lists every step with its index once merged
        r = _cli(cfg, "promote", TASK, "--to", "shadow", "--reason", "eval ok")
        assert r.exit_code == 0 and "registered -> shadow" in r.output, r.output
        if shared:
            assert _events(cfg)[-1]["pending"] is True
            assert _merge(h) == 1
        events = _events(cfg)
        assert [(e["event"], e.get("to_stage")) for e in events] == [
            ("terms_override", None),
            ("stage", "registered"),
            ("stage", "shadow"),
        ]
        indices = [e["log_index"] for e in events]
        assert all(isinstance(i, int) for i in indices) and indices == sorted(indices)
        assert not any(e.get("pending") for e in events)
        r = _cli(cfg, "report", TASK)
        assert r.exit_code == 0 and f"#{indices[-1]} stage: registered -> shadow" in r.output
        assert _status_row(cfg)["stage"] == "shadow"
        assert service(h).store.state(TASK).stage == "shadow"  # type: ignore[union-attr]
