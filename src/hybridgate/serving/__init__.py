"""The in-process serving engine: one base model, many LoRA adapters, mixed batches."""

from hybridgate.serving.engine import (
    AdapterRef,
    Delta,
    Done,
    EngineConfig,
    GenRequest,
    ServingEngine,
)
from hybridgate.serving.metrics import ServingMetrics

__all__ = [
    "AdapterRef",
    "Delta",
    "Done",
    "EngineConfig",
    "GenRequest",
    "ServingEngine",
    "ServingMetrics",
]
