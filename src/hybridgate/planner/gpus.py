"""The GPUs sizing is checked against: nominal memory and memory bandwidth from datasheets.

Memory is the vendor's nominal figure, treated as GiB: ``nvidia-smi`` shows an
"80 GB" card as about 80 GiB, so the small difference is within the runtime
overhead the estimate already adds.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    memory_gib: float
    bandwidth_gb_s: float
    kind: Literal["consumer", "datacenter"]
    source: str
    #: dense 16-bit tensor TFLOPS (no sparsity); None where not recorded
    tflops_16bit: float | None = None
    tflops_source: str | None = None
    #: the day these datasheet figures were last compared with the datasheet; None: never
    #: (``hybridgate catalog check`` lists them with the catalog's facts)
    checked: dt.date | None = None


GPUS: tuple[Gpu, ...] = (
    Gpu(
        "RTX 4060",
        8,
        272,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4060-4060ti/",
    ),
    Gpu(
        "RTX 3060 12GB",
        12,
        360,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/rtx-3060-3060ti/",
    ),
    Gpu(
        "RTX 4060 Ti 16GB",
        16,
        288,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4060-4060ti/",
    ),
    Gpu(
        "RTX 3090",
        24,
        936,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/rtx-3090-3090ti/",
        71.0,
        "NVIDIA Ampere GA102 GPU Architecture whitepaper, Table 9 (FP16 tensor, FP32 accumulate)",
    ),
    Gpu(
        "RTX 4090",
        24,
        1008,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/",
        165.2,
        "NVIDIA Ada Lovelace GPU Architecture whitepaper, Table 2 (FP16 tensor, FP32 accumulate)",
    ),
    Gpu(
        "L4",
        24,
        300,
        "datacenter",
        "https://www.nvidia.com/en-us/data-center/l4/",
        121.0,
        "NVIDIA L4 datasheet: BF16 tensor 242 TFLOPS with sparsity, half without",
    ),
    Gpu(
        "A100 40GB",
        40,
        1555,
        "datacenter",
        "https://www.nvidia.com/en-us/data-center/a100/",
        312.0,
        "NVIDIA A100 datasheet: BF16 tensor 312 TFLOPS (624 with sparsity)",
    ),
    Gpu(
        "A100 80GB",
        80,
        2039,
        "datacenter",
        "https://www.nvidia.com/en-us/data-center/a100/",
        312.0,
        "NVIDIA A100 datasheet: BF16 tensor 312 TFLOPS (624 with sparsity)",
    ),
    Gpu(
        "H100 80GB",
        80,
        3350,
        "datacenter",
        "https://www.nvidia.com/en-us/data-center/h100/",
        989.0,
        "NVIDIA H100 datasheet (SXM): BF16 tensor 1,979 TFLOPS with sparsity, half without",
    ),
    Gpu(
        "H200",
        141,
        4800,
        "datacenter",
        "https://www.nvidia.com/en-us/data-center/h200/",
        989.0,
        "NVIDIA H200 datasheet (SXM): BF16 tensor 1,979 TFLOPS with sparsity, half without",
    ),
)


def find_gpu(name: str, table: tuple[Gpu, ...] = GPUS) -> Gpu:
    """A GPU by name, ignoring case and spaces (``h100``, ``A100-80GB``)."""
    key = name.lower().replace(" ", "").replace("-", "")
    for g in table:
        full = g.name.lower().replace(" ", "")
        if key in (full, full.removesuffix("80gb")):
            return g
    raise KeyError(f"unknown GPU {name!r}; known: {', '.join(g.name for g in table)}")
