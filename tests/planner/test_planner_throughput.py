"""Throughput: the roofline by hand, measured figures from a real usage log, tco without tps."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridgate.accounting.usage import UsageLog
from hybridgate.cli import plan_cmd
from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.gpus import find_gpu
from hybridgate.planner.options import SpecError, self_host_option
from hybridgate.planner.tco import Workload
from hybridgate.planner.throughput import best_throughput, roofline
from hybridgate.planner.usage_source import UsageUnavailable, measured_route_throughput
from hybridgate.store.sqlite import SQLiteStore
from planner.planner_samples import good_entry
from planner.test_planner_cli import _rec

CAT = load_catalog()
runner = CliRunner()


def test_roofline_by_hand_llama_3_8b_on_h100() -> None:
    t = roofline(CAT.get("llama-3-8b"), find_gpu("h100"), "bf16", 500, 1000)
    # 64 sequences of 1,500 tokens fit one H100 next to 16.06 GB of bf16 weights.
    weights = 8.03e9 * 2
    kv = 2 * 32 * 8 * 128 * 1000 * 64 * 2  # K and V, average length 500 + 1000/2
    t_mem = (weights + kv) / 3350e9
    t_cmp = 64 * 2 * 8.03e9 / 989e12
    prefill = 500 * 2 * 8.03e9 / 989e12
    expect = 64 * 1500 / (64 * prefill + 1000 * max(t_mem, t_cmp))
    assert t.gpus_per_replica == 1 and t.kind == "roofline" and t.upper_bound
    assert t.tokens_per_second_per_gpu == pytest.approx(expect, rel=1e-9)
    assert t.stream_tokens_per_second == pytest.approx(1 / max(t_mem, t_cmp))
    assert any("no engine reaches it" in x for x in (t.source, t.describe()))


def test_moe_reads_only_what_the_batch_touches_and_larger_models_span_gpus() -> None:
    small_batch = roofline(CAT.get("gpt-oss-120b"), find_gpu("h100"), "mxfp4", 500, 1000, batch=8)
    big_batch = roofline(CAT.get("gpt-oss-120b"), find_gpu("h100"), "mxfp4", 500, 1000)
    assert "MoE" in small_batch.formulas[1] and "MoE" not in big_batch.formulas[1]
    ds = roofline(CAT.get("deepseek-v3"), find_gpu("h200"), "fp8", 500, 1000)
    assert ds.gpus_per_replica == 8
    with pytest.raises(ValueError, match="output"):
        roofline(CAT.get("llama-3-8b"), find_gpu("h100"), "bf16", 500, 0)


def test_a_catalog_figure_wins_over_the_roofline() -> None:
    cat = load_catalog([good_entry()])
    t = best_throughput(cat.get("acme-7b"), find_gpu("H100 80GB"), "bf16", 500, 500)
    assert t.kind == "catalog" and t.tokens_per_second_per_gpu == 2500.0


def test_tco_without_tps_uses_the_ceiling_and_says_replicas_are_a_minimum() -> None:
    w = Workload(10_000_000, 500, 1000)
    opt, notes = self_host_option("gpt-oss-120b:gpu=h100,hourly=2.5", CAT, w)
    assert opt.gpus_per_replica == 1 and opt.throughput_upper_bound
    assert any("mxfp4" in n for n in notes)
    # 15e9 tokens / (4,738 × 0.5 × 2,628,000) -> 3 replicas at least
    assert opt.replicas(w) == 3
    with pytest.raises(SpecError, match="does not hold it"):
        self_host_option("llama-3-70b:gpu=h100,gpus=1,hourly=2.5", CAT, w)
    with pytest.raises(SpecError, match="tps= or measured="):
        self_host_option("llama-3-8b:gpu=h100,hourly=1,tps=5,measured=x", CAT, w)


def _db(home: Path, now: int) -> Path:
    db = home / "gateway.db"
    store = SQLiteStore(db)
    store.open(UsageLog.migrations())
    log = UsageLog(store)
    minute = (now // 60_000_000_000 - 1) * 60_000_000_000
    for i in range(3):  # three answered requests inside one minute on the local route
        rec = _rec(f"m{i}", minute + i * 1_000_000_000, "eng", 1000, 200, "ok")
        log.record(dataclasses.replace(rec, route="local/gpt-oss-120b", location="on_prem"))
    refused = _rec("m-refused", minute, "eng", 50_000, 0, "refused")
    log.record(dataclasses.replace(refused, route="local/gpt-oss-120b"))
    log.record(_rec("other", minute, "eng", 99_000, 0, "ok"))  # another route
    store.close()
    return db


def test_measured_route_throughput_from_a_real_usage_log(tmp_path: Path) -> None:
    now = time.time_ns()
    db = _db(tmp_path, now)
    tps, where = measured_route_throughput(db, "local/gpt-oss-120b", now_ns=now)
    assert tps == pytest.approx(3 * 1200 / 60)  # 60 tokens/s in the busiest minute
    assert "busiest minute" in where and "3 requests" in where
    with pytest.raises(UsageUnavailable, match="no answered requests"):
        measured_route_throughput(db, "local/none", now_ns=now)
    with pytest.raises(UsageUnavailable, match="no gateway database"):
        measured_route_throughput(tmp_path / "nope.db", "x")


def test_plan_tco_measured_route_overrides_the_ceiling(tmp_path: Path) -> None:
    _db(tmp_path, time.time_ns())
    r = runner.invoke(
        plan_cmd.app,
        ["tco", "--requests", "1000000", "--input-tokens", "500", "--output-tokens", "1000",
         "--api", "gpt-5-mini", "--home", str(tmp_path), "--format", "json",
         "--self-host", "gpt-oss-120b:gpus=1,hourly=2.5,measured=local/gpt-oss-120b"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    host = next(o for o in d["options"] if o["kind"] == "self_host")
    assert "measured: route local/gpt-oss-120b" in host["formulas"][0]
    # K = 60 × 0.5 × 2,628,000 = 78.84 M tokens; 1.5e9 tokens -> 20 replicas
    assert host["replicas"] == 20


def test_plan_recommend_takes_measured_throughput_from_the_config(tmp_path: Path) -> None:
    import yaml

    cfg = tmp_path / "hybridgate.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "routes": [
                    {
                        "name": "local/gpt-oss-120b",
                        "provider": "openai_compat",
                        "base_url": "http://127.0.0.1:9/v1",
                        "model": "gpt-oss-120b",
                        "location": "on_prem",
                        "price": {"hourly_usd": 2.5, "tokens_per_second": 500},
                    }
                ],
                "models": {"auto": {"routes": ["local/gpt-oss-120b"]}},
            }
        ),
        encoding="utf-8",
    )
    r = runner.invoke(
        plan_cmd.app,
        ["recommend", "--profile", "startup", "-c", str(cfg), "--format", "json",
         "--today", "2026-12-04"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    tp = json.loads(r.output)["picks"]["self_hosted"]["throughput"]
    assert tp["kind"] == "measured" and tp["tokens_per_second_per_gpu"] == 500
    assert tp["upper_bound"] is False
