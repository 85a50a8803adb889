"""The GPUs sizing is checked against: nominal memory and memory bandwidth from datasheets.

Memory is the vendor's nominal figure, treated as GiB: ``nvidia-smi`` shows an
"80 GB" card as about 80 GiB, so the small difference is within the runtime
overhead the estimate already adds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Gpu:
    name: str
    memory_gib: float
    bandwidth_gb_s: float
    kind: Literal["consumer", "datacenter"]
    source: str


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
    ),
    Gpu(
        "RTX 4090",
        24,
        1008,
        "consumer",
        "https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/",
    ),
    Gpu("L4", 24, 300, "datacenter", "https://www.nvidia.com/en-us/data-center/l4/"),
    Gpu("A100 40GB", 40, 1555, "datacenter", "https://www.nvidia.com/en-us/data-center/a100/"),
    Gpu("A100 80GB", 80, 2039, "datacenter", "https://www.nvidia.com/en-us/data-center/a100/"),
    Gpu("H100 80GB", 80, 3350, "datacenter", "https://www.nvidia.com/en-us/data-center/h100/"),
    Gpu("H200", 141, 4800, "datacenter", "https://www.nvidia.com/en-us/data-center/h200/"),
)


def find_gpu(name: str, table: tuple[Gpu, ...] = GPUS) -> Gpu:
    """A GPU by name, ignoring case and spaces (``h100``, ``A100-80GB``)."""
    key = name.lower().replace(" ", "").replace("-", "")
    for g in table:
        full = g.name.lower().replace(" ", "")
        if key in (full, full.removesuffix("80gb")):
            return g
    raise KeyError(f"unknown GPU {name!r}; known: {', '.join(g.name for g in table)}")
