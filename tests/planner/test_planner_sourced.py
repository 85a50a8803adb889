"""Sourced facts: published throughput sizes replicas, user figures override it, checks counted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import time
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from hybridgate.cli import catalog_cmd, plan_cmd
from hybridgate.planner.catalog import ReleaseFacts, ThroughputFact, load_catalog
from hybridgate.planner.check import check_counts, config_findings, stale_facts
from hybridgate.planner.gpus import GPUS, find_gpu
from hybridgate.planner.options import self_host_option
from hybridgate.planner.recommend import Constraints, RetiredModel, check_active, recommend
from hybridgate.planner.tco import Workload
from hybridgate.planner.throughput import best_throughput
from planner.test_planner_throughput import _db

CAT = load_catalog()
TODAY = dt.date(2026, 12, 5)
runner = CliRunner()
MONTH_S = 2_628_000


def test_a_published_figure_sizes_tco_and_says_where_it_came_from() -> None:
    w = Workload(1_000_000, 1000, 1000)
    opt, notes = self_host_option("llama-3.1-405b:gpu=h100,quant=fp8,hourly=2.5", CAT, w)
    # TensorRT-LLM's table: 2,919 output tokens/s on 8× H100 at 1000/1000, i.e.
    # 2,919 × 2,000 / 1,000 / 8 = 729.75 input + output tokens/s per GPU.
    per_gpu = 2919 * 2000 / 1000 / 8
    assert opt.tokens_per_second_per_gpu == pytest.approx(per_gpu)
    assert opt.throughput_upper_bound
    assert "TensorRT-LLM" in opt.throughput_source and "perf-overview.md" in opt.throughput_source
    assert any(n.startswith("llama-3.1-405b: throughput sourced benchmark: 730") for n in notes)
    assert any("2,919 × (1000 + 1000) / 1000 / 8" in n for n in notes)
    n = opt.gpus_per_replica
    tokens = 1_000_000 * 2000
    assert opt.replicas(w) == math.ceil(tokens / (n * per_gpu * 0.5 * MONTH_S))


def test_the_nearest_published_mix_is_taken() -> None:
    e, h100 = CAT.get("llama-3.1-405b"), find_gpu("h100")
    decode_heavy = best_throughput(e, h100, "fp8", 400, 1800)
    assert decode_heavy.tokens_per_second_per_gpu == pytest.approx(3994 * 2500 / 2000 / 8, 1e-4)
    prefill_heavy = best_throughput(e, h100, "fp8", 4000, 400)
    assert prefill_heavy.tokens_per_second_per_gpu == pytest.approx(610 * 5500 / 500 / 8, 1e-4)
    h200 = best_throughput(e, find_gpu("h200"), "fp8", 1000, 1000)
    assert h200.tokens_per_second_per_gpu == pytest.approx(3330 * 2 / 8)


def test_a_figure_from_a_far_off_mix_is_not_used() -> None:
    e, h100 = CAT.get("gpt-oss-120b"), find_gpu("h100")
    # published at 2000/100 and 4000/200 (prefill-heavy): a 500/1000 workload gets the ceiling
    assert best_throughput(e, h100, "mxfp4", 500, 1000).kind == "roofline"
    near = best_throughput(e, h100, "mxfp4", 3000, 150)
    assert near.kind == "catalog"
    assert near.tokens_per_second_per_gpu == pytest.approx(34491.13 / 2, 1e-4)
    # a figure for one GPU does not stand in for another
    a100 = best_throughput(CAT.get("llama-3.1-405b"), find_gpu("a100-80gb"), "fp8", 1000, 1000)
    assert a100.kind == "roofline"


def test_a_users_figure_overrides_the_published_one(tmp_path: Path) -> None:
    w = Workload(1_000_000, 1000, 1000)
    opt, _ = self_host_option("llama-3.1-405b:gpu=h100,quant=fp8,hourly=2.5,tps=400", CAT, w)
    assert opt.tokens_per_second_per_gpu == 400 and opt.throughput_source == "user-supplied"
    assert not opt.throughput_upper_bound
    # the gateway's own usage log overrides it too
    _db(tmp_path, time.time_ns())
    args = ["tco", "--requests", "1000000", "--input-tokens", "3000", "--output-tokens", "150",
            "--api", "claude-haiku-4-5", "--home", str(tmp_path), "--format", "json"]  # fmt: skip
    spec = "gpt-oss-120b:gpu=h100,hourly=2.5"
    sourced = runner.invoke(plan_cmd.app, [*args, "--self-host", spec])
    assert sourced.exit_code == 0, sourced.output
    host = next(o for o in json.loads(sourced.output)["options"] if o["kind"] == "self_host")
    assert "GPUStack" in host["formulas"][0] and "4000 in / 200 out" in host["formulas"][0]
    mine = runner.invoke(
        plan_cmd.app,
        [*args, "--self-host", "gpt-oss-120b:gpu=h100,hourly=2.5,measured=local/gpt-oss-120b"],
    )
    assert mine.exit_code == 0, mine.output
    host = next(o for o in json.loads(mine.output)["options"] if o["kind"] == "self_host")
    assert "measured: route local/gpt-oss-120b" in host["formulas"][0]
    assert "GPUStack" not in host["formulas"][0]


def test_recommend_sizes_with_a_published_figure_unless_measured() -> None:
    # the shipped gpt-oss-120b figures are prefill-heavy (20:1); consulting's tier is 4:1,
    # so it gets the ceiling; an operator's published figure at a nearer mix is taken
    shipped = recommend(CAT, "consulting", None, Constraints(today=TODAY)).picks["self_hosted"]
    assert shipped.throughput is not None and shipped.throughput.kind == "roofline"
    extra = CAT.get("gpt-oss-120b").model_dump(mode="json")
    extra["throughput"] = [
        {"gpu": "H100 80GB", "quant": "mxfp4", "tokens_per_second": 3000, "engine": "vLLM",
         "input_tokens": 4000, "output_tokens": 800, "source": "Acme load test, table 4"},
    ]  # fmt: skip
    cat = load_catalog([extra])
    rec = recommend(cat, "consulting", None, Constraints(today=TODAY))
    docs = next(w for w in rec.workloads if w.workload.name == "client documents")
    host = rec.picks["self_hosted"]
    assert host.model.name == "gpt-oss-120b" and docs.model == "gpt-oss-120b"
    assert host.throughput is not None and host.throughput.kind == "catalog"
    assert host.throughput.tokens_per_second_per_gpu == 3000
    assert "Acme load test, table 4" in host.throughput.source
    assert any("sourced benchmark: 3,000 tokens/s" in r.text for r in host.reasons)
    mine = recommend(
        cat, "consulting", None, Constraints(today=TODAY, measured_tps={"gpt-oss-120b": 900.0})
    )
    t = mine.picks["self_hosted"].throughput
    assert t is not None and t.kind == "measured" and t.tokens_per_second_per_gpu == 900.0


def test_published_output_figures_must_convert_correctly() -> None:
    base = {
        "gpu": "H100 80GB", "quant": "fp8", "input_tokens": 1000, "output_tokens": 1000,
        "published_output_tps": 2919, "published_gpus": 8, "source": "TRT-LLM perf overview",
    }  # fmt: skip
    assert ThroughputFact.model_validate({**base, "tokens_per_second": 729.75})
    with pytest.raises(ValidationError, match=r"expected 729\.8"):
        ThroughputFact.model_validate({**base, "tokens_per_second": 2919})
    with pytest.raises(ValidationError, match="go together"):
        ThroughputFact.model_validate({**base, "published_gpus": None, "tokens_per_second": 1})


def test_checked_via_needs_a_day_and_a_bare_day_means_live() -> None:
    with pytest.raises(ValidationError, match="give its day"):
        ReleaseFacts.model_validate(
            {"date": "2025-01-01", "source": "Acme blog, part 2", "checked_via": "live"}
        )
    live = ReleaseFacts.model_validate(
        {"date": "2025-01-01", "source": "Acme blog, part 2", "checked": TODAY}
    )
    assert live.checked_via is None
    extra = CAT.get("olmo-2-7b").model_dump(mode="json")
    extra["release"]["checked"] = "2026-12-01"
    extra["release"]["checked_via"] = None
    counts = check_counts(load_catalog([extra]))
    assert counts.live == 1 and counts.stored_copy == check_counts(CAT).stored_copy


def test_every_unchecked_fact_is_listed_and_checked_ones_are_not() -> None:
    counts = check_counts(CAT)
    assert counts.stored_copy >= 50 and counts.live == 0
    listed = stale_facts(CAT, TODAY, 180)
    never = [s for s in listed if s.checked is None]
    assert len(never) == counts.unchecked
    fresh = {(s.model, s.group) for s in listed if s.checked is not None}
    # a checked group is listed only for a price whose as_of is old
    assert all(g == "pricing" for _, g in fresh)
    assert ("claude-sonnet-5-5", "api") in {(s.model, s.group) for s in never}
    r = runner.invoke(catalog_cmd.app, ["check", "--today", "2026-12-05"])
    assert r.exit_code == 0, r.output
    assert f"{counts.stored_copy} of {counts.total} fact group(s) compared" in r.output
    assert f"{counts.unchecked} never" in r.output


def test_shipped_api_statuses_follow_the_stored_copies() -> None:
    status = {n: CAT.get(n).api_status(TODAY) for n in CAT.names() if CAT.get(n).api}
    assert status["claude-sonnet-4-5"] == "retired"  # retired 2026-11-30
    assert status["claude-opus-4-1"] == "retired"
    assert status["gemini-2.5-pro"] == "retired" and status["gemini-2.5-flash"] == "retired"
    assert status["gpt-5"] == "deprecated" and status["gpt-5-mini"] == "deprecated"
    assert (
        status["gpt-5"] == "deprecated"
        and CAT.get("gpt-5").api_status(dt.date(2026, 12, 11)) == "retired"
    )
    assert status["claude-sonnet-5-5"] == "active" and status["claude-haiku-4-5"] == "active"


def test_the_suggested_replacement_is_one_still_active() -> None:
    # Claude 3.5 Sonnet -> Claude Sonnet 4.5 (retired 2026-11-30) -> Claude Sonnet 5.5
    with pytest.raises(RetiredModel, match=r"no longer active either: use claude-sonnet-5-5"):
        check_active(CAT, "claude-3-5-sonnet", TODAY)
    raw = {"routes": [{"name": "s", "model": "claude-3-5-sonnet-20240620", "location": "external"}]}
    (found,) = config_findings(CAT, raw, TODAY)
    assert found.severity == "retired"
    assert "use claude-sonnet-5-5 (claude-sonnet-5-5)" in found.message
    # a chain that ends without an active model says so
    with pytest.raises(RetiredModel, match=r"2\.5-pro is retired too, and the catalog records no"):
        check_active(CAT, "gemini-1.5-pro", TODAY)


def test_gpu_datasheet_figures_are_listed_until_checked() -> None:
    listed = {s.model: s for s in stale_facts(CAT, TODAY, 180)}
    h100 = listed["gpu:H100 80GB"]
    assert h100.checked is None and h100.group == "datasheet"
    assert "nvidia.com/en-us/data-center/h100" in h100.source
    checked = [dataclasses.replace(g, checked=TODAY) for g in GPUS]
    assert not [s for s in stale_facts(CAT, TODAY, 180, checked) if s.model.startswith("gpu:")]
    assert check_counts(CAT, checked).live == len(GPUS)
    assert check_counts(CAT).total == check_counts(CAT, ()).total + len(GPUS)
