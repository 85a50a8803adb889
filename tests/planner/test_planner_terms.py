"""Output-use terms: every licence states them with a source, and lookups fail closed."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.terms import output_use
from planner.planner_samples import good_entry

CAT = load_catalog()


def test_every_licence_and_model_states_output_use_with_a_source() -> None:
    for lic in CAT.licences:
        assert lic.output_use is not None, lic.id
        assert lic.output_use.source
    for e in CAT:
        t = e.output_terms
        assert t is not None, e.name
        assert t.source and t.summary


@pytest.mark.parametrize(
    ("model_id", "kind", "licence"),
    [
        # closed providers forbid developing competing models with outputs
        ("gpt-4o-mini", "no_competing", "openai-terms"),
        ("openai/gpt-4o-2024-08-06", "no_competing", "openai-terms"),
        ("gpt-5-mini-2025-08-07", "no_competing", "openai-terms"),  # prefix: provider terms
        ("claude-sonnet-4-5-20250929", "no_competing", "anthropic-commercial-terms"),
        ("claude-3-5-sonnet-20240620", "no_competing", "anthropic-commercial-terms"),
        ("gemini-2.5-pro", "no_competing", "gemini-api-terms"),
        # Llama 3 forbids improving other models; 3.1 allows it with naming and attribution
        ("llama-3-8b", "forbidden", "llama3"),
        ("meta-llama/Meta-Llama-3-8B-Instruct", "forbidden", "llama3"),
        ("llama-3.1-405b", "attribution_required", "llama3.1"),
        ("mistral-large-2", "research_only", "mistral-research-license"),
        ("gemma-2-9b", "derivative_inherits", "gemma-terms"),
        ("deepseek-v3", "derivative_inherits", "deepseek-model-license"),
        ("bloom", "derivative_inherits", "bigscience-bloom-rail-1.0"),
        ("qwen2.5-72b", "attribution_required", "qwen"),
        ("qwen2.5-7b", "allowed", "apache-2.0"),
        ("deepseek-r1", "allowed", "mit"),  # the model card permits distillation explicitly
        ("gpt-oss-20b", "allowed", "apache-2.0"),
    ],
)
def test_terms_for_known_models(model_id: str, kind: str, licence: str) -> None:
    t = output_use(model_id, CAT)
    assert t is not None, model_id
    assert t.training_other_models == kind
    assert t.licence == licence
    assert t.model_id == model_id


def test_naming_and_attribution_rules() -> None:
    l3, l31 = output_use("llama-3-70b", CAT), output_use("llama-3.1-405b", CAT)
    assert l3 is not None and l31 is not None
    assert l3.name_prefix == "Llama 3" and l3.attribution == "Built with Meta Llama 3"
    assert l31.name_prefix == "Llama" and l31.attribution == "Built with Llama"
    q = output_use("qwen2.5-72b", CAT)
    assert q is not None and q.attribution is not None and "Built with Qwen" in q.attribution
    m = output_use("mistral-large-2", CAT)
    assert m is not None and m.attribution is not None and "Mistral AI" in m.attribution
    assert m.commercial_outputs is False
    g = output_use("gemma-2-27b", CAT)
    assert g is not None and g.derivatives_inherit_restrictions is True
    assert any("inherits" in o for o in g.obligations())
    assert any("'Llama'" in o for o in l31.obligations())


def test_allows_training_decisions() -> None:
    gpt = output_use("gpt-4o", CAT)
    assert gpt is not None
    assert gpt.allows_training() is None  # competing unknown: undecided, caller treats as no
    assert gpt.allows_training(competing=False) is True
    assert gpt.allows_training(competing=True) is False
    l3 = output_use("llama-3-8b", CAT)
    assert l3 is not None and l3.allows_training(competing=False) is False
    mrl = output_use("mistral-large-2", CAT)
    assert mrl is not None
    assert mrl.allows_training(commercial=True) is False
    assert mrl.allows_training(commercial=False) is True
    r1 = output_use("deepseek-r1", CAT)
    assert r1 is not None and r1.allows_training() is True
    ds = output_use("deepseek-chat", CAT)  # the hosted API: terms not recorded
    assert ds is not None and ds.training_other_models == "unknown"
    assert ds.allows_training(competing=False) is None


@pytest.mark.parametrize(
    "model_id",
    ["", "   ", "my-private-finetune", "qwen3-235b", "x" * 300, "local/unknown", "o", "gpt"],
)
def test_unknown_ids_return_none(model_id: str) -> None:
    assert output_use(model_id, CAT) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_any_string_answers_terms_or_none_never_raises(model_id: str) -> None:
    t = output_use(model_id, CAT)
    assert t is None or t.source


def test_an_output_use_group_without_a_source_is_refused() -> None:
    raw = good_entry()
    raw["output_use"] = {"training_other_models": "allowed", "summary": "no clause"}
    with pytest.raises(ConfigError, match=r"output_use\.source"):
        load_catalog([raw])
    raw = copy.deepcopy(good_entry())
    raw["output_use"] = {
        "training_other_models": "sometimes",
        "summary": "x",
        "source": "https://acme.example/licence",
    }
    with pytest.raises(ConfigError, match="training_other_models"):
        load_catalog([raw])


def test_operator_entry_overrides_terms() -> None:
    raw = good_entry()
    raw["output_use"] = {
        "training_other_models": "research_only",
        "summary": "our contract says research only",
        "source": "Acme contract 2026-03, clause 7",
        "checked": "2026-11-30",
    }
    cat = load_catalog([raw])
    t = output_use("acme-7b", cat)
    assert t is not None and t.training_other_models == "research_only"
    assert str(t.checked) == "2026-11-30"


def test_the_flywheel_hook_maps_terms_and_fails_closed() -> None:
    from hybridgate.config import GatewayConfig
    from hybridgate.distill.terms import judge_terms
    from hybridgate.planner.terms import catalog_terms_source

    src = catalog_terms_source(GatewayConfig())
    assert src is not None
    purpose = "internal-task-model"

    def verdict(model: str, p: str = purpose) -> bool:
        return judge_terms(src.output_terms(model), model, p).allowed

    assert verdict("gpt-oss-120b") and verdict("deepseek-r1") and verdict("qwen2.5-72b")
    assert verdict("gemma-2-9b")  # allowed; the derivative's obligations travel in the source
    gemma = src.output_terms("gemma-2-9b")
    assert gemma is not None and "inherits" in gemma.source
    for closed in ("gpt-4o-mini", "claude-sonnet-4-5-20250929", "gemini-2.5-pro"):
        entry = src.output_terms(closed)
        assert entry is not None and entry.training_use == "restricted"
        assert not verdict(closed)  # whether it competes is the deployer's decision
    assert not verdict("llama-3-8b")  # Llama 3 forbids improving other models
    assert not verdict("mistral-large-2") and verdict("mistral-large-2", "research")
    assert not verdict("deepseek-chat")  # unknown terms
    assert src.output_terms("no-such-model") is None
    assert not verdict("no-such-model")
    bad = GatewayConfig.model_construct(catalog=[{"name": "broken"}])
    assert catalog_terms_source(bad) is None
