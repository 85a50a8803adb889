"""What callers hand the serving engine and what it hands back.

Plain frozen values, kept apart from the engine thread so that providers and
tests can build requests and read events without importing the engine's
batching machinery.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridgate.errors import GatewayError


@dataclass(frozen=True, slots=True)
class EngineConfig:
    model_path: str
    name: str = "local"
    device: str = "cpu"
    dtype: str = "auto"
    max_batch: int = 8
    adapter_memory_bytes: int = 256 * 1024 * 1024
    max_adapters: int = 16


@dataclass(frozen=True, slots=True)
class AdapterRef:
    """What the engine needs to load an adapter: where, and what its files must hash to."""

    name: str
    sha256: str
    path: str
    size_bytes: int = 0


@dataclass(frozen=True, slots=True)
class GenRequest:
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    adapter: AdapterRef | None = None
    stops: tuple[str, ...] = ()
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Delta:
    text: str


@dataclass(frozen=True, slots=True)
class Done:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    ttft_s: float
    token_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Failed:
    error: GatewayError


Event = Delta | Done | Failed
