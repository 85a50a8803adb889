"""Two or more gateway apps on one PostgreSQL (and one home, as replicas share its
deployment secret) behind a load balancer without sticky sessions, and browsers whose
requests the test sends to either replica."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from asgi_harness import AsgiHarness, asgi_gateway
from console.console_fixtures import ORIGIN


class Balancer(httpx.AsyncBaseTransport):
    """A load balancer without sticky sessions: each request goes to replica ``to``."""

    def __init__(self, replicas: list[AsgiHarness], client: tuple[str, int]) -> None:
        self.replicas = [httpx.ASGITransport(app=r.app, client=client) for r in replicas]
        self.to = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.replicas[self.to].handle_async_request(request)


class Browser:
    """One browser (one cookie jar) whose requests the test sends to either replica."""

    def __init__(self, replicas: list[AsgiHarness], address: str = "127.0.0.1") -> None:
        self.lb = Balancer(replicas, (address, 50000))
        self.client = httpx.AsyncClient(transport=self.lb, base_url=ORIGIN)
        self.client.headers["origin"] = ORIGIN

    async def request(self, replica: int, method: str, url: str, **kw: Any) -> httpx.Response:
        self.lb.to = replica
        return await self.client.request(method, url, **kw)

    async def sign_in(self, replica: int, key: str) -> httpx.Response:
        page = (await self.request(replica, "GET", "/console/login")).text
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        assert m is not None
        return await self.request(
            replica, "POST", "/console/login", data={"csrf": m.group(1), "key": key}
        )

    async def csrf(self, replica: int) -> str:
        page = (await self.request(replica, "GET", "/console")).text
        m = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert m is not None, page[:300]
        return m.group(1)

    async def aclose(self) -> None:
        await self.client.aclose()


@asynccontextmanager
async def replicas(
    tmp: Path, dsn: str, n: int = 2, *, store: dict[str, Any] | None = None, **overrides: Any
) -> AsyncIterator[list[AsgiHarness]]:
    """``n`` apps on the database ``dsn``; ``store`` adds to the store's settings
    (``redis_url``), ``overrides`` to the rest of the config (``console``)."""
    cfg = {"kind": "postgres", "dsn": dsn, **(store or {})}
    async with AsyncExitStack() as stack:
        out = [
            await stack.enter_async_context(asgi_gateway(tmp, store=cfg, **overrides))
            for _ in range(n)
        ]
        yield out
