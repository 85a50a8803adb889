"""Embedded defaults: what ``hybridgate serve`` runs on with no config file.

SQLite under ``$HYBRIDGATE_HOME``, a generated signing key, the default
policy, and routes for what it finds: ``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY`` and a local OpenAI-compatible server (Ollama) if one
answers. Discovery is explicit I/O done once by the CLI, never at import.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

from hybridgate.config import GatewayConfig, parse_config

OLLAMA_URL = "http://127.0.0.1:11434/v1"

# List prices in USD per million tokens (input, output) for the default routes.
OPENAI_DEFAULTS = (("gpt-4o", 2.50, 10.00), ("gpt-4o-mini", 0.15, 0.60))
ANTHROPIC_DEFAULTS = (("claude-3-5-sonnet-latest", 3.00, 15.00),)


def probe_openai_compatible(base_url: str, timeout: float = 0.5) -> list[str]:
    """Model ids at ``base_url`` (an OpenAI-compatible ``/models``), or [] if none answers."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/models", timeout=timeout) as resp:
            data = json.loads(resp.read(1_000_000))
    except (OSError, urllib.error.URLError, ValueError):
        return []
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return []
    return [m["id"] for m in models if isinstance(m, dict) and isinstance(m.get("id"), str)][:8]


def default_config_data(
    env: Mapping[str, str], local_models: list[str], *, local_url: str = OLLAMA_URL
) -> dict[str, Any]:
    routes: list[dict[str, Any]] = []
    if env.get("OPENAI_API_KEY"):
        for model, pin, pout in OPENAI_DEFAULTS:
            routes.append(
                {
                    "name": model,
                    "provider": "openai",
                    "model": model,
                    "api_key": "${OPENAI_API_KEY}",
                    "location": "external",
                    "licence": "proprietary",
                    "openness": "closed",
                    "price": {"input_per_mtok": pin, "output_per_mtok": pout},
                    "embeddings": False,
                }
            )
    if env.get("ANTHROPIC_API_KEY"):
        for model, pin, pout in ANTHROPIC_DEFAULTS:
            routes.append(
                {
                    "name": model,
                    "provider": "anthropic",
                    "model": model,
                    "api_key": "${ANTHROPIC_API_KEY}",
                    "location": "external",
                    "licence": "proprietary",
                    "openness": "closed",
                    "price": {"input_per_mtok": pin, "output_per_mtok": pout},
                }
            )
    for model in local_models:
        routes.append(
            {
                "name": f"local/{model}",
                "provider": "openai_compat",
                "base_url": local_url,
                "model": model,
                "location": "on_prem",
            }
        )
    data: dict[str, Any] = {"routes": routes}
    if routes:
        data["models"] = {"auto": {"routes": [r["name"] for r in routes], "strategy": "least_cost"}}
    if env.get("HYBRIDGATE_ADMIN_KEY"):
        data["server"] = {"admin_key": "${HYBRIDGATE_ADMIN_KEY}"}
    return data


def embedded_defaults(env: Mapping[str, str], *, probe: bool = True) -> GatewayConfig:
    local = probe_openai_compatible(OLLAMA_URL) if probe else []
    return parse_config(default_config_data(env, local), source="<defaults>", env=dict(env))
