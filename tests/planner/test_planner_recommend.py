"""Recommendations: active ids only, verdicts that agree with tco, constraints that hold."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from hybridgate.config import load_config
from hybridgate.errors import ConfigError
from hybridgate.planner.bundle import bundle_config, render_yaml
from hybridgate.planner.catalog import Catalog, load_catalog
from hybridgate.planner.hardware import GIB, ModelShape, estimate_memory
from hybridgate.planner.recommend import (
    PROFILES,
    Constraints,
    Recommendation,
    RetiredModel,
    check_active,
    recommend,
)
from hybridgate.planner.tco import ApiOption, SelfHostOption, Workload, tco
from planner.planner_samples import good_entry

CAT = load_catalog()
TODAY = dt.date(2026, 12, 4)
AT = Constraints(today=TODAY)
ENV = {
    "OPENAI_API_KEY": "sk-test",
    "ANTHROPIC_API_KEY": "sk-ant-test",
    "GEMINI_API_KEY": "g-test",
    "DEEPSEEK_API_KEY": "d-test",
}


def _write(rec: Recommendation, tmp_path: Path) -> Path:
    path = tmp_path / "hybridgate.yaml"
    path.write_text(render_yaml(rec, bundle_config(rec)), encoding="utf-8")
    return path


def _external_ids_active(data: dict[str, Any], today: dt.date, cat: Catalog = CAT) -> None:
    for r in data["routes"]:
        if r["location"] != "external":
            continue
        e = cat.find(r["model"])
        assert e is not None and e.api is not None, r["model"]
        assert e.api.id == r["model"]  # the pinned id, not an alias
        assert e.api.status_on(today) == "active", r["model"]


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("volume", [5_000, None, 200_000_000])
def test_every_profile_writes_a_config_load_config_accepts_with_active_ids_only(
    profile: str, volume: int | None, tmp_path: Path
) -> None:
    rec = recommend(CAT, profile, volume, AT)
    data = bundle_config(rec)
    _external_ids_active(data, TODAY)
    cfg = load_config(_write(rec, tmp_path), env=ENV)
    route_names = {r.name for r in cfg.routes}
    for vm in cfg.models.values():
        assert set(vm.routes) <= route_names
    # every workload's destination is routed
    dest = {wp.model for wp in rec.workloads}
    assert {r.name.removeprefix("local/").removesuffix("-lora") for r in cfg.routes} == dest
    text = (tmp_path / "hybridgate.yaml").read_text(encoding="utf-8")
    assert "sk-test" not in text  # keys never written into the file
    assert "claude-3-5-sonnet" not in text.split("\nroutes:")[1]


def test_unset_key_fails_load_as_documented(tmp_path: Path) -> None:
    rec = recommend(CAT, "midsize", 50_000_000, AT)
    with pytest.raises(ConfigError, match="not set"):
        load_config(_write(rec, tmp_path), env={})


# ------------------------------------------------------------------ status


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        # its replacement, Claude Sonnet 4.5, retired too: the active successor is named
        ("claude-3-5-sonnet", "claude-sonnet-5-5"),
        ("claude-3-5-sonnet-20240620", "claude-sonnet-5-5"),
        ("claude-3-opus", "claude-opus-4-1"),
        ("gemini-1.5-pro", "gemini-2.5-pro"),
    ],
)
def test_a_retired_id_is_refused_with_its_replacement(name: str, replacement: str) -> None:
    with pytest.raises(RetiredModel, match=replacement) as exc:
        recommend(CAT, "midsize", None, Constraints(frontier=name, today=TODAY))
    assert "retired" in str(exc.value)
    repl = CAT.get(replacement)
    assert repl.api is not None and repl.api.id in str(exc.value)


def test_deprecated_is_refused_before_and_retired_after_its_date() -> None:
    with pytest.raises(RetiredModel, match="deprecated and retires on 2026-01-05"):
        check_active(CAT, "claude-3-opus", dt.date(2025, 12, 1))
    with pytest.raises(RetiredModel, match="retired on 2026-01-05"):
        check_active(CAT, "claude-3-opus", dt.date(2026, 1, 5))
    assert check_active(CAT, "claude-sonnet-5-5", TODAY).name == "claude-sonnet-5-5"
    with pytest.raises(RetiredModel, match=r"retired on 2026-11-30.*claude-sonnet-5-5"):
        check_active(CAT, "claude-sonnet-4-5", TODAY)


def test_a_retired_model_in_the_preference_list_is_passed_over() -> None:
    extra = CAT.get("claude-sonnet-5-5").model_dump(mode="json")
    extra["api"].update(status="retired", retired_on="2026-12-01", replacement="gpt-5")
    # an operator's own entry: gpt-5 still active for them (say, a negotiated extension)
    gpt5 = CAT.get("gpt-5").model_dump(mode="json")
    gpt5["api"].update(status="active", deprecated_on=None, retires_on=None, replacement=None)
    cat = load_catalog([extra, gpt5])
    rec = recommend(cat, "midsize", None, AT)
    front = rec.picks["frontier"]
    assert front.model.name == "gpt-5"
    passed = " ".join(r.text for r in front.reasons if r.kind == "status")
    assert "claude-sonnet-5-5" in passed and "retired" in passed and "use gpt-5" in passed
    assert "claude-sonnet-4-5" in passed  # retired on 2026-11-30 in the shipped catalog
    _external_ids_active(bundle_config(rec), TODAY, cat)


def test_an_explicit_active_frontier_choice_is_used() -> None:
    rec = recommend(CAT, "midsize", None, Constraints(frontier="claude-haiku-4-5", today=TODAY))
    assert rec.picks["frontier"].model.name == "claude-haiku-4-5"
    route = next(r for r in bundle_config(rec)["routes"] if r["name"] == "claude-haiku-4-5")
    assert route["model"] == "claude-haiku-4-5-20251001" and route["provider"] == "anthropic"
    with pytest.raises(RetiredModel, match="deprecated and retires on 2026-12-11"):
        recommend(CAT, "midsize", None, Constraints(frontier="gpt-5", today=TODAY))


# ------------------------------------------------------------------ consistency with tco


def _tco_verdict(rec: Recommendation, workload: str) -> tuple[str, float, float]:
    """Recompute one workload with tco() from the picks' raw facts, independently."""
    wp = next(w for w in rec.workloads if w.workload.name == workload)
    small = wp.workload.tier == "small_tuned"
    host = rec.picks["small_tuned" if small else "self_hosted"]
    api = rec.picks["cheap_api" if small else "frontier"].model
    assert api.pricing is not None and host.throughput is not None and host.gpus is not None
    _, hourly = rec.profile.gpu_for("small_tuned" if small else "self_hosted")
    w = Workload(wp.requests_per_month, wp.workload.input_tokens, wp.workload.output_tokens)
    a = ApiOption("api", api.pricing.input_per_mtok, api.pricing.output_per_mtok, "catalog")
    h = SelfHostOption(
        "host",
        host.model.name,
        host.gpus,
        host.throughput.tokens_per_second_per_gpu,
        "x",
        gpu_hourly_usd=hourly,
    )
    r = tco(w, [a], [h])
    api_m, host_m = r.costs[0].monthly_usd, r.costs[1].monthly_usd
    return ("self_hosted" if host_m < api_m else "api"), api_m, host_m


@pytest.mark.parametrize("volume", [5_000, 50_000, 500_000, 5_000_000, 50_000_000, 500_000_000])
def test_verdicts_agree_with_tco_on_both_sides_of_break_even(volume: int) -> None:
    rec = recommend(CAT, "midsize", volume, AT)
    for name in ("internal documents and chat", "classification and extraction"):
        dest, api_m, host_m = _tco_verdict(rec, name)
        wp = next(w for w in rec.workloads if w.workload.name == name)
        assert wp.destination == dest, (volume, name, api_m, host_m)
        assert wp.api_monthly_usd == pytest.approx(api_m)
        assert wp.self_host_monthly_usd == pytest.approx(host_m)
        be = wp.break_even_requests
        if be is not None and wp.requests_per_month < be:
            assert dest == "api"  # below break-even the API wins, and that is what is sent


def test_low_volume_goes_to_the_api_high_volume_self_hosts() -> None:
    low = recommend(CAT, "midsize", 5_000, AT)  # the case: 80 % went to self-hosting
    assert all(w.destination == "api" for w in low.workloads)
    assert not any(r["location"] == "on_prem" for r in bundle_config(low)["routes"])
    high = recommend(CAT, "midsize", 50_000_000, AT)
    chat = next(w for w in high.workloads if w.workload.name == "internal documents and chat")
    assert chat.destination == "self_hosted"
    assert chat.replicas is not None and chat.replicas > 1  # sized by throughput, not one


def test_replicas_follow_throughput() -> None:
    rec = recommend(CAT, "startup", None, AT)
    wp = next(w for w in rec.workloads if w.workload.name == "the assistant")
    pick = rec.picks["self_hosted"]
    assert pick.throughput is not None and pick.gpus is not None
    k = pick.gpus * pick.throughput.tokens_per_second_per_gpu * 0.5 * 2_628_000
    tokens = wp.requests_per_month * 1500
    assert wp.replicas == max(1, -(-tokens // k))


# ------------------------------------------------------------------ constraints


@pytest.mark.parametrize("profile", ["startup", "midsize", "product", "finetune", "mvp"])
def test_no_external_means_zero_external_traffic(profile: str, tmp_path: Path) -> None:
    rec = recommend(CAT, profile, None, Constraints(no_external=True, today=TODAY))
    assert rec.no_external and "frontier" not in rec.picks
    assert all(w.destination == "self_hosted" for w in rec.workloads)
    data = bundle_config(rec)
    assert data["routes"] and all(r["location"] == "on_prem" for r in data["routes"])
    cfg = load_config(_write(rec, tmp_path), env={})  # no API key needed at all
    assert {r.location for r in cfg.routes} == {"on_prem"}
    classes = data["policy"]["classes"]
    assert all(v in ("on_prem_only", "block") for v in classes.values())


def test_enterprise_profile_is_residency_bound_by_default() -> None:
    rec = recommend(CAT, "enterprise", None, AT)
    assert rec.no_external
    assert all(r["location"] == "on_prem" for r in bundle_config(rec)["routes"])


def test_must_stay_data_self_hosts_even_when_the_api_is_cheaper() -> None:
    rec = recommend(CAT, "regulated", 5_000, AT)
    case = next(w for w in rec.workloads if w.workload.name == "case files and records")
    assert case.destination == "self_hosted"
    assert case.api_monthly_usd is not None and case.self_host_monthly_usd is not None
    assert case.api_monthly_usd < case.self_host_monthly_usd


def test_fine_tuning_and_redistribution_rights_decide_the_small_pick() -> None:
    rec = recommend(CAT, "finetune", None, AT)
    small = rec.picks["small_tuned"].model
    assert small.licence.fine_tuning is True and small.licence.redistribution is True
    extra = CAT.get(small.name).model_dump(mode="json")
    extra["licence"]["redistribution"] = False
    rec2 = recommend(load_catalog([extra]), "finetune", None, AT)
    assert rec2.picks["small_tuned"].model.name != small.name
    passed = " ".join(r.text for r in rec2.picks["small_tuned"].reasons)
    assert "redistributing" in passed


def test_fine_tune_budget_too_small_sends_narrow_work_to_the_api() -> None:
    c = Constraints(fine_tune=True, fine_tune_budget_usd=0.01, today=TODAY)
    rec = recommend(CAT, "midsize", 50_000_000, c)
    assert "small_tuned" not in rec.picks
    narrow = next(w for w in rec.workloads if w.workload.tier == "small_tuned")
    assert narrow.destination == "api" and "budget" in narrow.reasons[0].text
    with pytest.raises(LookupError, match="budget"):  # must-stay data has nowhere to go
        recommend(CAT, "regulated", None, c)


def test_latency_per_stream_excludes_slow_models() -> None:
    fast = recommend(CAT, "midsize", 50_000_000, Constraints(max_latency_s=60, today=TODAY))
    assert "self_hosted" in fast.picks
    slow = recommend(CAT, "midsize", 50_000_000, Constraints(max_latency_s=0.01, today=TODAY))
    assert "self_hosted" not in slow.picks
    assert all(w.destination == "api" for w in slow.workloads)


def test_teacher_output_terms_are_reported_for_the_tuned_tier() -> None:
    rec = recommend(CAT, "midsize", None, AT)
    text = " ".join(r.text for r in rec.picks["small_tuned"].reasons)
    assert "training data for the tuned model" in text and "no_competing" in text


def test_measured_throughput_overrides_the_ceiling() -> None:
    base = recommend(CAT, "startup", None, AT)
    m = recommend(
        CAT, "startup", None, Constraints(today=TODAY, measured_tps={"gpt-oss-120b": 500.0})
    )
    tp = m.picks["self_hosted"].throughput
    assert tp is not None and tp.kind == "measured" and not tp.upper_bound
    before = next(w for w in base.workloads if w.workload.name == "the assistant")
    after = next(w for w in m.workloads if w.workload.name == "the assistant")
    assert after.replicas is not None and before.replicas is not None
    assert after.replicas > before.replicas


# ------------------------------------------------------------------ native precision


def test_gpt_oss_is_sized_at_its_native_mxfp4() -> None:
    e = CAT.get("gpt-oss-120b")
    assert e.native_precision == "mxfp4"
    shape = ModelShape.from_entry(e)
    native = estimate_memory(shape, "mxfp4", 8192, 8)
    int8 = estimate_memory(shape, "int8", 8192, 8)
    # 116.8e9 × 4.25 / 8 bytes = 57.8 GiB of weights; at int8 it would be 108.8 GiB
    assert native.weights_bytes / GIB == pytest.approx(57.79, abs=0.01)
    assert 60 < native.total_bytes / GIB < 75 < 120 < int8.total_bytes / GIB
    h100 = next(f for f in native.fits if f.gpu.name == "H100 80GB")
    assert h100.count == 1
    rec = recommend(CAT, "startup", None, AT)
    pick = rec.picks["self_hosted"]
    assert pick.model.name == "gpt-oss-120b" and pick.precision == "mxfp4" and pick.gpus == 1
    forced = recommend(CAT, "startup", None, Constraints(precision="int8", today=TODAY))
    assert forced.picks["self_hosted"].gpus == 2


def test_deepseek_is_sized_at_fp8() -> None:
    assert CAT.get("deepseek-v3").native_precision == "fp8"
    assert CAT.get("deepseek-r1").native_precision == "fp8"


# ------------------------------------------------------------------ misc


def test_picks_obey_licence_and_openness() -> None:
    for name in PROFILES:
        rec = recommend(CAT, name, 50_000_000, AT)
        p = rec.profile
        for key in ("self_hosted", "small_tuned"):
            if key not in rec.picks:
                continue
            e = rec.picks[key].model
            assert e.self_hostable and e.licence.commercial_use is True
            assert e.level >= p.min_openness
            t = e.licence.mau_threshold
            assert t == "none" or (isinstance(t, int) and t > p.users)


def test_regulated_keeps_personal_data_on_prem_and_forbids_non_commercial() -> None:
    data = bundle_config(recommend(CAT, "regulated", None, AT))
    for cls in ("person", "contact", "financial", "health", "government_id"):
        assert data["policy"]["classes"][cls] == "on_prem_only"
    assert "mistral-research-license" in data["policy"]["forbid"]["licences"]


def test_user_catalog_entries_can_be_picked() -> None:
    extra = good_entry()
    extra["name"] = "gpt-oss-20b"  # replace with an entry of the user's own
    rec = recommend(load_catalog([extra]), "solo", None, AT)
    assert rec.picks["self_hosted"].model.organization == "Acme"


def test_unknown_profile_and_bad_volume() -> None:
    with pytest.raises(KeyError):
        recommend(CAT, "nonesuch")
    with pytest.raises(ValueError, match="negative"):
        recommend(CAT, "midsize", -1)
