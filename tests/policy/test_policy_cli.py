"""``hybridgate policy hash|explain`` through Typer's runner: nothing is sent anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from hybridgate.cli.policy_cmd import app
from hybridgate.config import load_config
from hybridgate.policy import policy_hash
from hybridgate.policy.model import PolicyConfig

EMAIL = "jane.doe@example.com"
SSN = "536-22-1234"
AWS = "AKIAZ7QX4MN2PL8RT5VW"

CONFIG = """
routes:
  - name: gpt
    provider: openai
    model: gpt-4o
    api_key: sk-test
    location: external
    licence: proprietary
  - name: llama
    provider: openai_compat
    model: llama3
    base_url: http://127.0.0.1:9/v1
    location: on_prem
models:
  auto:
    routes: [gpt, llama]
policy:
  teams:
    research:
      classes:
        government_id: redact
"""


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    f = tmp_path / "hybridgate.yaml"
    f.write_text(CONFIG, encoding="utf-8")
    return f


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def explain_json(*args: str) -> dict[str, Any]:
    res = run("explain", "--format", "json", *args)
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.output)
    return out


def test_hash_matches_the_config_policy(cfg_file: Path) -> None:
    res = run("hash", "--config", str(cfg_file))
    assert res.exit_code == 0
    assert res.output.strip() == policy_hash(load_config(cfg_file).policy)
    default = run("hash")
    assert default.exit_code == 0 and default.output.strip() == policy_hash(PolicyConfig())
    assert default.output.strip() != res.output.strip()


def test_explain_redact_shows_masked_request_not_values(cfg_file: Path) -> None:
    r = explain_json("--model", "auto", "--text", f"mail {EMAIL} please", "--config", str(cfg_file))
    assert r["action"] == "redact"
    assert r["candidates"] == ["gpt", "llama"] and r["permitted"] == ["gpt", "llama"]
    assert r["data_classes"] == ["contact"]
    assert r["masks"][0]["type"] and r["masks"][0]["path"] == "messages[0].content"
    assert "<EMAIL" in r["masked_request"]["messages"][0]["content"]
    text = json.dumps(r)
    assert EMAIL not in text


def test_explain_on_prem_and_team_override(cfg_file: Path) -> None:
    base = ["--model", "auto", "--text", f"SSN {SSN}", "--config", str(cfg_file)]
    r = explain_json(*base)
    assert r["action"] == "on_prem_only" and r["permitted"] == ["llama"]
    assert any("route gpt excluded" in x for x in r["reasons"])
    assert SSN not in json.dumps(r)
    t = explain_json(*base, "--team", "research")
    assert t["action"] == "redact" and t["permitted"] == ["gpt", "llama"]
    assert SSN not in json.dumps(t)


def test_explain_block(cfg_file: Path) -> None:
    r = explain_json("--model", "auto", "--text", f"key {AWS}", "--config", str(cfg_file))
    assert r["action"] == "block" and r["permitted"] == [] and "secret" in r["data_classes"]
    assert AWS not in json.dumps(r)


def test_explain_request_file_with_tool_call(cfg_file: Path, tmp_path: Path) -> None:
    req = {
        "model": "ignored",
        "messages": [
            {"role": "user", "content": "send it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "mail", "arguments": json.dumps({"to": EMAIL})},
                    }
                ],
            },
        ],
    }
    f = tmp_path / "req.json"
    f.write_text(json.dumps(req), encoding="utf-8")
    r = explain_json("--model", "auto", "--file", str(f), "--config", str(cfg_file))
    assert r["action"] == "redact" and r["model"] == "auto"
    args = r["masked_request"]["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(args)["to"].startswith("<EMAIL")


def test_explain_without_config_has_no_candidates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    r = explain_json("--model", "auto", "--text", f"SSN {SSN}")
    assert r["action"] == "on_prem_only" and r["permitted"] == [] and r["candidates"] == []
    assert r["policy_hash"] == policy_hash(PolicyConfig())


def test_explain_table_output(cfg_file: Path) -> None:
    res = run("explain", "-m", "auto", "-t", f"mail {EMAIL}", "--config", str(cfg_file))
    assert res.exit_code == 0, res.output
    assert "redact" in res.output and "reasons" in res.output and "class contact" in res.output
    assert EMAIL not in res.output


@pytest.mark.parametrize("args", [[], ["--text", "a", "--file", "x.json"]])
def test_explain_needs_exactly_one_input(args: list[str]) -> None:
    res = run("explain", "--model", "auto", *args)
    assert res.exit_code == 2


def test_explain_rejects_bad_request_files(tmp_path: Path) -> None:
    f = tmp_path / "bad.json"
    f.write_text("[1, 2]", encoding="utf-8")
    assert run("explain", "--model", "auto", "--file", str(f)).exit_code == 2
    f.write_text("{not json", encoding="utf-8")
    assert run("explain", "--model", "auto", "--file", str(f)).exit_code == 2
    assert run("explain", "--model", "auto", "--file", str(tmp_path / "nope.json")).exit_code == 2
