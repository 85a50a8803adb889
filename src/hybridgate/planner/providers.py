"""Which built-in gateway provider reaches a catalog model's API, and with which key."""

from __future__ import annotations

from hybridgate.planner.catalog import CatalogEntry

#: provider kind, key variable, base URL (None: the provider's default)
_PROVIDERS: dict[str, tuple[str, str, str | None]] = {
    "openai": ("openai", "${OPENAI_API_KEY}", None),
    "anthropic": ("anthropic", "${ANTHROPIC_API_KEY}", None),
    "google deepmind": (
        "openai_compat",
        "${GEMINI_API_KEY}",
        "https://generativelanguage.googleapis.com/v1beta/openai/",
    ),
    "deepseek": ("openai_compat", "${DEEPSEEK_API_KEY}", "https://api.deepseek.com"),
}


def api_provider(e: CatalogEntry) -> tuple[str, str, str | None] | None:
    """How the gateway reaches ``e``'s API, or None if no built-in provider speaks to it."""
    if e.self_hostable or e.api is None:
        return None
    return _PROVIDERS.get(e.organization.lower())
