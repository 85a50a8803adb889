"""The console behind a load balancer without sticky sessions: two gateway apps on one
PostgreSQL (and one home, as replicas share its deployment secret), each browser
request free to land on either. Also the sign-in throttle."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from asgi_harness import ADMIN_KEY, asgi_gateway
from console.replica_fixtures import Browser, replicas
from hybridgate.testing.services import pg_database


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with pg_database() as dsn:
        yield dsn


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
