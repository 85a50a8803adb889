"""Task adapters (LoRA) registered by name and identified by the digest of their files.

The small Python API, for training jobs and tools::

    from hybridgate.adapters import register, adapters_for

    adapter = register(config, "summarize", "/out/lora", base="tiny-llama",
                       task="Summarize a support ticket in one sentence.")
    adapter.sha256   # the id every receipt it serves carries

See docs/serving.md for the registry, the id and how routes serve adapters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hybridgate.adapters.files import AdapterFiles, adapter_files, manifest_digest, verify
from hybridgate.adapters.model import (
    DEFAULT_INPUT_SCHEMA,
    Adapter,
    split_model_name,
    validate_name,
)
from hybridgate.adapters.store import CACHE_TTL_S, AdapterRegistry
from hybridgate.config import GatewayConfig
from hybridgate.store import Store, build_store

__all__ = [
    "CACHE_TTL_S",
    "DEFAULT_INPUT_SCHEMA",
    "Adapter",
    "AdapterFiles",
    "AdapterRegistry",
    "adapter_files",
    "list_adapters",
    "manifest_digest",
    "open_registry",
    "register",
    "remove",
    "split_model_name",
    "validate_name",
    "verify",
]


def open_registry(config: GatewayConfig) -> tuple[AdapterRegistry, Store]:
    """The registry of the gateway ``config`` describes; close the store when done."""
    store = build_store(config)
    store.open(AdapterRegistry.migrations())
    return AdapterRegistry(store, config.home_path), store


def register(
    config: GatewayConfig,
    name: str,
    path: str | Path,
    *,
    base: str,
    task: str | None = None,
    input_schema: dict[str, Any] | None = None,
    replaces: str | None = None,
    replace: bool = False,
) -> Adapter:
    """Register the adapter at ``path`` with the gateway of ``config`` (running or not).

    A running gateway serves it within :data:`CACHE_TTL_S` seconds. Raises
    :class:`~hybridgate.errors.InvalidRequest` for bad names, files or schemas
    and :class:`~hybridgate.errors.Conflict` when ``name`` holds other weights
    and ``replace`` is false.
    """
    reg, store = open_registry(config)
    try:
        return reg.register(
            name,
            path,
            base=base,
            task=task,
            input_schema=input_schema,
            replaces=replaces,
            replace=replace,
        )
    finally:
        store.close()


def remove(config: GatewayConfig, name: str) -> Adapter:
    """Unregister ``name``; a running gateway refuses it within :data:`CACHE_TTL_S` s."""
    reg, store = open_registry(config)
    try:
        return reg.remove(name)
    finally:
        store.close()


def list_adapters(config: GatewayConfig) -> list[Adapter]:
    reg, store = open_registry(config)
    try:
        return reg.list()
    finally:
        store.close()
