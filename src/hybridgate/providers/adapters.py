"""The seam for providers that serve registered task adapters (LoRA).

A request for ``<base>:<adapter>`` reaches only routes that declare the
adapter (``adapters:`` in the route config), run its base model, speak its
format, and implement :class:`AdapterProvider`: the pipeline hands them the
registry record (name, content id, stored path) with the request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Protocol, runtime_checkable

from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers.base import Completion

#: Which adapter file formats each provider kind can load.
ADAPTER_FORMATS: dict[str, frozenset[str]] = {
    "local": frozenset({"peft"}),
    "vllm": frozenset({"peft"}),
    "lorax": frozenset({"peft"}),
    "llamacpp": frozenset({"gguf"}),
}


@runtime_checkable
class AdapterProvider(Protocol):
    async def chat(self, request: dict[str, Any], adapter: Adapter | None = None) -> Completion: ...

    def chat_stream(
        self, request: dict[str, Any], adapter: Adapter | None = None
    ) -> AsyncIterator[dict[str, Any]]: ...


def serves_adapter(route: RouteConfig, adapter: Adapter) -> bool:
    """True when ``route`` may and can serve ``adapter`` (declared, same base, right format)."""
    allowed = route.adapters
    if not allowed or (adapter.name not in allowed and "*" not in allowed):
        return False
    if adapter.base not in (route.model, route.name):
        return False
    return adapter.format in ADAPTER_FORMATS.get(route.provider, frozenset())


def as_adapter_provider(p: Any) -> AdapterProvider:
    if not isinstance(p, AdapterProvider) or not getattr(p, "serves_adapters", False):
        raise UpstreamError(
            f"route {p.route.name} cannot serve adapters", retryable=False, code="not_supported"
        )
    return p
