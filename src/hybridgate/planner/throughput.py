"""How many tokens a second one replica can serve: a measured figure, or a roofline ceiling.

Replica counts rest on throughput, and the planner never guesses it. In order
of preference it takes:

1. **measured** — the operator's own figure: a route's
   ``price.tokens_per_second`` in their config, or the busiest minute of a
   route in the gateway's usage log (``plan tco --self-host M:measured=ROUTE``);
2. **catalog** — a sourced throughput entry for that GPU and precision
   (a published engine benchmark, stated mix and engine);
3. **roofline** — a ceiling computed from datasheet figures, printed with its
   formula. No engine reaches it, so replicas sized on it are a *minimum*.

The roofline, for ``B`` sequences decoded together on ``n`` GPUs of memory
bandwidth ``BW`` and dense 16-bit tensor rate ``F``:

* the replica is the fewest GPUs that hold the weights and 8 sequences;
  ``B`` is then the most sequences (up to 64) whose KV cache fits it;
* one decode step reads the weights it uses — all of them for a dense model,
  ``min(all, B × active)`` for a mixture of experts — and every sequence's
  KV cache (at its average length, ``input + output / 2``), and does
  ``2 × active params`` FLOPs per sequence:
  ``step = max(bytes / (BW·n), B · 2·active / (F·n))``;
* prefill costs ``input × 2 × active / (F·n)`` per request (compute-bound);
* a batch of ``B`` requests takes ``B × prefill + output × step``, so
  ``tokens/s = B × (input + output) / (B × prefill + output × step)``,
  divided by ``n`` for the per-GPU figure the cost model uses.

Input and output tokens count alike, as everywhere in the planner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hybridgate.planner.catalog import CatalogEntry
from hybridgate.planner.gpus import Gpu
from hybridgate.planner.hardware import (
    BYTES_PER_PARAM,
    GIB,
    MissingFact,
    ModelShape,
    estimate_memory,
    gpus_needed,
    kv_cache_bytes,
)

ThroughputKind = Literal["measured", "catalog", "roofline"]
#: sequences decoded together in the roofline: as many as fit, up to this many
ROOFLINE_BATCH = 64
#: the replica is sized to hold this many sequences; the roofline then fills its memory
MIN_BATCH = 8


@dataclass(frozen=True)
class Throughput:
    """Tokens per second per GPU (input + output) for one model on one GPU type."""

    kind: ThroughputKind
    tokens_per_second_per_gpu: float
    gpus_per_replica: int
    precision: str
    upper_bound: bool
    source: str
    #: decode tokens/s one stream sees at this load (for latency); None if unknown
    stream_tokens_per_second: float | None = None
    formulas: tuple[str, ...] = ()

    def describe(self) -> str:
        bound = " (upper bound: replicas sized on it are a minimum)" if self.upper_bound else ""
        label = "sourced benchmark" if self.kind == "catalog" else self.kind
        return (
            f"{label}: {self.tokens_per_second_per_gpu:,.0f} tokens/s per GPU at "
            f"{self.precision} on {self.gpus_per_replica} GPU(s){bound} — {self.source}"
        )


def replica_gpus(e: CatalogEntry, gpu: Gpu, precision: str, context: int, batch: int) -> int:
    """GPUs one replica needs to hold the weights and ``batch`` sequences of ``context``."""
    est = estimate_memory(ModelShape.from_entry(e), precision, context, batch)
    n = gpus_needed(est.variable_bytes, gpu, est.runtime_bytes / GIB)
    if n is None:
        raise MissingFact(
            f"{e.name} at {precision} with {batch} × {context:,}-token sequences needs more "
            f"than 8× {gpu.name}"
        )
    return n


def _largest_batch(
    e: CatalogEntry, gpu: Gpu, precision: str, context: int, n: int, cap: int
) -> int:
    """The most sequences (up to ``cap``) whose KV cache still fits the replica's ``n`` GPUs."""
    lo, hi = MIN_BATCH, max(MIN_BATCH, cap)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if replica_gpus_or_none(e, gpu, precision, context, mid) is not None and (
            replica_gpus(e, gpu, precision, context, mid) <= n
        ):
            lo = mid
        else:
            hi = mid - 1
    return lo


def replica_gpus_or_none(
    e: CatalogEntry, gpu: Gpu, precision: str, context: int, batch: int
) -> int | None:
    try:
        return replica_gpus(e, gpu, precision, context, batch)
    except MissingFact:
        return None


def roofline(
    e: CatalogEntry,
    gpu: Gpu,
    precision: str,
    input_tokens: float,
    output_tokens: float,
    batch: int = ROOFLINE_BATCH,
) -> Throughput:
    """The ceiling described in the module docstring; raises MissingFact without the facts."""
    if output_tokens <= 0:
        raise ValueError("the roofline needs output tokens (decode is what it bounds)")
    shape = ModelShape.from_entry(e)
    context = max(1, int(input_tokens + output_tokens))
    n = replica_gpus(e, gpu, precision, context, MIN_BATCH)
    batch = _largest_batch(e, gpu, precision, context, n, batch)
    bpp = BYTES_PER_PARAM[precision]
    total = shape.total_params
    active = shape.active_params or total
    weights = total * bpp
    read = min(weights, batch * active * bpp)
    avg_len = max(1, int(input_tokens + output_tokens / 2))
    kv = kv_cache_bytes(shape, avg_len, batch, 2.0)
    bw = gpu.bandwidth_gb_s * 1e9 * n
    t_mem = (read + kv) / bw
    flops = None if gpu.tflops_16bit is None else gpu.tflops_16bit * 1e12 * n
    t_cmp = 0.0 if flops is None else batch * 2 * active / flops
    step = max(t_mem, t_cmp)
    prefill = 0.0 if flops is None else input_tokens * 2 * active / flops
    batch_time = batch * prefill + output_tokens * step
    tps = batch * (input_tokens + output_tokens) / batch_time
    per_gpu = tps / n
    formulas = [
        f"{e.name}: roofline on {n}× {gpu.name} at {precision}, {batch} sequences of "
        f"{input_tokens:g} in + {output_tokens:g} out",
        f"bytes per decode step = weights read {read / GIB:.1f} GiB"
        + (" (min(all, batch × active): MoE)" if read < weights else "")
        + f" + KV {kv / GIB:.2f} GiB at average length {avg_len:,}",
        f"memory time per step = bytes / ({gpu.bandwidth_gb_s:g} GB/s × {n}) = "
        f"{t_mem * 1e3:.2f} ms",
    ]
    if flops is None:
        formulas.append(f"{gpu.name}: tensor rate not recorded: compute and prefill ignored")
    else:
        formulas.append(
            f"compute time per step = {batch} × 2 × {active:.3g} / ({gpu.tflops_16bit:g} TFLOPS × "
            f"{n}) = {t_cmp * 1e3:.2f} ms; prefill per request = {input_tokens:g} × 2 × "
            f"{active:.3g} / ({gpu.tflops_16bit:g} TFLOPS × {n}) = {prefill * 1e3:.2f} ms"
        )
    formulas.append(
        f"tokens/s = {batch} × {input_tokens + output_tokens:g} / ({batch} × prefill + "
        f"{output_tokens:g} × step) = {tps:,.0f} on {n} GPU(s) = {per_gpu:,.0f} per GPU"
    )
    src = (
        f"roofline from {gpu.name} datasheet bandwidth"
        + ("" if flops is None else " and tensor rate")
        + " and the catalog's parameters; no engine reaches it"
    )
    return Throughput("roofline", per_gpu, n, precision, True, src, 1.0 / step, tuple(formulas))


def catalog_throughput(
    e: CatalogEntry,
    gpu: Gpu,
    precision: str,
    context: int,
    mix: tuple[float, float] | None = None,
) -> Throughput | None:
    """A sourced catalog figure for this GPU and precision (nearest ``mix``), if there is one."""
    fact = e.throughput_for(gpu.name, precision, mix)
    if fact is None:
        return None
    n = replica_gpus(e, gpu, precision, context, 1)
    at = (
        f" at {fact.input_tokens} in / {fact.output_tokens} out"
        if fact.input_tokens and fact.output_tokens
        else ""
    )
    engine = f", {fact.engine}" if fact.engine else ""
    formulas: tuple[str, ...] = ()
    if fact.published_output_tps is not None and fact.published_gpus and at:
        formulas = (
            f"{e.name}: published {fact.published_output_tps:,.0f} output tokens/s on "
            f"{fact.published_gpus}× {fact.gpu}{at} → {fact.published_output_tps:,.0f} × "
            f"({fact.input_tokens} + {fact.output_tokens}) / {fact.output_tokens} / "
            f"{fact.published_gpus} = {fact.tokens_per_second:,.1f} tokens/s per GPU",
        )
    return Throughput(
        "catalog",
        fact.tokens_per_second,
        n,
        precision,
        fact.upper_bound,
        f"catalog{engine}{at}: {fact.source_of('tokens_per_second')}",
        formulas=formulas,
    )


def measured(tokens_per_second_per_gpu: float, gpus: int, precision: str, where: str) -> Throughput:
    if tokens_per_second_per_gpu <= 0 or gpus < 1:
        raise ValueError("a measured throughput is positive, on at least one GPU")
    return Throughput("measured", tokens_per_second_per_gpu, gpus, precision, False, where)


def best_throughput(
    e: CatalogEntry,
    gpu: Gpu,
    precision: str,
    input_tokens: float,
    output_tokens: float,
    measured_tps: Throughput | None = None,
) -> Throughput:
    """Measured, else catalog, else roofline — the order the module docstring gives."""
    if measured_tps is not None:
        return measured_tps
    context = max(1, int(input_tokens + output_tokens))
    found = catalog_throughput(e, gpu, precision, context, (input_tokens, output_tokens))
    if found is not None:
        return found
    return roofline(e, gpu, precision, input_tokens, output_tokens)
