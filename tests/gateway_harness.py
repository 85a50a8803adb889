"""A real gateway on loopback in front of real loopback upstreams.

Three stand-in upstreams: an external OpenAI-compatible "frontier API", an
external Anthropic API, and an on-prem OpenAI-compatible model. Each records
what it receives; that record is how tests prove what left the gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import anthropic
from openai import AsyncOpenAI, OpenAI

from hybridgate.app import create_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.pipeline import Pipeline
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import AnthropicUpstream, OpenAIUpstream

ADMIN_KEY = "test-admin-key-0123456789"
C = TypeVar("C", OpenAI, anthropic.Anthropic)


@dataclass
class Harness:
    server: ServerThread
    gw: Gateway
    pipeline: Pipeline
    config: GatewayConfig
    external: OpenAIUpstream
    claude: AnthropicUpstream
    onprem: OpenAIUpstream
    key: str
    #: SDK clients handed out, closed with the gateway (their pooled sockets otherwise
    #: linger until the garbage collector finds them, as ResourceWarnings)
    clients: list[Any] = field(default_factory=list)

    def _keep(self, client: C) -> C:
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for c in self.clients:
            c.close()
        self.clients.clear()

    @property
    def url(self) -> str:
        return self.server.base_url

    def openai(self, key: str | None = None, **kw: Any) -> OpenAI:
        client = OpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0, **kw)
        return self._keep(client)

    def async_openai(self, key: str | None = None) -> AsyncOpenAI:
        return AsyncOpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0)

    def anthropic(self, key: str | None = None) -> anthropic.Anthropic:
        client = anthropic.Anthropic(base_url=self.url, api_key=key or self.key, max_retries=0)
        return self._keep(client)

    def new_key(self, team: str = "default", budget_usd: str | None = None) -> str:
        from decimal import Decimal

        return self.gw.keys.create(
            team, budget_usd=None if budget_usd is None else Decimal(budget_usd)
        )

    def external_text(self) -> str:
        """Every string every external upstream received."""
        return self.external.all_text() + self.claude.all_text()


def base_config(
    tmp: Path, ext_url: str, claude_url: str, onprem_url: str, **overrides: Any
) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "home": str(tmp / "home"),
        "server": {"admin_key": ADMIN_KEY, "max_body_bytes": 256 * 1024},
        "ledger": {"checkpoint_interval_s": 3600, "commit_interval_ms": 0},
        "routes": [
            {
                "name": "gpt-4o",
                "provider": "openai",
                "model": "gpt-4o",
                "base_url": ext_url,
                "api_key": "sk-upstream-secret-openai",
                "location": "external",
                "region": "us",
                "licence": "proprietary",
                "openness": "closed",
                "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                "timeout_s": 2,
                "embeddings": True,
            },
            {
                "name": "claude",
                "provider": "anthropic",
                "model": "claude-3-5-sonnet-latest",
                "base_url": claude_url,
                "api_key": "sk-ant-upstream-secret",
                "location": "external",
                "region": "eu",
                "licence": "proprietary",
                "openness": "closed",
                "price": {"input_per_mtok": 3, "output_per_mtok": 15},
                "timeout_s": 2,
            },
            {
                "name": "llama-onprem",
                "provider": "openai_compat",
                "model": "llama-3.1-8b",
                "base_url": onprem_url,
                "location": "on_prem",
                "region": "eu",
                "licence": "llama-community",
                "openness": "open_weights_restricted",
                "price": {"input_per_mtok": 0.1, "output_per_mtok": 0.1},
                "timeout_s": 2,
                "embeddings": True,
            },
        ],
        "models": {
            "auto": {"routes": ["llama-onprem", "gpt-4o"], "strategy": "least_cost"},
            "frontier": {"routes": ["gpt-4o", "claude"], "strategy": "fallback"},
            "any": {"routes": ["gpt-4o", "claude", "llama-onprem"], "strategy": "fallback"},
        },
    }
    cfg.update(overrides)
    return cfg


@contextmanager
def running_gateway(
    tmp: Path,
    *,
    route_prices: dict[str, dict[str, float]] | None = None,
    route_timeout_s: float | None = None,
    **overrides: Any,
) -> Iterator[Harness]:
    """``route_timeout_s``: for tests whose bursts must not time out on a busy machine."""
    with (
        OpenAIUpstream(api_key="sk-upstream-secret-openai") as ext,
        AnthropicUpstream(api_key="sk-ant-upstream-secret") as claude,
        OpenAIUpstream() as onprem,
    ):
        raw = base_config(tmp, ext.base_url, claude.base_url, onprem.base_url, **overrides)
        for route in raw["routes"]:
            if route_prices and route["name"] in route_prices:
                route["price"] = route_prices[route["name"]]
            if route_timeout_s is not None:
                route["timeout_s"] = route_timeout_s
        config = parse_config(raw)
        app = create_app(config)
        gw: Gateway = app.state.gateway
        with ServerThread(app) as server:
            key = gw.keys.create("default")
            h = Harness(server, gw, app.state.pipeline, config, ext, claude, onprem, key)
            try:
                yield h
            finally:
                h.close_clients()
