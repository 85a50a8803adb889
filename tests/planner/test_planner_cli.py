"""The catalog and plan commands through Typer's runner, and --from-usage on a real usage log."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from hybridgate.accounting.usage import UsageLog, UsageRecord
from hybridgate.cli import catalog_cmd, plan_cmd
from hybridgate.config import load_config
from hybridgate.planner.usage_source import (
    NS_PER_DAY,
    UsageSample,
    UsageUnavailable,
    read_usage_sample,
    workload_from_sample,
)
from hybridgate.store.sqlite import SQLiteStore
from planner.planner_samples import good_entry

runner = CliRunner()
ENV = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "sk-y"}


def test_catalog_list_filters_json() -> None:
    r = runner.invoke(
        catalog_cmd.app, ["list", "--min-openness", "3", "--commercial", "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    names = {row["name"] for row in rows}
    assert "olmo-2-7b" in names and "llama-3-70b" not in names and "gpt-4o" not in names
    assert all(row["openness"] >= 3 and row["commercial"] for row in rows)


def test_catalog_list_user_threshold_alias_and_table() -> None:
    r = runner.invoke(
        catalog_cmd.app, ["list", "--max-mau-threshold", "800000000", "--format", "json"]
    )
    names = {row["name"] for row in json.loads(r.output)}
    assert "llama-3-8b" not in names and "mistral-7b" in names
    table = runner.invoke(catalog_cmd.app, ["list", "--api-only"])
    assert table.exit_code == 0 and "gpt-4o" in table.output and "mixtral" not in table.output


def test_catalog_show_json_and_table() -> None:
    r = runner.invoke(catalog_cmd.app, ["show", "llama-3-70b", "--format", "json"])
    data = json.loads(r.output)
    assert data["licence"]["mau_threshold"] == 700_000_000
    assert data["architecture"]["source"].startswith("https://")
    t = runner.invoke(catalog_cmd.app, ["show", "deepseek-v3"])
    assert t.exit_code == 0 and "kv_latent_dim" in t.output and "576" in t.output
    missing = runner.invoke(catalog_cmd.app, ["show", "no-such-model"])
    assert missing.exit_code == 1


def test_catalog_reads_user_entries_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "h.yaml"
    cfg.write_text(yaml.safe_dump({"catalog": [good_entry()]}), encoding="utf-8")
    r = runner.invoke(
        catalog_cmd.app, ["show", "acme-7b", "--config", str(cfg), "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    bad = good_entry()
    del bad["params"]["source"]
    cfg.write_text(yaml.safe_dump({"catalog": [bad]}), encoding="utf-8")
    r = runner.invoke(catalog_cmd.app, ["list", "--config", str(cfg)])
    assert r.exit_code == 2 and "params.source" in r.output


def test_plan_tco_table_explain_and_plot(tmp_path: Path) -> None:
    png = tmp_path / "tco.png"
    args = [
        "tco",
        "--requests",
        "1000000",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "300",
        "--api",
        "gpt-4o",
        "--self-host",
        "llama-3-70b:gpus=2,hourly=2.5,tps=1200,ops=1000,setup=5000",
        "--explain",
        "--plot",
        str(png),
    ]
    r = runner.invoke(plan_cmd.app, args)
    assert r.exit_code == 0, r.output
    assert "$5,500.00" in r.output and "$4,650.00" in r.output
    assert "845,455" in r.output  # (1000 + 3650) / 0.0055
    assert "user-supplied" in r.output  # where the throughput came from
    assert "formulas:" in r.output
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000


def test_plan_tco_json() -> None:
    r = runner.invoke(
        plan_cmd.app,
        [
            "tco",
            "--requests",
            "2000",
            "--input-tokens",
            "500",
            "--output-tokens",
            "100",
            "--api",
            "claude-3-5-sonnet",
            "--format",
            "json",
        ],
    )
    data = json.loads(r.output)
    # 2000 × (500 × 3 + 100 × 15) / 1e6 = 2000 × 0.003 = 6
    assert data["options"][0]["monthly_usd"] == pytest.approx(6.0)


def test_plan_tco_errors() -> None:
    r = runner.invoke(plan_cmd.app, ["tco", "--requests", "1", "--api", "gpt-4o"])
    assert r.exit_code == 2
    r = runner.invoke(
        plan_cmd.app,
        ["tco", "--requests", "1", "--input-tokens", "1", "--output-tokens", "1",
         "--self-host", "llama-3-70b:gpus=2,hourly=2"],
    )  # fmt: skip
    assert r.exit_code == 2 and "tps=" in r.output


def test_plan_hardware() -> None:
    r = runner.invoke(
        plan_cmd.app,
        ["hardware", "--model", "llama-3-8b", "--quant", "fp16", "--context", "8192",
         "--batch", "1", "--format", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["kv_cache_gib"] == pytest.approx(1.0)
    assert d["weights_gib"] == pytest.approx(16.06e9 / 2**30)
    table = runner.invoke(plan_cmd.app, ["hardware", "--model", "mixtral-8x7b", "--quant", "int4"])
    assert table.exit_code == 0 and "assumption:" in table.output and "H200" in table.output
    closed = runner.invoke(plan_cmd.app, ["hardware", "--model", "gpt-4o"])
    assert closed.exit_code == 1 and "parameter" in closed.output


def test_plan_recommend_writes_yaml_that_config_check_accepts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hybridgate.cli.core_cmd import config_app

    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "hybridgate.yaml"
    r = runner.invoke(
        plan_cmd.app,
        ["recommend", "--profile", "consulting", "--volume", "100000", "--out", str(out)],
    )
    assert r.exit_code == 0, r.output
    assert "data_control" in r.output
    checked = runner.invoke(config_app, ["check", str(out)])
    assert checked.exit_code == 0, checked.output
    cfg = load_config(out, env=ENV)
    assert {b.name for b in cfg.budgets} == {"client-a", "client-b", "internal"}
    ids = runner.invoke(catalog_cmd.app, ["check", "-c", str(out)])
    assert ids.exit_code == 0 and "active, pinned model id" in ids.output
    again = runner.invoke(plan_cmd.app, ["recommend", "--profile", "solo", "--out", str(out)])
    assert again.exit_code == 1  # no silent overwrite
    j = runner.invoke(
        plan_cmd.app,
        ["recommend", "--profile", "product", "--format", "json", "--today", "2026-12-04"],
    )
    payload = json.loads(j.output)
    assert payload["picks"]["frontier"]["api_id"] == "claude-sonnet-5-5"
    assert {w["destination"] for w in payload["workloads"]} <= {"api", "self_hosted"}


def test_plan_recommend_no_external_and_refusals(tmp_path: Path) -> None:
    out = tmp_path / "h.yaml"
    r = runner.invoke(
        plan_cmd.app, ["recommend", "--profile", "startup", "--no-external", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    cfg = load_config(out, env={})  # no provider key is needed: nothing external
    assert cfg.routes and {rt.location for rt in cfg.routes} == {"on_prem"}
    refused = runner.invoke(
        plan_cmd.app, ["recommend", "--profile", "midsize", "--frontier", "claude-3-5-sonnet"]
    )
    assert refused.exit_code == 1
    assert "retired" in refused.output
    assert "use claude-sonnet-5-5 (claude-sonnet-5-5)" in refused.output
    bad = runner.invoke(plan_cmd.app, ["recommend", "--profile", "midsize", "--today", "soon"])
    assert bad.exit_code == 2


def test_catalog_check_flags_retired_ids_in_a_config(tmp_path: Path) -> None:
    cfg = tmp_path / "old.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "routes": [
                    {
                        "name": "sonnet",
                        "provider": "anthropic",
                        "model": "claude-3-5-sonnet-20240620",
                        "api_key": "${ANTHROPIC_API_KEY}",
                        "location": "external",
                    },
                    {
                        "name": "ds",
                        "provider": "openai_compat",
                        "base_url": "https://api.deepseek.com",
                        "model": "deepseek-chat",
                        "api_key": "${DEEPSEEK_API_KEY}",
                        "location": "external",
                    },
                    {
                        "name": "local",
                        "provider": "openai_compat",
                        "base_url": "http://127.0.0.1:1/v1",
                        "model": "whatever",
                        "location": "on_prem",
                    },
                ],
                "models": {"auto": {"routes": ["sonnet"]}},
            }
        ),
        encoding="utf-8",
    )
    r = runner.invoke(catalog_cmd.app, ["check", "-c", str(cfg), "--today", "2026-12-04"])
    assert r.exit_code == 1, r.output
    assert "route sonnet: retired" in r.output and "use claude-sonnet-5-5" in r.output
    assert "route ds: moving" in r.output
    assert "whatever" not in r.output  # on-prem models are the operator's own
    j = runner.invoke(
        catalog_cmd.app, ["check", "-c", str(cfg), "--format", "json", "--max-age-days", "30"]
    )
    data = json.loads(j.output)
    assert {f["severity"] for f in data["config"]} == {"retired", "moving"}
    assert data["stale"] and all(s["source"] for s in data["stale"])
    strict = runner.invoke(catalog_cmd.app, ["check", "--strict"])
    assert strict.exit_code == 1  # shipped facts have never been re-checked online


# --------------------------------------------------------------------- from usage


def _usage_db(home: Path, now: int) -> Path:
    db = home / "gateway.db"
    store = SQLiteStore(db)
    store.open(UsageLog.migrations())
    log = UsageLog(store)
    for i in range(10):  # team eng: 10 answered requests spread over the last 10 days
        log.record(_rec(f"e{i}", now - (10 - i) * NS_PER_DAY + 1, "eng", 1000, 200, "ok"))
    log.record(_rec("e-refused", now - NS_PER_DAY, "eng", 0, 0, "refused"))
    log.record(_rec("s0", now - 2 * NS_PER_DAY, "sales", 400, 100, "ok"))
    store.close()
    return db


def _rec(rid: str, t: int, team: str, p: int, c: int, outcome: str) -> UsageRecord:
    return UsageRecord(
        request_id=rid,
        receipt_id="r-" + rid,
        time_ns=t,
        key_id="k1",
        team=team,
        virtual_model="auto",
        route="gpt-4o",
        provider="openai",
        location="external",
        prompt_tokens=p,
        completion_tokens=c,
        usage_reported=True,
        cost_usd=Decimal("0.001"),
        baseline_cost_usd=Decimal("0.001"),
        baseline_route="gpt-4o",
        latency_ms=100.0,
        outcome=outcome,
        status=200,
    )


def test_workload_from_sample_by_hand() -> None:
    w = workload_from_sample(UsageSample("team eng", 10, 10_000, 2_000, 10.0))
    # 10 requests × 30.4375 / 10 days = 30.4375 per month; 10000/10 in, 2000/10 out
    assert w.requests_per_month == pytest.approx(30.4375)
    assert (w.input_tokens, w.output_tokens) == (1000, 200)
    # a log younger than a day is scaled as if it were one day old
    fresh = workload_from_sample(UsageSample("all", 5, 50, 50, 0.01))
    assert fresh.requests_per_month == pytest.approx(5 * 30.4375)
    with pytest.raises(UsageUnavailable):
        workload_from_sample(UsageSample("x", 0, 0, 0, 3.0))


def test_read_usage_sample_from_the_log(tmp_path: Path) -> None:
    now = time.time_ns()
    db = _usage_db(tmp_path, now)
    s = read_usage_sample(db, by="team", group="eng", days=30, now_ns=now)
    assert (s.requests, s.prompt_tokens, s.completion_tokens) == (10, 10_000, 2_000)
    assert s.observed_days == pytest.approx(10.0, abs=1e-6)  # first row 10 days ago
    total = read_usage_sample(db, days=30, now_ns=now)
    assert total.requests == 11
    windowed = read_usage_sample(db, by="team", group="eng", days=3, now_ns=now)
    assert windowed.requests == 3 and windowed.observed_days == pytest.approx(3.0)
    with pytest.raises(UsageUnavailable, match="no usage"):
        read_usage_sample(db, by="team", group="nobody", now_ns=now)
    with pytest.raises(UsageUnavailable, match="no gateway database"):
        read_usage_sample(tmp_path / "missing.db")


def test_plan_tco_from_usage(tmp_path: Path) -> None:
    _usage_db(tmp_path, time.time_ns())
    r = runner.invoke(
        plan_cmd.app,
        ["tco", "--from-usage", "--home", str(tmp_path), "--by", "team", "--group", "eng",
         "--api", "gpt-4o-mini", "--format", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["workload"]["input_tokens"] == 1000 and d["workload"]["output_tokens"] == 200
    assert d["workload"]["requests_per_month"] == pytest.approx(30.4375, rel=1e-3)
    assert "usage log, team eng" in d["workload"]["source"]
    empty = runner.invoke(
        plan_cmd.app, ["tco", "--from-usage", "--home", str(tmp_path / "none"), "--api", "gpt-4o"]
    )
    assert empty.exit_code == 1 and "no gateway database" in empty.output


def test_catalog_show_and_list_carry_status_and_output_terms() -> None:
    shown = runner.invoke(catalog_cmd.app, ["show", "claude-3-5-sonnet"])
    assert shown.exit_code == 0, shown.output
    assert "api.status today" in shown.output and "retired" in shown.output
    assert "training_other_models" in shown.output and "no_competing" in shown.output
    rows = json.loads(runner.invoke(catalog_cmd.app, ["list", "--format", "json"]).output)
    by = {r["name"]: r for r in rows}
    assert by["gemini-1.5-pro"]["api_status"] == "retired"
    assert by["claude-sonnet-4-5"]["api_id"] == "claude-sonnet-4-5-20250929"
    assert by["llama-3-8b"]["api_status"] is None
    assert by["llama-3-8b"]["training_on_outputs"] == "forbidden"


def test_plan_tco_notes_a_retired_api() -> None:
    r = runner.invoke(
        plan_cmd.app,
        ["tco", "--requests", "1000", "--input-tokens", "100", "--output-tokens", "100",
         "--api", "claude-3-5-sonnet", "--format", "json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    notes = " ".join(json.loads(r.output)["notes"])
    assert "retired" in notes and "claude-sonnet-4-5" in notes
