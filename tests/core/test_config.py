from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hybridgate.config import config_schema, load_config, parse_config
from hybridgate.errors import ConfigError
from hybridgate.policy.model import Action
from hybridgate.scan.findings import DataClass

ROUTES = [
    {"name": "ext", "provider": "openai", "model": "gpt-4o", "location": "external"},
    {
        "name": "local",
        "provider": "openai_compat",
        "model": "llama",
        "base_url": "http://127.0.0.1:1/v1",
        "location": "on_prem",
    },
]


def test_defaults_are_fail_closed() -> None:
    cfg = parse_config({})
    assert cfg.policy.unknown is Action.ON_PREM_ONLY
    assert cfg.policy.classes[DataClass.SECRET] is Action.BLOCK
    assert cfg.routes == []


def test_error_names_file_key_path_and_problem(tmp_path: Path) -> None:
    f = tmp_path / "gw.yaml"
    f.write_text(yaml.safe_dump({"routes": [{**ROUTES[0], "location": "moon"}]}))
    with pytest.raises(ConfigError) as e:
        load_config(f)
    msg = str(e.value)
    assert str(f) in msg and "routes.0.location" in msg and "on_prem" in msg


def test_unknown_keys_are_errors() -> None:
    with pytest.raises(ConfigError, match="polcy"):
        parse_config({"polcy": {}})


def test_env_interpolation_and_missing_env() -> None:
    raw = {"routes": [{**ROUTES[0], "api_key": "${MY_KEY}"}]}
    cfg = parse_config(raw, env={"MY_KEY": "sk-test"})
    assert cfg.routes[0].api_key == "sk-test"
    assert "sk-test" not in repr(cfg.routes[0])
    with pytest.raises(ConfigError, match="MY_KEY"):
        parse_config(raw, env={})
    assert parse_config({"home": "${H:-/tmp/x}"}, env={}).home == "/tmp/x"


def test_virtual_models_must_name_known_routes() -> None:
    with pytest.raises(ConfigError, match="unknown route 'nope'"):
        parse_config({"routes": ROUTES, "models": {"auto": {"routes": ["nope"]}}})
    cfg = parse_config({"routes": ROUTES, "models": {"auto": {"routes": ["local", "ext"]}}})
    assert cfg.virtual_model("auto") is not None
    implicit = cfg.virtual_model("ext")
    assert implicit is not None and implicit.strategy == "fixed" and implicit.routes == ["ext"]
    assert cfg.virtual_model("missing") is None


def test_duplicate_routes_rejected() -> None:
    with pytest.raises(ConfigError, match="duplicate route names: ext"):
        parse_config({"routes": [ROUTES[0], ROUTES[0]]})


def test_quality_strategy_needs_strong_and_weak() -> None:
    with pytest.raises(ConfigError, match="strong"):
        parse_config(
            {"routes": ROUTES, "models": {"q": {"routes": ["ext"], "strategy": "quality"}}}
        )


def test_policy_file_is_loaded_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        yaml.safe_dump({"policy": {"classes": {"contact": "allow"}}})
    )
    f = tmp_path / "gw.yaml"
    f.write_text(yaml.safe_dump({"policy_file": "policy.yaml"}))
    assert load_config(f).policy.classes[DataClass.CONTACT] is Action.ALLOW


def test_hourly_price_needs_throughput() -> None:
    route = {**ROUTES[1], "price": {"hourly_usd": 2.0}}
    with pytest.raises(ConfigError, match="tokens_per_second"):
        parse_config({"routes": [route]})


def test_schema_is_json_schema() -> None:
    schema = config_schema()
    assert schema["type"] == "object" and "routes" in schema["properties"]
