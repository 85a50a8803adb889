"""External LoRA engines as routes (vLLM, LoRAX, llama.cpp) against loopback stand-ins
that speak their adapter endpoints. No torch needed: adapters are registered files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hybridgate.adapters import Adapter, register
from hybridgate.adapters import store as registry_store
from hybridgate.app import create_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.providers.lora_engines import VLLMProvider, served_name
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing.lora_engines import LlamaCppUpstream, LoraxUpstream, VLLMUpstream


def peft_dir(root: Path, seed: str) -> Path:
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text('{"r": 4}')
    (root / "adapter_model.safetensors").write_bytes(seed.encode() * 64)
    return root


class Engines:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.home = tmp / "home"
        self.cfg_base = GatewayConfig(home=str(self.home))
        # register the GGUF adapter first: llama-server is started with its stored copy
        gguf = tmp / "g.gguf"
        gguf.write_bytes(b"GGUF\x03 tiny lora")
        self.gguf = register(self.cfg_base, "gguf-task", gguf, base="base-model")
        self.vllm = VLLMUpstream(max_loras=2).start()
        self.lorax = LoraxUpstream().start()
        self.llama = LlamaCppUpstream(loras=[self.gguf.path]).start()

    def config(self) -> GatewayConfig:
        def route(name: str, kind: str, url: str) -> dict[str, Any]:
            return {
                "name": name,
                "provider": kind,
                "model": "base-model",
                "base_url": url,
                "location": "on_prem",
                "adapters": ["*"],
                "lora_slots": 2,
                "timeout_s": 5,
            }

        return parse_config(
            {
                "home": str(self.home),
                "ledger": {"checkpoint_interval_s": 3600},
                "routes": [
                    route("vllm", "vllm", self.vllm.base_url),
                    route("lorax", "lorax", self.lorax.base_url),
                    route("llama", "llamacpp", self.llama.origin + "/v1"),
                ],
            }
        )

    def close(self) -> None:
        for up in (self.vllm, self.lorax, self.llama):
            up.stop()


@pytest.fixture
def engines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Engines, Any]]:
    monkeypatch.setattr(registry_store, "CACHE_TTL_S", 0.0)
    e = Engines(tmp_path)
    cfg = e.config()
    app = create_app(cfg)
    gw: Gateway = app.state.gateway
    try:
        with ServerThread(app) as server:
            key = gw.keys.create("agents")
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
            yield e, (gw, client, server, key)
    finally:
        e.close()


def adapters(e: Engines, names: list[str]) -> dict[str, Adapter]:
    return {n: register(e.cfg_base, n, peft_dir(e.tmp / n, n), base="base-model") for n in names}


def ask(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hello"}]
    )


def test_vllm_loads_on_demand_and_evicts_lru_within_max_loras(engines: Any) -> None:
    e, (gw, client, _, _) = engines
    ad = adapters(e, ["a", "b", "c"])
    for n in ("a", "b", "a", "c"):
        raw = ask(client, f"vllm:{n}")
        text = raw.parse().choices[0].message.content
        assert text == f"[adapter {served_name(ad[n])}] ok"
        r = gw.ledger.get_receipt(raw.headers["x-hybridgate-receipt"])["receipt"]
        assert r["adapter_sha256"] == ad[n].sha256 and r["route"] == "vllm"
    # b was least recently used when c needed a slot
    assert e.vllm.admin_calls == [
        ("load", served_name(ad["a"])),
        ("load", served_name(ad["b"])),
        ("unload", served_name(ad["b"])),
        ("load", served_name(ad["c"])),
    ]
    assert set(e.vllm.loaded) == {served_name(ad["a"]), served_name(ad["c"])}
    # the base model is still the route's plain model
    assert ask(client, "vllm").parse().choices[0].message.content.startswith("echo")


async def test_vllm_never_exceeds_slots_under_concurrency(engines: Any) -> None:
    e, (gw, _, server, key) = engines
    ad = adapters(e, ["a", "b", "c", "d", "e"])
    e.vllm.set_latency(0.05)
    jobs = [f"vllm:{n}" for n in ad for _ in range(3)]
    async with openai.AsyncOpenAI(
        base_url=server.base_url + "/v1", api_key=key, max_retries=0
    ) as client:  # its connections closed in this test's loop
        answers = await asyncio.gather(
            *(
                client.chat.completions.create(model=m, messages=[{"role": "user", "content": "x"}])
                for m in jobs
            )
        )
    for m, a in zip(jobs, answers, strict=True):
        assert a.choices[0].message.content == f"[adapter {served_name(ad[m[5:]])}] ok"
    # the stand-in refuses a third load, so every request succeeding proves the slots held
    assert len(e.vllm.loaded) <= 2
    provider = gw.providers["vllm"]
    assert isinstance(provider, VLLMProvider) and len(provider.loaded()) <= 2


def test_vllm_adopts_adapters_loaded_before_a_restart(engines: Any) -> None:
    e, (_, client, _, _) = engines
    for stale in ("old-1", "old-2"):  # e.g. loaded by a previous gateway process
        path = str(peft_dir(e.tmp / stale, stale))
        r = httpx.post(
            e.vllm.base_url + "/load_lora_adapter", json={"lora_name": stale, "lora_path": path}
        )
        assert r.status_code == 200
    ad = adapters(e, ["a"])
    assert ask(client, "vllm:a").parse().choices[0].message.content.endswith("ok")
    assert ("unload", "old-1") in e.vllm.admin_calls and served_name(ad["a"]) in e.vllm.loaded


def test_new_weights_under_the_same_name_are_a_new_served_model(engines: Any) -> None:
    e, (_, client, _, _) = engines
    first = adapters(e, ["a"])["a"]
    ask(client, "vllm:a")
    second = register(
        e.cfg_base, "a", peft_dir(e.tmp / "a2", "other"), base="base-model", replace=True
    )
    text = ask(client, "vllm:a").parse().choices[0].message.content
    assert text == f"[adapter {served_name(second)}] ok" != f"[adapter {served_name(first)}] ok"


def test_lorax_sends_the_adapter_id_as_model(engines: Any) -> None:
    e, (_, client, _, _) = engines
    ad = adapters(e, ["a"])
    raw = ask(client, "lorax:a")
    assert raw.parse().choices[0].message.content == f"[adapter {ad['a'].sha256}] ok"
    sent = [r.body for r in e.lorax.requests if r.path.endswith("/chat/completions")][-1]
    assert sent["model"] == ad["a"].path and sent["adapter_source"] == "local"
    assert e.lorax.loaded == [ad["a"].path]


def test_llamacpp_applies_one_preloaded_adapter_per_request(engines: Any) -> None:
    e, (gw, client, _, _) = engines
    raw = ask(client, "llama:gguf-task")
    assert raw.parse().choices[0].message.content == "[adapter g.gguf] ok"
    sent = [r.body for r in e.llama.requests if r.path.endswith("/chat/completions")][-1]
    assert sent["lora"] == [{"id": 0, "scale": 1.0}] and sent["model"] == "base-model"
    r = gw.ledger.get_receipt(raw.headers["x-hybridgate-receipt"])["receipt"]
    assert r["adapter_sha256"] == e.gguf.sha256
    # a GGUF adapter the server was not started with is refused, not silently ignored
    other = e.tmp / "other.gguf"
    other.write_bytes(b"GGUF\x03 another")
    register(e.cfg_base, "gguf-late", other, base="base-model")
    with pytest.raises(openai.APIStatusError) as ei:
        ask(client, "llama:gguf-late")
    assert ei.value.status_code == 502 and "not loaded on this llama-server" in str(ei.value)


def test_formats_pick_their_engines(engines: Any) -> None:
    e, (_, client, _, _) = engines
    adapters(e, ["a"])
    with pytest.raises(openai.NotFoundError):
        ask(client, "llama:a")  # a PEFT adapter cannot run on llama.cpp
    for route in ("vllm", "lorax"):
        with pytest.raises(openai.NotFoundError):
            ask(client, f"{route}:gguf-task")  # and a GGUF one only there
