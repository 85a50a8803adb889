"""The console's security properties, over plain HTTP: sessions, cookies, CSRF, CSP, scopes."""

from __future__ import annotations

import base64
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.console_fixtures import ConsoleEnv, console_gateway
from gateway_harness import ADMIN_KEY


@pytest.fixture
def env(tmp_path: Path):  # type: ignore[no-untyped-def]
    with console_gateway(tmp_path) as e:
        yield e


def _login(env: ConsoleEnv, key: str) -> httpx.Client:
    c = httpx.Client(base_url=env.h.url, headers={"origin": env.h.url})
    r = c.get("/console/login")
    m = re.search(r'name="csrf" value="([^"]+)"', r.text)
    assert m is not None
    r = c.post("/console/login", data={"csrf": m.group(1), "key": key})
    assert r.status_code == 303, r.text
    return c


def _csrf(c: httpx.Client) -> str:
    m = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/console").text)
    assert m is not None
    return m.group(1)


def test_pages_need_a_session_and_carry_strict_headers(env: ConsoleEnv) -> None:
    c = httpx.Client(base_url=env.h.url)
    r = c.get("/console")
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert c.get("/console/api/log-key").status_code == 401
    r = c.get("/console/login")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    # no inline script anywhere: only external files and inert JSON blocks
    admin = _login(env, ADMIN_KEY)
    for path in ("/console", "/console/approvals", "/console/proposals", "/console/login"):
        html = admin.get(path).text
        for tag in re.findall(r"<script[^>]*>", html):
            assert 'src="/console/static/' in tag or 'type="application/json"' in tag, tag
        assert " on" + "click=" not in html and "style=" not in html
    assert (
        admin.get("/console/static/console.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert admin.get("/console/static/../app.py").status_code == 404


def test_session_cookie_flags_and_login_refusals(env: ConsoleEnv) -> None:
    c = httpx.Client(base_url=env.h.url, headers={"origin": env.h.url})
    r = c.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', r.text).group(1)  # type: ignore[union-attr]
    # wrong key: 401, no session
    r = c.post("/console/login", data={"csrf": token, "key": "hg-nope-nope"})
    assert r.status_code == 401 and "hg_console=" not in r.headers.get("set-cookie", "")
    # a login form from another origin (login CSRF) is refused even with the right key
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)  # type: ignore[union-attr]
    r = c.post(
        "/console/login",
        data={"csrf": token, "key": ADMIN_KEY},
        headers={"origin": "http://evil.example"},
    )
    assert r.status_code == 403
    r = c.post("/console/login", data={"csrf": "forged", "key": ADMIN_KEY})
    assert r.status_code == 403
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/console/login").text).group(1)  # type: ignore[union-attr]
    r = c.post("/console/login", data={"csrf": token, "key": ADMIN_KEY})
    assert r.status_code == 303
    cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("hg_console="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert ADMIN_KEY not in cookie
    # sign out ends the session
    csrf = _csrf(c)
    assert c.post("/console/logout", data={"csrf": csrf}).status_code == 303
    assert c.get("/console").status_code == 303


def test_state_changes_need_csrf_same_origin_and_admin(env: ConsoleEnv) -> None:
    admin = _login(env, ADMIN_KEY)
    csrf = _csrf(admin)
    url = "/console/api/approvals/apr_" + "0" * 24
    body = {"decision": "approve", "approver": "alice", "signature": "AAAA"}
    r = admin.post(url, json=body)
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf"
    r = admin.post(url, json=body, headers={"x-csrf-token": "wrong"})
    assert r.status_code == 403
    r = admin.post(url, json=body, headers={"x-csrf-token": csrf, "origin": "http://evil.example"})
    assert r.status_code == 403
    r = admin.post(url, json=body, headers={"x-csrf-token": csrf, "sec-fetch-site": "cross-site"})
    assert r.status_code == 403
    # with the token it reaches the action service (which knows no such approval)
    r = admin.post(url, json=body, headers={"x-csrf-token": csrf})
    assert r.status_code == 404, r.text
    # team sessions are read-only
    team = _login(env, env.team_key)
    r = team.post(url, json=body, headers={"x-csrf-token": _csrf(team)})
    assert r.status_code == 403 and "read-only" in r.text


def test_team_session_sees_only_its_own_traffic_and_receipts(env: ConsoleEnv) -> None:
    other = env.h.new_key("research")
    env.h.openai(other).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    out = env.h.openai(env.team_key).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}]
    )
    mine = out.headers["x-hybridgate-receipt"]
    team = _login(env, env.team_key)
    html = team.get("/console").text
    assert "read-only" in html and mine in html
    assert "research" not in html and "governance" not in html
    assert team.get(f"/console/api/receipts/{mine}").status_code == 200
    admin_html = _login(env, ADMIN_KEY).get("/console").text
    other_rid = re.findall(r'data-receipt="([^"]+)"', admin_html)
    assert len(other_rid) == 2
    theirs = next(r for r in other_rid if r != mine)
    assert team.get(f"/console/api/receipts/{theirs}").status_code == 404
    assert "Approve" not in team.get("/console/approvals").text
    live = team.get("/console/api/traffic").json()["data"]
    assert [r["receipt_id"] for r in live] == [mine]
    # revoking the key ends its console sessions
    env.h.gw.keys.revoke(env.team_key.split("-")[1])
    assert team.get("/console").status_code == 303
    assert team.get("/console/api/traffic").status_code == 401


def test_agent_controlled_values_are_escaped(env: ConsoleEnv) -> None:
    evil = "</script><script>alert(1)</script><img src=x onerror=alert(2)>"
    params = {"amount": 5000, "to": evil, evil: "x"}
    agent = httpx.Client(
        base_url=env.h.url, headers={"authorization": f"Bearer {env.team_key}"}, timeout=90
    )
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(
            agent.post,
            "/v1/actions/authorize",
            json={"agent_id": "agent-7", "action": "EXECUTE_TRANSACTION", "params": params},
        )
        admin = _login(env, ADMIN_KEY)
        held: list[dict[str, Any]] = []
        for _ in range(500):
            held = env.h.gw.actions.list_approvals("pending", 10)
            if held:
                break
            time.sleep(0.01)
        assert held
        html = admin.get("/console/approvals").text
        assert "<script>alert(1)" not in html and "<img src=x" not in html
        assert "&lt;/script&gt;&lt;script&gt;alert(1)" in html  # the <pre> shows it, inert
        page = admin.get("/console/receipts/%3Cscript%3Ealert(1)%3C%2Fscript%3E").text
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
        r = admin.post(
            f"/console/api/approvals/{h['approval_id']}",
            json={"decision": "reject", "approver": "bob", "signature": sig},
            headers={"x-csrf-token": _csrf(admin)},
        )
        assert r.status_code == 200, r.text
        assert fut.result(timeout=30).json()["verdict"] == "DENY"
