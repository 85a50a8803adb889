"""The serving engine on a tiny Llama: mixed-adapter batches match each adapter run alone."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from hybridgate.adapters import adapter_files
from hybridgate.errors import UpstreamError
from hybridgate.serving import AdapterRef, Delta, Done, EngineConfig, GenRequest, ServingEngine
from serving.serving_kit import TinyKit

torch = pytest.importorskip("torch")
peft = pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

PROMPTS = [
    "hello what is the colour",
    "say one two three",
    "ticket refund urgent billing",
    "who is the customer",
    "the order status is open",
    "login error please",
    "summary of the ticket",
    "why is the weather red",
]


def ref(kit: TinyKit, name: str) -> AdapterRef:
    path = kit.adapters[name]
    f = adapter_files(path)
    return AdapterRef(name, f.sha256, str(path), f.size_bytes)


def ids(engine: ServingEngine, text: str) -> tuple[int, ...]:
    return tuple(engine.encode_chat([{"role": "user", "content": text}], None))


def alone(kit: TinyKit, adapter: str | None, prompt: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The reference: plain transformers/PEFT generate() with one adapter, batch of one."""
    model: Any = transformers.AutoModelForCausalLM.from_pretrained(kit.model, dtype=torch.float32)
    if adapter is not None:
        model = peft.PeftModel.from_pretrained(model, kit.adapters[adapter])
    model.eval()
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long),
            max_new_tokens=n,
            do_sample=False,
        )
    new = out[0][len(prompt) :].tolist()
    eos = model.config.eos_token_id
    return tuple(new[: new.index(eos)] if eos in new else new)


async def run(engine: ServingEngine, req: GenRequest) -> tuple[Done, str]:
    streamed = ""
    async for ev in engine.generate(req):
        if isinstance(ev, Delta):
            streamed += ev.text
        else:
            return ev, streamed
    raise AssertionError("no Done event")


async def submit_together(engine: ServingEngine, reqs: list[GenRequest]) -> list[tuple[Done, str]]:
    """Queue every request while the engine is paused, so they share batches."""
    await asyncio.to_thread(engine.load)
    engine.pause()
    tasks = [asyncio.create_task(run(engine, r)) for r in reqs]
    for _ in range(2000):
        if engine.queued == len(reqs):
            break
        await asyncio.sleep(0.005)
    assert engine.queued == len(reqs)
    engine.resume()
    return await asyncio.gather(*tasks)


async def test_mixed_adapter_batch_rows_match_each_adapter_alone(tiny_kit: TinyKit) -> None:
    engine = ServingEngine(EngineConfig(str(tiny_kit.model), name="tiny", max_batch=8))
    await asyncio.to_thread(engine.load)
    names: list[str | None] = [
        "summarize",
        "classify",
        None,
        "extract",
        "triage",
        "summarize",
        "classify",
        None,
    ]
    reqs = [
        GenRequest(ids(engine, p), max_new_tokens=10 + i, adapter=ref(tiny_kit, n) if n else None)
        for i, (p, n) in enumerate(zip(PROMPTS, names, strict=True))
    ]
    results = await submit_together(engine, reqs)
    assert engine.max_rows_seen == 8  # one batch held every row
    assert len(engine.loaded_adapters()) == 4  # four adapters served side by side
    for req, name, (done, streamed) in zip(reqs, names, results, strict=True):
        expected = alone(tiny_kit, name, req.prompt_ids, req.max_new_tokens)
        assert done.token_ids == expected, name
        assert streamed == done.text
        assert done.completion_tokens >= len(expected) >= 1
        assert done.finish_reason == ("length" if len(expected) == req.max_new_tokens else "stop")
    # different adapters really answer differently
    assert len({d.token_ids for d, _ in results[:5]}) > 1
    engine.close()


async def test_rows_join_a_running_batch(tiny_kit: TinyKit) -> None:
    """Continuous batching: a request arriving mid-generation joins the next step."""
    engine = ServingEngine(EngineConfig(str(tiny_kit.model), name="tiny", max_batch=4))
    await asyncio.to_thread(engine.load)
    long = GenRequest(ids(engine, PROMPTS[0]), max_new_tokens=60, adapter=ref(tiny_kit, "extract"))
    late = GenRequest(ids(engine, PROMPTS[5]), max_new_tokens=5, adapter=ref(tiny_kit, "triage"))
    first = asyncio.create_task(run(engine, long))
    for _ in range(5000):  # bounded: until the long row has run a few steps
        if engine.steps >= 3 or first.done():
            break
        await asyncio.sleep(0.002)
    second = await run(engine, late)
    done_long, _ = await first
    assert second[0].token_ids == alone(tiny_kit, "triage", late.prompt_ids, 5)
    assert done_long.token_ids == alone(tiny_kit, "extract", long.prompt_ids, 60)
    if done_long.finish_reason == "length":  # the long row was still running: they shared steps
        assert engine.max_rows_seen == 2
    engine.close()


async def _one_adapter_bytes(kit: TinyKit) -> int:
    probe = ServingEngine(EngineConfig(str(kit.model), name="probe"))
    await asyncio.to_thread(probe.load)
    await run(probe, GenRequest(ids(probe, "hello"), 2, adapter=ref(kit, "summarize")))
    one = probe.slots.used_bytes
    probe.close()
    return one


async def test_lru_eviction_under_a_memory_budget(tiny_kit: TinyKit) -> None:
    one = await _one_adapter_bytes(tiny_kit)
    # room for two adapters' weights, not three
    engine = ServingEngine(
        EngineConfig(str(tiny_kit.model), name="tiny", adapter_memory_bytes=2 * one + one // 2)
    )
    await asyncio.to_thread(engine.load)
    order = ["summarize", "classify", "summarize", "extract", "classify"]
    for name in order:
        req = GenRequest(ids(engine, PROMPTS[1]), 6, adapter=ref(tiny_kit, name))
        done, _ = await run(engine, req)
        assert done.token_ids == alone(tiny_kit, name, req.prompt_ids, 6)
        assert engine.slots.used_bytes <= engine.slots.budget_bytes
    # extract evicted classify (least recently used); classify then evicted summarize
    assert engine.loaded_adapters() == [
        ref(tiny_kit, "extract").sha256,
        ref(tiny_kit, "classify").sha256,
    ]
    evictions = next(iter(engine.metrics.evictions.collect())).samples
    assert sum(s.value for s in evictions if s.name.endswith("_total")) == 2
    engine.close()


async def test_busy_adapters_are_never_evicted(tiny_kit: TinyKit) -> None:
    """With room for one adapter, rows of a second wait until the first's rows finish."""
    one = await _one_adapter_bytes(tiny_kit)
    engine = ServingEngine(
        EngineConfig(str(tiny_kit.model), name="tiny", adapter_memory_bytes=one + one // 2)
    )
    await asyncio.to_thread(engine.load)
    names = ["summarize", "classify", "summarize"]
    reqs = [
        GenRequest(ids(engine, PROMPTS[i]), 8, adapter=ref(tiny_kit, n))
        for i, n in enumerate(names)
    ]
    results = await submit_together(engine, reqs)
    for req, n, (done, _) in zip(reqs, names, results, strict=True):
        assert done.token_ids == alone(tiny_kit, n, req.prompt_ids, 8)
    assert len(engine.loaded_adapters()) == 1
    engine.close()


async def test_stop_sequences_cut_and_never_stream(tiny_kit: TinyKit) -> None:
    engine = ServingEngine(EngineConfig(str(tiny_kit.model), name="tiny"))
    await asyncio.to_thread(engine.load)
    base = GenRequest(ids(engine, PROMPTS[2]), 12, adapter=ref(tiny_kit, "classify"))
    full, _ = await run(engine, base)
    words = full.text.split()
    assert len(words) >= 3
    stop = " ".join(words[1:3])
    done, streamed = await run(
        engine,
        GenRequest(base.prompt_ids, 12, adapter=base.adapter, stops=("zz-never", stop)),
    )
    assert done.finish_reason == "stop"
    assert done.text == full.text[: full.text.index(stop)]
    assert streamed == done.text and stop not in streamed
    engine.close()


async def test_cancelled_stream_frees_its_row(tiny_kit: TinyKit) -> None:
    engine = ServingEngine(EngineConfig(str(tiny_kit.model), name="tiny", max_batch=1))
    await asyncio.to_thread(engine.load)
    extract = ref(tiny_kit, "extract")
    gen = engine.generate(GenRequest(ids(engine, PROMPTS[0]), 200, adapter=extract))
    async for ev in gen:
        assert isinstance(ev, Delta)
        break
    await gen.aclose()  # type: ignore[attr-defined]
    # the only row is free again: a new request is served
    done, _ = await run(engine, GenRequest(ids(engine, PROMPTS[1]), 3))
    assert done.completion_tokens >= 1
    slot = engine.slots.get(extract.sha256)
    assert slot is not None and slot.users == 0
    engine.close()


async def test_tampered_adapter_is_refused(tiny_kit: TinyKit, tmp_path: Path) -> None:
    engine = ServingEngine(EngineConfig(str(tiny_kit.model), name="tiny"))
    await asyncio.to_thread(engine.load)
    good = ref(tiny_kit, "summarize")
    copy = tmp_path / "copy"
    shutil.copytree(good.path, copy)
    (copy / "adapter_model.safetensors").write_bytes(b"garbage")
    bad = AdapterRef("summarize", good.sha256, str(copy), good.size_bytes)
    with pytest.raises(UpstreamError) as ei:
        await run(engine, GenRequest(ids(engine, "hello"), 3, adapter=bad))
    assert ei.value.code == "adapter_unavailable" and not ei.value.retryable
    done, _ = await run(engine, GenRequest(ids(engine, "hello"), 3, adapter=good))
    assert done.completion_tokens >= 1  # the engine keeps serving
    engine.close()
