"""A tiny Llama and several LoRA adapters, built once per test session in tmp."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class TinyKit:
    model: Path
    adapters: dict[str, Path]


@pytest.fixture(scope="session")
def tiny_kit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TinyKit]:
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    from hybridgate.testing.tiny_models import make_lora, make_tiny_llama

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        root = tmp_path_factory.mktemp("tiny-serving")
        model = make_tiny_llama(root / "model")
        adapters = {
            name: make_lora(model, root / name, seed=i + 1)
            for i, name in enumerate(["summarize", "classify", "extract", "triage"])
        }
        yield TinyKit(model, adapters)
