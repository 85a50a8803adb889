"""Route configuration -> provider instance, through a registry of factories.

A route's ``provider:`` kind names a factory. The built-in kinds are
registered by :func:`default_registry`; tests and deployments extend or
override a registry they own (``registry.register("mine", factory)``) and pass
it to ``create_app`` — the same seam httpx offers with its transports. There
is no module-level registry: each app gets its own. Construction is cheap and
does no I/O; local models load on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hybridgate.config import RouteConfig
from hybridgate.errors import ConfigError
from hybridgate.providers.base import Provider

ProviderFactory = Callable[[RouteConfig], Provider]


def _openai(route: RouteConfig) -> Provider:
    from hybridgate.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(route)


def _anthropic(route: RouteConfig) -> Provider:
    from hybridgate.providers.anthropic import AnthropicProvider

    return AnthropicProvider(route)


def _lora_engine(route: RouteConfig) -> Provider:
    from hybridgate.providers.lora_engines import build_lora_engine

    return build_lora_engine(route)


def _local(route: RouteConfig) -> Provider:
    from hybridgate.providers.local import LocalProvider

    return LocalProvider(route)


class ProviderRegistry:
    """Provider kind -> factory. Copy-on-build: an app keeps the factories it was given."""

    def __init__(self, factories: Mapping[str, ProviderFactory] | None = None) -> None:
        self._factories: dict[str, ProviderFactory] = dict(factories or {})

    def register(self, kind: str, factory: ProviderFactory) -> ProviderRegistry:
        """Add or replace the factory for ``kind``; returns the registry for chaining."""
        self._factories[kind] = factory
        return self

    def kinds(self) -> list[str]:
        return sorted(self._factories)

    def build(self, route: RouteConfig) -> Provider:
        factory = self._factories.get(route.provider)
        if factory is None:
            raise ConfigError(
                f"route {route.name}: unknown provider {route.provider!r}"
                f" (known: {', '.join(self.kinds())})"
            )
        return factory(route)


def default_registry() -> ProviderRegistry:
    """A fresh registry with the built-in kinds."""
    return ProviderRegistry(
        {
            "openai": _openai,
            "openai_compat": _openai,
            "anthropic": _anthropic,
            "local": _local,
            "vllm": _lora_engine,
            "lorax": _lora_engine,
            "llamacpp": _lora_engine,
        }
    )


def build_provider(route: RouteConfig) -> Provider:
    """The built-in provider for ``route`` (what ``default_registry().build`` returns)."""
    return default_registry().build(route)
