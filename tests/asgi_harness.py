"""The gateway app driven in-process through ``httpx.ASGITransport``, no sockets.

Routes use the in-memory provider (``hybridgate.testing.memory``), registered
under the ``memory`` kind through the app's provider registry. Use this for
pipeline and API behaviour; keep ``gateway_harness`` (real loopback servers)
for SDKs, stream cut-offs and kill/restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hybridgate.app import create_app
from hybridgate.config import parse_config
from hybridgate.pipeline import Pipeline
from hybridgate.providers.registry import default_registry
from hybridgate.runtime import Gateway
from hybridgate.testing.memory import MemoryUpstream

ADMIN_KEY = "test-admin-key-0123456789"


@dataclass
class AsgiHarness:
    app: Starlette
    gw: Gateway
    pipeline: Pipeline
    client: httpx.AsyncClient
    upstream: MemoryUpstream
    key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.key}"}

    def receipt(self, response: httpx.Response) -> dict[str, Any]:
        signed = self.gw.ledger.get_receipt(response.headers["x-hybridgate-receipt"])
        assert signed is not None, "no receipt for this exchange"
        receipt: dict[str, Any] = signed["receipt"]
        return receipt


def memory_config(tmp: Path, **overrides: Any) -> dict[str, Any]:
    def route(name: str, location: str, price: float) -> dict[str, Any]:
        return {
            "name": name,
            "provider": "memory",
            "model": name + "-model",
            "location": location,
            "price": {"input_per_mtok": price, "output_per_mtok": price * 4},
            "embeddings": True,
        }

    cfg: dict[str, Any] = {
        "home": str(tmp / "home"),
        "server": {"admin_key": ADMIN_KEY, "max_body_bytes": 256 * 1024},
        "ledger": {"checkpoint_interval_s": 3600, "commit_interval_ms": 0},
        "routes": [route("ext", "external", 2.5), route("onprem", "on_prem", 0.1)],
        "models": {
            "auto": {"routes": ["onprem", "ext"], "strategy": "least_cost"},
            "any": {"routes": ["ext", "onprem"], "strategy": "fallback"},
        },
    }
    cfg.update(overrides)
    return cfg


def _memory_app(tmp: Path, up: MemoryUpstream, overrides: dict[str, Any]) -> Starlette:
    config = parse_config(memory_config(tmp, **overrides))
    return create_app(config, providers=default_registry().register("memory", up.factory))


@asynccontextmanager
async def asgi_gateway(
    tmp: Path, upstream: MemoryUpstream | None = None, **overrides: Any
) -> AsyncIterator[AsgiHarness]:
    up = upstream or MemoryUpstream()
    app = _memory_app(tmp, up, overrides)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            gw: Gateway = app.state.gateway
            key = gw.keys.create("default")
            yield AsgiHarness(app, gw, app.state.pipeline, client, up, key)


@dataclass
class SyncAsgiHarness:
    """:class:`AsgiHarness` for synchronous tests: ``client`` is a blocking client."""

    app: Starlette
    gw: Gateway
    client: TestClient
    upstream: MemoryUpstream
    key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"authorization": f"Bearer {key or self.key}"}


@contextmanager
def asgi_gateway_sync(
    tmp: Path, upstream: MemoryUpstream | None = None, **overrides: Any
) -> Iterator[SyncAsgiHarness]:
    """The same in-process app for synchronous tests: Starlette's ``TestClient`` runs
    the lifespan and every request on one event loop in a helper thread (still no
    sockets). A bug answers 500 as it would on the wire instead of raising here."""
    up = upstream or MemoryUpstream()
    app = _memory_app(tmp, up, overrides)
    with TestClient(app, base_url="http://gateway", raise_server_exceptions=False) as client:
        gw: Gateway = app.state.gateway
        yield SyncAsgiHarness(app, gw, client, up, gw.keys.create("default"))
