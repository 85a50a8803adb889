"""The catalog: shipped data loads, every fact is sourced, and unsourced entries are refused."""

from __future__ import annotations

import copy

import pytest
import yaml

from hybridgate.config import parse_config
from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import (
    CatalogEntry,
    CatalogFilter,
    builtin_catalog_text,
    load_catalog,
)
from hybridgate.policy.model import Openness
from planner.planner_samples import good_entry

REQUIRED = [
    "gpt-4o",
    "gpt-4o-mini",
    "claude-3-5-sonnet",
    "claude-3-opus",
    "gemini-1.5-pro",
    "llama-3-8b",
    "llama-3-70b",
    "llama-3.1-405b",
    "mistral-7b",
    "mixtral-8x7b",
    "mistral-large-2",
    "qwen2.5-7b",
    "qwen2.5-72b",
    "deepseek-v3",
    "deepseek-r1",
    "gemma-2-9b",
    "olmo-2-7b",
    "bloom",
    "falcon-40b",
    "grok-1",
    "gpt-oss-120b",
]


def test_shipped_catalog_loads_and_covers_the_required_models() -> None:
    cat = load_catalog()
    for name in REQUIRED:
        assert cat.find(name) is not None, name
    assert len(cat) >= len(REQUIRED)


def test_every_present_fact_group_in_the_shipped_data_has_a_source() -> None:
    # The schema enforces it; this checks the data really went through the schema's rules
    # and that every group's source is not a placeholder.
    for e in load_catalog():
        assert e.source
        groups = [e.release, e.openness, e.licence, e.params, e.context, e.architecture, e.pricing]
        for g in groups:
            if g is not None:
                assert g.source.startswith("http") or " " in g.source, (e.name, g.source)
        for t in e.throughput:
            assert t.source


def test_known_facts_from_the_shipped_data() -> None:
    cat = load_catalog()
    llama = cat.get("llama-3-70b")
    assert llama.licence.mau_threshold == 700_000_000
    assert llama.licence.acceptable_use_policy is True
    assert llama.openness_enum is Openness.OPEN_WEIGHTS_RESTRICTED
    mixtral = cat.get("mixtral-8x7b")
    assert mixtral.params is not None
    assert (mixtral.params.total_b, mixtral.params.active_b) == (46.7, 12.9)
    assert cat.get("gpt-4o").level == 1 and not cat.get("gpt-4o").self_hostable
    assert cat.get("olmo-2-7b").level == 5
    assert cat.get("mistral-large-2").licence.commercial_use is False
    # unknown stays null, never guessed
    assert cat.get("gpt-4o").params is not None and cat.get("gpt-4o").params.total_b is None  # type: ignore[union-attr]
    grok = cat.get("grok-1")
    assert grok.params is not None and grok.params.active_b is None
    # aliases resolve, case-insensitively
    assert cat.get("Claude-3.5-Sonnet").name == "claude-3-5-sonnet"


def test_entry_with_sources_validates() -> None:
    e = CatalogEntry.model_validate(good_entry())
    assert e.params is not None and e.params.total_b == 7.0


@pytest.mark.parametrize("group", ["release", "openness", "licence", "params", "architecture"])
def test_schema_rejects_a_fact_group_without_a_source(group: str) -> None:
    raw = good_entry()
    del raw[group]["source"]
    with pytest.raises(ValueError, match="source"):
        CatalogEntry.model_validate(raw)


def test_schema_rejects_an_entry_without_its_identity_source() -> None:
    raw = good_entry()
    del raw["source"]
    with pytest.raises(ValueError, match="source"):
        CatalogEntry.model_validate(raw)


def test_schema_rejects_a_throughput_figure_without_a_source() -> None:
    raw = good_entry()
    del raw["throughput"][0]["source"]
    with pytest.raises(ValueError, match="source"):
        CatalogEntry.model_validate(raw)


@pytest.mark.parametrize("bad", ["", "unknown", "TBD", "n/a", "guess", "wiki", "http://", "   "])
def test_schema_rejects_placeholder_sources(bad: str) -> None:
    raw = good_entry()
    raw["params"]["source"] = bad
    with pytest.raises(ValueError, match="source"):
        CatalogEntry.model_validate(raw)


def test_per_fact_sources_must_name_real_facts() -> None:
    raw = good_entry()
    raw["params"]["sources"] = {"total_b": "Acme errata, item 4"}
    e = CatalogEntry.model_validate(raw)
    assert e.params is not None
    assert e.params.source_of("total_b") == "Acme errata, item 4"
    assert e.params.source_of("active_b") == "Acme report, p. 3"
    raw["params"]["sources"] = {"total_params": "Acme errata, item 4"}
    with pytest.raises(ValueError, match="unknown facts"):
        CatalogEntry.model_validate(raw)
    raw["params"]["sources"] = {"total_b": "unknown"}
    with pytest.raises(ValueError, match="source"):
        CatalogEntry.model_validate(raw)


def test_schema_is_strict() -> None:
    raw = good_entry()
    raw["licence"]["commercial_use"] = "yes"  # lax parsing would turn this into True
    with pytest.raises(ValueError):
        CatalogEntry.model_validate(raw)
    raw = good_entry()
    raw["params"]["total_params"] = 7
    with pytest.raises(ValueError, match="Extra inputs"):
        CatalogEntry.model_validate(raw)
    raw = good_entry()
    raw["openness"]["level"] = 6
    with pytest.raises(ValueError):
        CatalogEntry.model_validate(raw)


def test_schema_checks_consistency() -> None:
    raw = good_entry()
    raw["openness"]["level"] = 1  # closed, yet weights available
    with pytest.raises(ValueError, match="level 1"):
        CatalogEntry.model_validate(raw)
    raw = good_entry()
    raw["params"]["active_b"] = 9.0
    with pytest.raises(ValueError, match="exceed"):
        CatalogEntry.model_validate(raw)
    raw = good_entry()
    raw["params"].update(active_b=3.0, moe=False)
    with pytest.raises(ValueError, match="dense"):
        CatalogEntry.model_validate(raw)
    raw = good_entry()
    raw["architecture"]["kv_heads"] = 6
    with pytest.raises(ValueError, match="divide"):
        CatalogEntry.model_validate(raw)


def test_extra_entries_add_and_replace() -> None:
    extra = good_entry()
    cat = load_catalog([extra])
    assert cat.get("acme-7b").organization == "Acme"
    replaced = copy.deepcopy(extra)
    replaced["name"] = "gpt-4o-mini"
    replaced["aliases"] = []
    replaced["organization"] = "Our proxy"
    cat2 = load_catalog([replaced])
    assert cat2.get("gpt-4o-mini").organization == "Our proxy"
    assert len(cat2) == len(load_catalog())


def test_extra_entries_are_validated_and_alias_clashes_refused() -> None:
    bad = good_entry()
    del bad["licence"]["source"]
    with pytest.raises(ConfigError, match=r"licence\.source"):
        load_catalog([bad])
    clash = good_entry()
    clash["aliases"] = ["gpt-4o"]
    with pytest.raises(ConfigError, match="names both"):
        load_catalog([clash])


def test_config_catalog_key_passes_entries_through() -> None:
    cfg = parse_config({"catalog": [good_entry()]}, env={})
    assert load_catalog(cfg.catalog).get("acme-7b").level == 3


def test_shipped_file_is_licences_then_models() -> None:
    raw = yaml.safe_load(builtin_catalog_text())
    assert set(raw) == {"licences", "models"}


def test_filters() -> None:
    cat = load_catalog()
    names = {e.name for e in cat.filter(CatalogFilter(min_openness=3))}
    assert "olmo-2-7b" in names and "llama-3-70b" not in names and "gpt-4o" not in names
    commercial = {e.name for e in cat.filter(CatalogFilter(commercial=True))}
    assert "mistral-large-2" not in commercial and "gpt-4o" in commercial
    # 800M users: above Llama's 700M and Qwen's 100M thresholds
    big = {e.name for e in cat.filter(CatalogFilter(users=800_000_000))}
    assert "llama-3-70b" not in big and "qwen2.5-72b" not in big and "mistral-7b" in big
    mid = {e.name for e in cat.filter(CatalogFilter(users=200_000_000))}
    assert "llama-3-70b" in mid and "qwen2.5-72b" not in mid
    apache = {e.name for e in cat.filter(CatalogFilter(licences=frozenset({"apache-2.0"})))}
    assert "mixtral-8x7b" in apache and "deepseek-r1" not in apache
    api_only = cat.filter(CatalogFilter(self_hostable=False))
    assert api_only and all(e.level == 1 for e in api_only)


def test_unknown_licence_terms_never_pass_a_filter() -> None:
    raw = good_entry()
    raw["licence"].update(commercial_use=None, mau_threshold=None)
    e = CatalogEntry.model_validate(raw)
    assert not CatalogFilter(commercial=True).admits(e)
    assert not CatalogFilter(users=1).admits(e)
    assert CatalogFilter().admits(e)


def test_the_docs_example_entry_validates() -> None:
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "planner.md"
    if not doc.is_file():
        pytest.skip("docs/planner.md not present")
    block = re.search(r"```yaml\n(catalog:.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert block is not None
    cfg = parse_config(yaml.safe_load(block.group(1)), env={})
    entry = load_catalog(cfg.catalog).get("acme-7b-ft")
    assert entry.throughput[0].tokens_per_second == 900
