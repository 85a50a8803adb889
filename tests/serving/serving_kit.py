"""A tiny Llama and several LoRA adapters, built once per test session in tmp."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from hybridgate.adapters import Adapter, register
from hybridgate.adapters import store as registry_store
from hybridgate.app import create_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import OpenAIUpstream


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


def config(tmp: Path, kit: TinyKit, frontier_url: str) -> GatewayConfig:
    return parse_config(
        {
            "home": str(tmp / "home"),
            "ledger": {"checkpoint_interval_s": 3600},
            "routes": [
                {
                    "name": "tiny",
                    "provider": "local",
                    "model": "tiny-llama",
                    "location": "on_prem",
                    "adapters": ["*"],
                    "local": {
                        "model_path": str(kit.model),
                        "max_new_tokens": 12,
                        "dtype": "float32",
                        "max_batch": 8,
                    },
                },
                {
                    "name": "plain",
                    "provider": "local",
                    "model": "tiny-llama",
                    "location": "on_prem",
                    "local": {"model_path": str(kit.model), "dtype": "float32"},
                },
                {
                    "name": "gpt-4o",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "base_url": frontier_url,
                    "api_key": "sk-frontier",
                    "location": "external",
                    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                },
            ],
        }
    )


class Env:
    def __init__(
        self,
        server: ServerThread,
        gw: Gateway,
        cfg: GatewayConfig,
        key: str,
        frontier: OpenAIUpstream,
    ) -> None:
        self.server, self.gw, self.cfg, self.key = server, gw, cfg, key
        self.frontier = frontier
        self.client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)

    def ask(self, model: str, text: str, **kw: Any) -> Any:
        return self.client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], **kw
        )


@pytest.fixture
def env(tmp_path: Path, tiny_kit: TinyKit, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    # Another process's registry changes are seen on the next read (no TTL wait in tests).
    monkeypatch.setattr(registry_store, "CACHE_TTL_S", 0.0)
    with OpenAIUpstream(api_key="sk-frontier") as frontier:
        cfg = config(tmp_path, tiny_kit, frontier.base_url)
        app = create_app(cfg)
        gw: Gateway = app.state.gateway
        with ServerThread(app) as server:
            yield Env(server, gw, cfg, gw.keys.create("support"), frontier)


def add(env: Env, kit: TinyKit, name: str, **kw: Any) -> Adapter:
    return register(env.cfg, name, kit.adapters[name], base="tiny-llama", **kw)
