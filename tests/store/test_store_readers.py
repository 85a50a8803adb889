"""The commands that read what gateways wrote, on both stores: `usage report`, `log export`
and the planner's usage source give the same answers from SQLite and from PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hybridgate.accounting import UsageLog
from hybridgate.accounting.usage import UsageRecord
from hybridgate.cli.ledger_cmd import log_app
from hybridgate.cli.usage_cmd import app as usage_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.ledger import KeyRing, Ledger
from hybridgate.ledger.audit import export_log, verify_log
from hybridgate.planner.usage_source import (
    UsageUnavailable,
    measured_route_throughput,
    read_usage_sample,
)
from hybridgate.store.base import Store

StoreFactory = Callable[..., Store]
runner = CliRunner()
NOW = 1_773_144_000_000_000_000
MINUTE = 60 * 10**9


def _config(s: Store, home: Path) -> tuple[GatewayConfig, Path]:
    """A gateway configuration naming the store ``s`` lives in, and its file."""
    raw: dict[str, Any] = {"home": str(home)}
    if s.dialect == "postgres":
        raw["store"] = {"kind": "postgres", "dsn": s.dsn}  # type: ignore[attr-defined]
    else:
        raw["database"] = str(s.path)  # type: ignore[attr-defined]
    path = home / "hybridgate.yaml"
    path.write_text(yaml.safe_dump(raw))
    return parse_config(raw), path


def _rec(n: int, team: str, route: str, cost: str, outcome: str = "ok") -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{n}",
        receipt_id=f"rcpt_{n}",
        time_ns=NOW - 2 * MINUTE + n * 10**9,
        key_id=f"key_{team}",
        team=team,
        virtual_model="auto",
        route=route,
        provider="openai",
        location="on_prem",
        prompt_tokens=100 * n,
        completion_tokens=50,
        usage_reported=True,
        cost_usd=Decimal(cost),
        baseline_cost_usd=Decimal("0.01"),
        baseline_route="gpt",
        latency_ms=100.0,
        outcome=outcome,
        status=200,
    )


def _usage(store_factory: StoreFactory, tmp_path: Path) -> tuple[GatewayConfig, Path]:
    s = store_factory(UsageLog.migrations())
    log = UsageLog(s)
    log.record(_rec(1, "eng", "llama", "0.002"))
    log.record(_rec(2, "eng", "llama", "0.003"))
    log.record(_rec(3, "ops", "gpt", "0.01"))
    log.record(dataclasses.replace(_rec(4, "ops", "llama", "0"), outcome="refused"))
    s.write_sync(lambda conn: None)  # the deferred rows are committed
    return _config(s, tmp_path)


def test_usage_report_reads_either_store(store_factory: StoreFactory, tmp_path: Path) -> None:
    _, path = _usage(store_factory, tmp_path)
    r = runner.invoke(
        usage_app, ["report", "--config", str(path), "--by", "team", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    by = {row["group"]: row for row in out["rows"]}
    assert by["eng"]["ok"] == 2 and by["eng"]["cost_usd"] == "0.005"
    assert by["ops"]["ok"] == 1 and by["ops"]["refused"] == 1
    assert out["summary"]["requests"] == 4 and out["summary"]["prompt_tokens"] == 1000


def test_planner_usage_source_reads_either_store(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    cfg, _ = _usage(store_factory, tmp_path)
    s = read_usage_sample(cfg, by="team", group="eng", days=1, now_ns=NOW)
    assert (s.requests, s.prompt_tokens, s.completion_tokens) == (2, 300, 100)
    tps, where = measured_route_throughput(cfg, "llama", days=1, now_ns=NOW)
    assert tps == pytest.approx((300 + 100) / 60) and "2 requests" in where
    with pytest.raises(UsageUnavailable, match="no usage for team 'nobody'"):
        read_usage_sample(cfg, by="team", group="nobody", days=1, now_ns=NOW)


def test_planner_usage_source_without_a_usage_log(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    s = store_factory([])  # a store no gateway has written usage into
    cfg, _ = _config(s, tmp_path)
    with pytest.raises(UsageUnavailable, match="no usage_log table"):
        read_usage_sample(cfg, days=1, now_ns=NOW)


def _receipts(s: Store, cfg: GatewayConfig, n: int) -> Ledger:
    """``n`` receipts in the store's log, covered by a checkpoint, as its gateways leave it."""
    ring = KeyRing.load_or_create(cfg.home_path / "keys", cfg.ledger.origin)
    led: Ledger
    if s.dialect == "postgres":
        from hybridgate.ledger.shared import SharedLedger

        led = SharedLedger(s, ring, cfg.ledger, b"s" * 32)  # type: ignore[arg-type]
    else:
        led = Ledger(s, ring, cfg.ledger, b"s" * 32)

    async def append() -> None:
        for i in range(n):
            await led.append(led.new_receipt_id(), {"kind": "request", "n": i})

    asyncio.run(append())
    if s.dialect == "postgres":
        assert led.sequencer.step() == n  # type: ignore[attr-defined]
        led.sequencer._drop()  # type: ignore[attr-defined]
    return led


def test_log_export_from_either_store(
    store_factory: StoreFactory, store_kind: str, tmp_path: Path
) -> None:
    from hybridgate.ledger.shared import SharedLedger

    shared = store_kind == "postgres"
    s = store_factory(SharedLedger.migrations() if shared else Ledger.migrations())
    cfg, path = _config(s, tmp_path)
    led = _receipts(s, cfg, 9)
    # the function, on the open store
    out = tmp_path / "fn"
    assert export_log(s, out, led.checkpoint(), led.verifiers()) == 9
    report = verify_log(out, led.verifiers())
    assert report.ok and report.size == 9, report.error
    # the command, from the configuration alone
    s.close()
    cli_out = tmp_path / "cli"
    r = runner.invoke(log_app, ["export", str(cli_out), "--config", str(path)])
    assert r.exit_code == 0 and "exported 9 receipts" in r.output, r.output
    assert (cli_out / "receipts.jsonl").read_bytes() == (out / "receipts.jsonl").read_bytes()
    report = verify_log(cli_out, led.verifiers())
    assert report.ok and report.size == 9, report.error
