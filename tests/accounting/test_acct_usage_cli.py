"""`hybridgate usage report` through Typer's runner, against a real gateway.db."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridgate.accounting import UsageLog, UsageRecord
from hybridgate.cli.usage_cmd import app
from hybridgate.store.sqlite import SQLiteStore

runner = CliRunner()


def record(n: int, team: str, route: str, cost: str, baseline: str, latency: float) -> UsageRecord:
    return UsageRecord(
        request_id=f"req_{n}",
        receipt_id=f"rcpt_{n}",
        time_ns=1_773_144_000_000_000_000 + n,
        key_id=f"key_{team}",
        team=team,
        virtual_model="auto",
        route=route,
        provider="openai",
        location="external" if route == "gpt" else "on_prem",
        prompt_tokens=100,
        completion_tokens=50,
        usage_reported=True,
        cost_usd=Decimal(cost),
        baseline_cost_usd=Decimal(baseline),
        baseline_route="gpt",
        latency_ms=latency,
        outcome="ok",
        status=200,
    )


def make_db(path: Path) -> None:
    store = SQLiteStore(path)
    store.open(UsageLog.migrations())
    log = UsageLog(store)
    log.record(record(1, "eng", "gpt", "0.01", "0.01", 900.0))
    log.record(record(2, "eng", "llama", "0.002", "0.01", 300.0))
    log.record(record(3, "ops", "llama", "0.001", "0.01", 100.0))
    store.close()  # drains the writer


@pytest.fixture
def home(tmp_path: Path) -> Path:
    make_db(tmp_path / "gateway.db")
    return tmp_path


def test_json_report_by_team(home: Path) -> None:
    res = runner.invoke(app, ["report", "--home", str(home), "--by", "team", "--format", "json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    rows = {r["group"]: r for r in data["rows"]}
    assert rows["eng"]["cost_usd"] == "0.012" and rows["eng"]["saved_usd"] == "0.008"
    assert rows["ops"]["saved_usd"] == "0.009"
    s = data["summary"]
    assert s["cost_usd"] == "0.013" and s["baseline_cost_usd"] == "0.03"
    assert s["saved_pct"] == pytest.approx(56.67)
    # gpt averages 900 ms: (900-900) + (900-300) + (900-100)
    assert s["time_saved_ms"] == pytest.approx(1400.0)


def test_table_report_by_location(home: Path) -> None:
    res = runner.invoke(app, ["report", "--home", str(home), "--by", "location"])
    assert res.exit_code == 0, res.output
    assert "on_prem" in res.output and "external" in res.output
    assert "$0.013" in res.output  # the total line
    assert "1.400 s" in res.output


def test_summary_only_without_by_and_key_filter(home: Path) -> None:
    res = runner.invoke(
        app, ["report", "--home", str(home), "--format", "json", "--key", "key_ops"]
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert "rows" not in data
    assert data["summary"]["requests"] == 1


def test_home_from_environment(home: Path) -> None:
    res = runner.invoke(app, ["report", "--format", "json"], env={"HYBRIDGATE_HOME": str(home)})
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["summary"]["requests"] == 3


def test_config_file_names_the_database(tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "usage.db"
    db.parent.mkdir()
    make_db(db)
    cfg = tmp_path / "hybridgate.yaml"
    cfg.write_text(f"home: {tmp_path / 'home'}\ndatabase: {db}\n", encoding="utf-8")
    res = runner.invoke(app, ["report", "--config", str(cfg), "--by", "route", "--format", "json"])
    assert res.exit_code == 0, res.output
    assert {r["group"] for r in json.loads(res.output)["rows"]} == {"gpt", "llama"}


def test_missing_database_is_an_error_not_a_new_file(tmp_path: Path) -> None:
    res = runner.invoke(app, ["report", "--home", str(tmp_path / "nothing")])
    assert res.exit_code == 1
    assert not (tmp_path / "nothing" / "gateway.db").exists()


def test_bad_config_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("routes: 7\n", encoding="utf-8")
    res = runner.invoke(app, ["report", "--config", str(cfg)])
    assert res.exit_code == 2


def test_unknown_grouping_is_rejected(home: Path) -> None:
    res = runner.invoke(app, ["report", "--home", str(home), "--by", "prompt"])
    assert res.exit_code != 0
