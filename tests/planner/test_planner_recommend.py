"""Recommendations: picks respect licences and hardware; the written YAML loads as a config."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridgate.config import load_config
from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.recommend import (
    PROFILES,
    Recommendation,
    bundle_config,
    recommend,
    render_yaml,
)
from planner.planner_samples import good_entry

CAT = load_catalog()
ENV = {"OPENAI_API_KEY": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_writes_a_config_that_load_config_accepts(
    profile: str, tmp_path: Path
) -> None:
    rec = recommend(CAT, profile)
    path = tmp_path / "hybridgate.yaml"
    path.write_text(render_yaml(rec, bundle_config(rec)), encoding="utf-8")
    cfg = load_config(path, env=ENV)
    kinds = {r.location for r in cfg.routes}
    assert kinds == {"external", "on_prem"}
    assert {"auto", "frontier", "private", "small"} <= set(cfg.models)
    external = [r for r in cfg.routes if r.location == "external"]
    assert all(r.api_key in ENV.values() for r in external)  # came from ${...}
    assert cfg.policy.classes  # policy present
    text = path.read_text(encoding="utf-8")
    assert "${" in text and "sk-test" not in text  # keys never written into the file


def test_unset_key_fails_load_as_documented(tmp_path: Path) -> None:
    rec = recommend(CAT, "midsize")
    path = tmp_path / "h.yaml"
    path.write_text(render_yaml(rec, bundle_config(rec)), encoding="utf-8")
    with pytest.raises(ConfigError, match="not set"):
        load_config(path, env={})


def test_picks_obey_licence_and_openness() -> None:
    for name in PROFILES:
        rec = recommend(CAT, name)
        p = rec.profile
        for tier in ("self_hosted", "small_tuned"):
            e = rec.picks[tier].model
            assert e.self_hostable and e.licence.commercial_use is True
            assert e.level >= p.min_openness
            t = e.licence.mau_threshold
            assert t == "none" or (isinstance(t, int) and t > p.users)
        assert rec.picks["frontier"].model.level == 1


def test_regulated_keeps_personal_data_on_prem_and_product_avoids_restrictive_licences() -> None:
    reg = recommend(CAT, "regulated")
    data = bundle_config(reg)
    for cls in ("person", "contact", "financial", "health", "government_id"):
        assert data["policy"]["classes"][cls] == "on_prem_only"
    assert "mistral-research-license" in data["policy"]["forbid"]["licences"]
    prod = recommend(CAT, "product")
    # min openness 3: Llama (level 2, MAU clause) is never picked for a product
    assert prod.picks["self_hosted"].model.level >= 3
    assert not prod.picks["self_hosted"].model.name.startswith("llama")


def test_hardware_limit_passes_over_models_that_do_not_fit() -> None:
    rec = recommend(CAT, "solo")  # one RTX 4090 at int4
    pick = rec.picks["self_hosted"]
    assert pick.gpus == 1
    # gpt-oss-20b at int4: 20.9e9 × 0.5 B ≈ 9.7 GiB + KV, fits a 24 GB card
    assert pick.model.name == "gpt-oss-20b"


def test_reasons_cover_data_control_quality_cost_and_licence() -> None:
    rec = recommend(CAT, "midsize")
    kinds = {r.kind for pk in rec.picks.values() for r in pk.reasons}
    kinds |= {r.kind for wp in rec.workloads for r in wp.reasons}
    assert {"data_control", "quality", "cost_at_volume", "licence", "hardware"} <= kinds


def test_volume_changes_the_cost_verdict() -> None:
    low = recommend(CAT, "product", volume=10_000)
    high = recommend(CAT, "product", volume=100_000_000)

    def verdict(rec: Recommendation) -> str:
        wp = next(w for w in rec.workloads if w.workload.tier == "self_hosted")
        return next(r.text for r in wp.reasons if r.kind == "cost_at_volume")

    assert "API is cheaper" in verdict(low)
    assert "self-hosting is cheaper" in verdict(high)


def test_cost_reason_by_hand() -> None:
    rec = recommend(CAT, "midsize", volume=500_000)
    wp = next(w for w in rec.workloads if w.workload.tier == "self_hosted")
    # 60% of 500,000 = 300,000 requests × (2000 × $3 + 400 × $15) / 1e6 = 300,000 × 0.012 = $3,600
    # gpt-oss-120b at int4 fits one H100: 1 × $2.5 × 730 = $1,825 → self-hosting cheaper
    text = next(r.text for r in wp.reasons if r.kind == "cost_at_volume")
    assert "$3,600/month" in text and "$1,825/month" in text and "self-hosting is cheaper" in text


def test_user_catalog_entries_can_be_picked() -> None:
    extra = good_entry()
    extra["name"] = "gpt-oss-20b"  # replace with an entry lacking context, still fits
    cat = load_catalog([extra])
    rec = recommend(cat, "solo")
    assert rec.picks["self_hosted"].model.organization == "Acme"


def test_unknown_profile() -> None:
    with pytest.raises(KeyError):
        recommend(CAT, "enterprise")
