"""The configuration example in the README is valid configuration."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from hybridgate.config import parse_config

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_example_validates() -> None:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    cfg = parse_config(
        yaml.safe_load(block.group(1)),
        env={"HYBRIDGATE_ADMIN_KEY": "a" * 24, "OPENAI_API_KEY": "sk-x"},
    )
    assert {r.name for r in cfg.routes} == {"gpt-4o", "llama-onprem", "adapter-support"}
    assert cfg.models["auto"].strategy == "quality"
    assert len(cfg.policy.actions) == 3
