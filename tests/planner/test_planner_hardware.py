"""GPU memory sizing against hand-computed values."""

from __future__ import annotations

import pytest

from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.gpus import GPUS, find_gpu
from hybridgate.planner.hardware import (
    GIB,
    Assumptions,
    MissingFact,
    ModelShape,
    decode_bound,
    estimate_memory,
    gpus_needed,
    kv_cache_bytes,
    weight_bytes,
)

CAT = load_catalog()


def shape(name: str) -> ModelShape:
    return ModelShape.from_entry(CAT.get(name))


def test_weights_by_precision() -> None:
    # 8.03e9 parameters × 2 / 1 / 0.5 bytes
    assert weight_bytes(8.03e9, "fp16") == pytest.approx(16.06e9)
    assert weight_bytes(8.03e9, "int8") == pytest.approx(8.03e9)
    assert weight_bytes(8.03e9, "int4") == pytest.approx(4.015e9)


def test_kv_cache_llama3_8b() -> None:
    # 2 × 32 layers × 8 KV heads × 128 dims × 8192 positions × 1 sequence × 2 bytes = 2^30
    assert kv_cache_bytes(shape("llama-3-8b"), 8192, 1, 2.0) == 1 * GIB
    # linear in context and batch
    assert kv_cache_bytes(shape("llama-3-8b"), 4096, 4, 2.0) == 2 * GIB


def test_kv_cache_latent_attention() -> None:
    # DeepSeek-V3: 61 layers × 576 latent dims × 4096 × 1 × 2 bytes = 287,834,112 (no factor 2)
    assert kv_cache_bytes(shape("deepseek-v3"), 4096, 1, 2.0) == 287_834_112


def test_full_estimate_by_hand() -> None:
    est = estimate_memory(shape("llama-3-8b"), "fp16", 8192, 1)
    w, kv = 16.06e9, float(GIB)
    act = 0.1 * (w + kv)  # 1,713,374,182.4
    assert est.weights_bytes == pytest.approx(w)
    assert est.kv_bytes == pytest.approx(kv)
    assert est.activation_bytes == pytest.approx(act)
    assert est.runtime_bytes == GIB
    assert est.total_bytes == pytest.approx(w + kv + act + GIB)
    fits = {f.gpu.name: f.count for f in est.fits}
    # variable = 18,847,115,906 B = 17.55 GiB; room per GPU = memory − 1 GiB runtime
    assert fits["RTX 4090"] == 1  # 23 GiB room
    assert fits["RTX 4060 Ti 16GB"] == 2  # ceil(17.55 / 15) = 2
    assert fits["RTX 3060 12GB"] == 2  # ceil(17.55 / 11) = 2
    assert fits["RTX 4060"] == 4  # ceil(17.55 / 7) = 3 → next power of two 4
    assert fits["H200"] == 1
    assert any("1 GiB per GPU" in a for a in est.assumptions)


def test_moe_counts_all_experts_for_memory_and_active_for_decode() -> None:
    est = estimate_memory(shape("mixtral-8x7b"), "fp16", 4096, 1)
    assert est.weights_bytes == pytest.approx(46.7e9 * 2)
    h100 = next(f for f in est.fits if f.gpu.name == "H100 80GB")
    # (93.4e9 + KV 0.5 GiB) × 1.1 = 103.3 GB = 96.2 GiB > 79 GiB → 2 GPUs
    assert h100.count == 2
    # decode bound = 1 × 3350e9 × 2 / (12.9e9 × 2 + 536,870,912)
    assert h100.decode_tokens_per_s_bound == pytest.approx(3350e9 * 2 / (25.8e9 + 536_870_912))


def test_decode_bound_by_hand() -> None:
    # 8 × 1000 GB/s × 1 / (4e9 + 1e9) = 1600 tokens/s
    assert decode_bound(4e9, 1e9, 8, 1000.0, 1) == pytest.approx(1600.0)


def test_gpus_needed_edges() -> None:
    h100 = find_gpu("h100")
    assert gpus_needed(79 * GIB, h100, 1.0) == 1  # exactly fits
    assert gpus_needed(79 * GIB + 1, h100, 1.0) == 2
    assert gpus_needed(8 * 79 * GIB, h100, 1.0) == 8
    assert gpus_needed(8 * 79 * GIB + 1, h100, 1.0) is None  # more than one node


def test_assumptions_change_the_estimate() -> None:
    a = Assumptions(kv_bytes=1.0, activation_fraction=0.0, runtime_gib_per_gpu=0.5)
    est = estimate_memory(shape("llama-3-8b"), "int8", 8192, 2, a)
    # int8 weights 8.03e9 + KV 2 × 32 × 8 × 128 × 8192 × 2 × 1 = 1 GiB, no activations
    assert est.total_bytes == pytest.approx(8.03e9 + GIB + 0.5 * GIB)


def test_missing_facts_are_refused_not_guessed() -> None:
    with pytest.raises(MissingFact, match="parameter"):
        ModelShape.from_entry(CAT.get("gpt-4o"))
    with pytest.raises(ValueError, match="quant"):
        estimate_memory(shape("llama-3-8b"), "fp3", 1, 1)
    with pytest.raises(ValueError, match="positive"):
        estimate_memory(shape("llama-3-8b"), "fp16", 0, 1)


def test_gpu_table() -> None:
    names = {g.name for g in GPUS}
    assert {"L4", "A100 40GB", "A100 80GB", "H100 80GB", "H200"} <= names
    consumer = [g.memory_gib for g in GPUS if g.kind == "consumer"]
    assert min(consumer) == 8 and max(consumer) == 24
    assert find_gpu("A100-80GB").memory_gib == 80
    assert find_gpu("a100 40gb").memory_gib == 40
    with pytest.raises(KeyError):
        find_gpu("tpu")
