"""Route configuration -> provider instance. Construction is cheap and does no I/O."""

from __future__ import annotations

from hybridgate.config import RouteConfig
from hybridgate.errors import ConfigError
from hybridgate.providers.anthropic import AnthropicProvider
from hybridgate.providers.base import Provider
from hybridgate.providers.openai_compat import OpenAICompatProvider


def build_provider(route: RouteConfig) -> Provider:
    """The provider for ``route.provider``; local models load on first use, not here."""
    if route.provider in ("openai", "openai_compat"):
        return OpenAICompatProvider(route)
    if route.provider == "anthropic":
        return AnthropicProvider(route)
    if route.provider in ("vllm", "lorax", "llamacpp"):
        from hybridgate.providers.lora_engines import build_lora_engine

        return build_lora_engine(route)
    if route.provider == "local":
        from hybridgate.providers.local import LocalProvider

        return LocalProvider(route)
    raise ConfigError(f"route {route.name}: unknown provider {route.provider!r}")
