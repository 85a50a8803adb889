"""How much GPU memory a model needs to serve, and which GPUs hold it.

The estimate is the sum of four parts, each printed with its formula:

* weights: total parameters × bytes per parameter at the chosen precision
  (mixture-of-experts models count *all* experts: every expert must be resident);
* KV cache: ``2 × layers × kv_heads × head_dim × context × batch × kv_bytes``
  (K and V for every layer, KV head, position and sequence), or
  ``layers × kv_latent_dim × context × batch × kv_bytes`` for latent attention;
* activations and allocator slack: a stated fraction of weights + KV;
* runtime: a fixed amount per GPU (CUDA context, kernels, workspaces).

A model split over ``n`` GPUs (tensor parallel) needs ``n`` such that the
variable parts divided by ``n`` plus the per-GPU runtime fit in one card.
Nothing here is measured; the numbers are as good as the assumptions printed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from hybridgate.planner.catalog import CatalogEntry
from hybridgate.planner.gpus import GPUS, Gpu

Quant = Literal["bf16", "fp16", "fp8", "int8", "mxfp4", "int4"]
#: MXFP4: 4-bit values with one 8-bit scale per 32 (4.25 bits per parameter)
BYTES_PER_PARAM: dict[str, float] = {
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "mxfp4": 4.25 / 8,
    "int4": 0.5,
}
#: what sizing falls back to when the catalog does not record a native precision
DEFAULT_PRECISION = "bf16"


def resolve_precision(e: CatalogEntry, requested: str = "native") -> tuple[str, str]:
    """The precision to size ``e`` at, and why: the publisher's format unless one is asked for."""
    native = e.native_precision
    if requested != "native":
        if requested not in BYTES_PER_PARAM:
            raise ValueError(f"precision must be native or one of {', '.join(BYTES_PER_PARAM)}")
        why = f"{requested} as requested" + (f" (ships as {native})" if native else "")
        return requested, why
    if native is None:
        return DEFAULT_PRECISION, f"native precision not recorded: sized at {DEFAULT_PRECISION}"
    return native, f"{native}, the precision the weights ship in"


GIB = 1024**3
#: largest tensor-parallel group considered: one 8-GPU node
MAX_GPUS = 8


class MissingFact(ValueError):
    """The catalog lacks a fact the estimate needs; we refuse to guess it."""


@dataclass(frozen=True, slots=True)
class ModelShape:
    """The facts memory depends on, taken from a catalog entry."""

    name: str
    total_params: float
    active_params: float | None
    layers: int
    kv_heads: int | None
    head_dim: int | None
    kv_latent_dim: int | None = None

    @classmethod
    def from_entry(cls, e: CatalogEntry) -> ModelShape:
        p, a = e.params, e.architecture
        if p is None or p.total_b is None:
            raise MissingFact(f"{e.name}: the catalog has no total parameter count")
        if a is None or a.layers is None:
            raise MissingFact(f"{e.name}: the catalog has no layer count")
        if a.kv_latent_dim is None and (a.kv_heads is None or a.head_dim is None):
            raise MissingFact(f"{e.name}: the catalog lacks KV heads or head dim")
        return cls(
            name=e.name,
            total_params=p.total_b * 1e9,
            active_params=None if p.active_b is None else p.active_b * 1e9,
            layers=a.layers,
            kv_heads=a.kv_heads,
            head_dim=a.head_dim,
            kv_latent_dim=a.kv_latent_dim,
        )


@dataclass(frozen=True, slots=True)
class Assumptions:
    kv_bytes: float = 2.0
    activation_fraction: float = 0.10
    runtime_gib_per_gpu: float = 1.0

    def lines(self) -> list[str]:
        return [
            f"KV cache stored at {self.kv_bytes:g} bytes per element (fp16 unless --kv-bytes)",
            f"activations and allocator slack = {self.activation_fraction:.0%} of weights + KV",
            f"runtime (CUDA context, kernels, buffers) = {self.runtime_gib_per_gpu:g} GiB per GPU",
            "int4 counts 0.5 bytes per parameter (group-wise scales add a few percent); "
            "mxfp4 0.53125 (4-bit values plus one 8-bit scale per 32)",
            "GPU memory is the nominal datasheet figure, read as GiB",
        ]


@dataclass(frozen=True, slots=True)
class GpuFit:
    gpu: Gpu
    count: int | None  # GPUs needed (tensor parallel); None: more than MAX_GPUS
    decode_tokens_per_s_bound: float | None


@dataclass(frozen=True)
class MemoryEstimate:
    model: str
    quant: str
    context: int
    batch: int
    weights_bytes: float
    kv_bytes: float
    activation_bytes: float
    runtime_bytes: float
    fits: tuple[GpuFit, ...]
    formulas: tuple[str, ...]
    assumptions: tuple[str, ...] = field(default=())

    @property
    def variable_bytes(self) -> float:
        return self.weights_bytes + self.kv_bytes + self.activation_bytes

    @property
    def total_bytes(self) -> float:
        """On one GPU: everything plus one runtime."""
        return self.variable_bytes + self.runtime_bytes


def weight_bytes(total_params: float, quant: str) -> float:
    return total_params * BYTES_PER_PARAM[quant]


def kv_cache_bytes(shape: ModelShape, context: int, batch: int, kv_bytes: float) -> float:
    if shape.kv_latent_dim is not None:
        return float(shape.layers * shape.kv_latent_dim * context * batch) * kv_bytes
    if shape.kv_heads is None or shape.head_dim is None:
        raise MissingFact(f"{shape.name}: KV heads or head dim unknown")
    return float(2 * shape.layers * shape.kv_heads * shape.head_dim * context * batch) * kv_bytes


def gpus_needed(variable_bytes: float, gpu: Gpu, runtime_gib: float) -> int | None:
    """Smallest power of two n with ``variable / n + runtime <= memory``; None above MAX_GPUS.

    Powers of two because tensor parallelism splits attention heads evenly, and
    serving engines support 1, 2, 4 or 8 GPUs per model in practice.
    """
    room = (gpu.memory_gib - runtime_gib) * GIB
    if room <= 0:
        return None
    n = max(1, math.ceil(variable_bytes / room - 1e-12))
    n = 1 << (n - 1).bit_length()
    return n if n <= MAX_GPUS else None


def decode_bound(
    active_weight_bytes: float, kv_bytes: float, batch: int, bandwidth_gb_s: float, n: int
) -> float:
    """Memory-bandwidth roofline for decoding: an upper bound, never a throughput measurement.

    Each decode step reads the active weights once and every sequence's KV
    cache once, and produces one token per sequence, so
    ``tokens/s <= batch × bandwidth × n / (active weights + KV)``.
    """
    return batch * bandwidth_gb_s * 1e9 * n / (active_weight_bytes + kv_bytes)


def estimate_memory(
    shape: ModelShape,
    quant: str,
    context: int,
    batch: int,
    assumptions: Assumptions = Assumptions(),
    gpus: tuple[Gpu, ...] = GPUS,
) -> MemoryEstimate:
    if quant not in BYTES_PER_PARAM:
        raise ValueError(f"quant must be one of {', '.join(BYTES_PER_PARAM)}")
    if context <= 0 or batch <= 0:
        raise ValueError("context and batch must be positive")
    bpp = BYTES_PER_PARAM[quant]
    w = weight_bytes(shape.total_params, quant)
    kv = kv_cache_bytes(shape, context, batch, assumptions.kv_bytes)
    act = assumptions.activation_fraction * (w + kv)
    runtime = assumptions.runtime_gib_per_gpu * GIB
    if shape.kv_latent_dim is not None:
        kv_formula = (
            f"KV cache = layers × kv_latent_dim × context × batch × kv_bytes = {shape.layers} × "
            f"{shape.kv_latent_dim} × {context} × {batch} × {assumptions.kv_bytes:g} = {_gib(kv)}"
        )
    else:
        kv_formula = (
            "KV cache = 2 × layers × kv_heads × head_dim × context × batch × kv_bytes = "
            f"2 × {shape.layers} × {shape.kv_heads} × {shape.head_dim} × {context} × {batch} × "
            f"{assumptions.kv_bytes:g} = {_gib(kv)}"
        )
    formulas = (
        f"weights = total params × bytes/param = {shape.total_params:.4g} × {bpp:g} = {_gib(w)}",
        kv_formula,
        f"activations = {assumptions.activation_fraction:g} × (weights + KV) = {_gib(act)}",
        f"runtime = {assumptions.runtime_gib_per_gpu:g} GiB per GPU",
        f"total on one GPU = {_gib(w)} + {_gib(kv)} + {_gib(act)} + {_gib(runtime)} = "
        f"{_gib(w + kv + act + runtime)}",
        "GPUs needed n = ceil((weights + KV + activations) / (GPU memory − runtime)), "
        "rounded up to a power of two (tensor parallel)",
    )
    active = (shape.active_params or shape.total_params) * bpp
    fits = []
    for g in gpus:
        n = gpus_needed(w + kv + act, g, assumptions.runtime_gib_per_gpu)
        bound = None if n is None else decode_bound(active, kv, batch, g.bandwidth_gb_s, n)
        fits.append(GpuFit(g, n, bound))
    extra = []
    if shape.active_params is None:
        extra.append("active parameters unknown: the decode bound reads all weights per step")
    return MemoryEstimate(
        model=shape.name,
        quant=quant,
        context=context,
        batch=batch,
        weights_bytes=w,
        kv_bytes=kv,
        activation_bytes=act,
        runtime_bytes=runtime,
        fits=tuple(fits),
        formulas=formulas,
        assumptions=(*assumptions.lines(), *extra),
    )


def _gib(b: float) -> str:
    return f"{b / GIB:.2f} GiB"
