"""The console's security properties, over plain HTTP: sessions, cookies, CSRF, CSP, scopes.

In-process through ``httpx.ASGITransport``: each client is one browser with
its own cookie jar; the browser tests (test_console_browser.py) keep sockets.
"""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path
from typing import Any

import httpx

from asgi_harness import ADMIN_KEY
from console.console_fixtures import ORIGIN, AsgiConsoleEnv, asgi_console_gateway


async def _login(env: AsgiConsoleEnv, key: str) -> httpx.AsyncClient:
    c = await env.browser(origin=ORIGIN)
    r = await c.get("/console/login")
    m = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert m is not None
    r = await c.post("/console/login", data={"csrf": m.group(1), "key": key})
    assert r.status_code == 303, r.text
    return c


async def _csrf(c: httpx.AsyncClient) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', (await c.get("/console")).text)
    assert m is not None
    return m.group(1)


async def _login_token(c: httpx.AsyncClient) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', (await c.get("/console/login")).text)
    assert m is not None
    return m.group(1)


async def test_pages_need_a_session_and_carry_strict_headers(tmp_path: Path) -> None:
    async with asgi_console_gateway(tmp_path) as env:
        c = await env.browser()
        r = await c.get("/console")
        assert r.status_code == 303 and r.headers["location"] == "/console/login"
        assert (await c.get("/console/api/log-key")).status_code == 401
        r = await c.get("/console/login")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        # no inline script anywhere: only external files and inert JSON blocks
        admin = await _login(env, ADMIN_KEY)
        for path in ("/console", "/console/approvals", "/console/proposals", "/console/login"):
            html = (await admin.get(path)).text
            for tag in re.findall(r"<script[^>]*>", html):
                assert 'src="/console/static/' in tag or 'type="application/json"' in tag, tag
            assert " on" + "click=" not in html and "style=" not in html
        assert (
            (await admin.get("/console/static/console.js"))
            .headers["content-type"]
            .startswith("text/javascript")
        )
        assert (await admin.get("/console/static/../app.py")).status_code == 404


async def test_session_cookie_flags_and_login_refusals(tmp_path: Path) -> None:
    async with asgi_console_gateway(tmp_path) as env:
        c = await env.browser(origin=ORIGIN)
        token = await _login_token(c)
        # wrong key: 401, no session
        r = await c.post("/console/login", data={"csrf": token, "key": "hg-nope-nope"})
        assert r.status_code == 401 and "hg_console=" not in r.headers.get("set-cookie", "")
        # a login form from another origin (login CSRF) is refused even with the right key
        token = await _login_token(c)
        r = await c.post(
            "/console/login",
            data={"csrf": token, "key": ADMIN_KEY},
            headers={"origin": "http://evil.example"},
        )
        assert r.status_code == 403
        r = await c.post("/console/login", data={"csrf": "forged", "key": ADMIN_KEY})
        assert r.status_code == 403
        token = await _login_token(c)
        r = await c.post("/console/login", data={"csrf": token, "key": ADMIN_KEY})
        assert r.status_code == 303
        cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("hg_console="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert ADMIN_KEY not in cookie
        # sign out ends the session
        csrf = await _csrf(c)
        assert (await c.post("/console/logout", data={"csrf": csrf})).status_code == 303
        assert (await c.get("/console")).status_code == 303


async def test_state_changes_need_csrf_same_origin_and_admin(tmp_path: Path) -> None:
    async with asgi_console_gateway(tmp_path) as env:
        admin = await _login(env, ADMIN_KEY)
        csrf = await _csrf(admin)
        url = "/console/api/approvals/apr_" + "0" * 24
        body = {"decision": "approve", "approver": "alice", "signature": "AAAA"}
        r = await admin.post(url, json=body)
        assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
        r = await admin.post(url, json=body, headers={"x-csrf-token": "wrong"})
        assert r.status_code == 403
        evil = {"x-csrf-token": csrf, "origin": "http://evil.example"}
        r = await admin.post(url, json=body, headers=evil)
        assert r.status_code == 403
        cross = {"x-csrf-token": csrf, "sec-fetch-site": "cross-site"}
        r = await admin.post(url, json=body, headers=cross)
        assert r.status_code == 403
        # with the token it reaches the action service (which knows no such approval)
        r = await admin.post(url, json=body, headers={"x-csrf-token": csrf})
        assert r.status_code == 404, r.text
        # team sessions are read-only
        team = await _login(env, env.team_key)
        r = await team.post(url, json=body, headers={"x-csrf-token": await _csrf(team)})
        assert r.status_code == 403 and "read-only" in r.text


async def test_team_session_sees_only_its_own_traffic_and_receipts(tmp_path: Path) -> None:
    async with asgi_console_gateway(tmp_path) as env:
        h = env.h
        other = h.gw.keys.create("research")
        chat = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        r = await h.client.post("/v1/chat/completions", json=chat, headers=h.auth(other))
        assert r.status_code == 200
        out = await h.client.post("/v1/chat/completions", json=chat, headers=h.auth(env.team_key))
        assert out.status_code == 200
        mine = out.headers["x-hybridgate-receipt"]
        team = await _login(env, env.team_key)
        html = (await team.get("/console")).text
        assert "read-only" in html and mine in html
        assert "research" not in html and "governance" not in html
        assert (await team.get(f"/console/api/receipts/{mine}")).status_code == 200
        admin_html = (await (await _login(env, ADMIN_KEY)).get("/console")).text
        other_rid = re.findall(r'data-receipt="([^"]+)"', admin_html)
        assert len(other_rid) == 2
        theirs = next(r for r in other_rid if r != mine)
        assert (await team.get(f"/console/api/receipts/{theirs}")).status_code == 404
        assert "Approve" not in (await team.get("/console/approvals")).text
        live = (await team.get("/console/api/traffic")).json()["data"]
        assert [r["receipt_id"] for r in live] == [mine]
        # revoking the key ends its console sessions
        h.gw.keys.revoke(env.team_key.split("-")[1])
        assert (await team.get("/console")).status_code == 303
        assert (await team.get("/console/api/traffic")).status_code == 401


async def test_agent_controlled_values_are_escaped(tmp_path: Path) -> None:
    async with asgi_console_gateway(tmp_path) as env:
        evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
        params = {"amount": 5000, "to": evil, evil: "x"}
        agent = await env.browser(authorization=f"Bearer {env.team_key}")
        fut = asyncio.ensure_future(
            agent.post(
                "/v1/actions/authorize",
                json={"agent_id": "agent-7", "action": "EXECUTE_TRANSACTION", "params": params},
                timeout=90,
            )
        )
        admin = await _login(env, ADMIN_KEY)
        held: list[dict[str, Any]] = []
        for _ in range(500):
            held = env.h.gw.actions.list_approvals("pending", 10)
            if held:
                break
            await asyncio.sleep(0.01)
        assert held
        html = (await admin.get("/console/approvals")).text
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # the <pre> shows it, inert
        page = (await admin.get("/console/receipts/%3Cscript%3Ealert(1)%3C%2Fscript%3E")).text
        assert "<script>alert(1)" not in page
        # reject it with bob's signature so the agent gets its answer
        from hybridgate.actions import approval_payload

        h = held[0]
        sig = base64.b64encode(
            env.bob.sign(
                approval_payload(
                    approval_id=h["approval_id"],
                    decision="reject",
                    action=h["action"],
                    params_hash=h["params_hash"],
                    agent_id=h["agent_id"],
                )
            )
        ).decode()
        r = await admin.post(
            f"/console/api/approvals/{h['approval_id']}",
            json={"decision": "reject", "approver": "bob", "signature": sig},
            headers={"x-csrf-token": await _csrf(admin)},
        )
        assert r.status_code == 200, r.text
        assert (await asyncio.wait_for(fut, 30)).json()["verdict"] == "DENY"
