"""The console behind a load balancer without sticky sessions: two gateway apps on one
PostgreSQL (and one home, as replicas share its deployment secret), each browser
request free to land on either. Also the sign-in throttle."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_harness import ADMIN_KEY, AsgiHarness, asgi_gateway
from console.console_fixtures import ORIGIN
from hybridgate.testing.services import pg_database


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with pg_database() as dsn:
        yield dsn


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
async def replicas(tmp: Path, dsn: str, n: int = 2) -> AsyncIterator[list[AsgiHarness]]:
    async with AsyncExitStack() as stack:
        out = [
            await stack.enter_async_context(
                asgi_gateway(tmp, store={"kind": "postgres", "dsn": dsn})
            )
            for _ in range(n)
        ]
        yield out


async def test_a_session_opened_on_one_replica_works_on_the_other(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with replicas(tmp_path, pg_dsn) as (a, b):
        browser = Browser([a, b])
        try:
            assert (await browser.sign_in(0, ADMIN_KEY)).status_code == 303
            page = await browser.request(1, "GET", "/console")
            assert page.status_code == 200 and "admin" in page.text
            # the CSRF token one replica renders is the one the other checks
            token = await browser.csrf(0)
            assert token == await browser.csrf(1)
            url = "/console/api/approvals/apr_" + "0" * 24
            body = {"decision": "approve", "approver": "alice", "signature": "AAAA"}
            r = await browser.request(1, "POST", url, json=body, headers={"x-csrf-token": token})
            assert r.status_code == 404, r.text  # past the session and CSRF checks
            r = await browser.request(1, "POST", url, json=body, headers={"x-csrf-token": "x"})
            assert r.status_code == 403
            # signing out on one replica ends the session on both
            r = await browser.request(1, "POST", "/console/logout", data={"csrf": token})
            assert r.status_code == 303
            for replica in (0, 1):
                r = await browser.request(replica, "GET", "/console")
                assert r.status_code == 303 and r.headers["location"] == "/console/login"
        finally:
            await browser.aclose()


async def test_revoking_a_key_on_one_replica_ends_its_sessions_on_every_replica(
    tmp_path: Path, pg_dsn: str
) -> None:
    async with replicas(tmp_path, pg_dsn) as (a, b):
        team_key = a.gw.keys.create("payments")
        team, admin = Browser([a, b]), Browser([a, b])
        try:
            assert (await team.sign_in(1, team_key)).status_code == 303
            assert (await admin.sign_in(0, ADMIN_KEY)).status_code == 303
            assert (await team.request(0, "GET", "/console/api/traffic")).status_code == 200
            a.gw.keys.revoke(team_key.split("-")[1])
            for replica in (0, 1):
                assert (await team.request(replica, "GET", "/console")).status_code == 303
                r = await team.request(replica, "GET", "/console/api/traffic")
                assert r.status_code == 401
            assert (await admin.request(1, "GET", "/console")).status_code == 200
        finally:
            await team.aclose()
            await admin.aclose()


async def test_sign_in_attempts_are_throttled_per_client_address(tmp_path: Path) -> None:
    console = {"signin_burst": 3, "signin_per_minute": 0.001}
    async with asgi_gateway(tmp_path, console=console) as h:
        guesser, other = Browser([h]), Browser([h], address="192.0.2.7")
        try:
            for _ in range(3):
                assert (await guesser.sign_in(0, "hg-guess-guess")).status_code == 401
            r = await guesser.sign_in(0, ADMIN_KEY)  # even the right key: no more tries
            assert r.status_code == 429
            assert "too many sign-in attempts" in r.text and int(r.headers["retry-after"]) >= 1
            assert "hg_console=" not in r.headers.get("set-cookie", "")
            assert (await guesser.request(0, "GET", "/console")).status_code == 303
            # another address has its own attempts
            assert (await other.sign_in(0, ADMIN_KEY)).status_code == 303
            assert (await other.request(0, "GET", "/console")).status_code == 200
        finally:
            await guesser.aclose()
            await other.aclose()
