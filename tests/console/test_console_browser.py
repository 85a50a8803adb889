"""The console in headless Chromium (Debian's ``chromium``, driven by Playwright).

Sign in, see the traffic the test generated, verify a receipt in the page
(WebCrypto Ed25519 + SHA-256 against the signed checkpoint), watch a tampered
receipt get rejected, approve a held action with the approver's own key loaded
into the browser and see the agent's ``/v1/gate`` call succeed, and sign a
policy proposal in the page. Set ``HYBRIDGATE_SCREENSHOTS=DIR`` to save the
screenshots used in docs/console.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from console.console_fixtures import ConsoleEnv, console_gateway
from gateway_harness import ADMIN_KEY

CHROMIUM = os.environ.get("HYBRIDGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

playwright_api = pytest.importorskip("playwright.sync_api")
pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} missing: run .ci/test-setup (apt-get install chromium)",
)
SHOTS = os.environ.get("HYBRIDGATE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[ConsoleEnv]:
    with console_gateway(tmp_path) as e:
        yield e


@pytest.fixture
def api(env: ConsoleEnv) -> Iterator[Callable[..., httpx.Client]]:
    """``api(key, timeout=30)``: an HTTP client on the gateway with that key, closed
    after the test (an unclosed one leaves its pooled socket to the garbage collector)."""
    with contextlib.ExitStack() as stack:

        def client(key: str, timeout: float = 30.0) -> httpx.Client:
            headers = {"authorization": f"Bearer {key}"}
            c = httpx.Client(base_url=env.h.url, headers=headers, timeout=timeout)
            return stack.enter_context(c)

        yield client


def _page(browser: Any) -> Any:
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    return page


def _sign_in(page: Any, env: ConsoleEnv, key: str = ADMIN_KEY) -> None:
    page.goto(env.h.url + "/console")
    assert page.url.endswith("/console/login")
    page.fill("#key", key)
    page.click("#signin")
    page.wait_for_url("**/console")


def _shot(page: Any, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(Path(SHOTS) / f"console-{name}.png"))


def _traffic(env: ConsoleEnv) -> dict[str, str]:
    c = env.h.openai(env.team_key)
    rids = {}
    for name, model, text in (
        ("masked", "auto", "please e-mail jane.doe@example.com about the invoice"),
        ("plain", "frontier", "what is the capital of France?"),
    ):
        out = c.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}]
        )
        rids[name] = out.headers["x-hybridgate-receipt"]
    return rids


def test_sign_in_see_traffic_and_verify_a_receipt_in_the_page(
    browser: Any, env: ConsoleEnv
) -> None:
    rids = _traffic(env)
    page = _page(browser)
    _sign_in(page, env)
    masked = page.locator(f'tr.traffic[data-receipt="{rids["masked"]}"]')
    row = masked.inner_text()
    assert "llama-onprem" in row and "on_prem" in row and "contact" in row and "redact" in row
    assert "\t1\t" in row  # one value masked
    plain = page.locator(f'tr.traffic[data-receipt="{rids["plain"]}"]').inner_text()
    assert "gpt-4o" in plain and "external" in plain
    assert page.locator("svg.chart rect.bar-cost").count() >= 1
    assert "team payments" in page.locator("#budgets").inner_text()
    assert "closed" in page.locator("#routes").inner_text()
    _shot(page, "overview")

    # live: a new request shows up without reloading the page
    out = env.h.openai(env.team_key).chat.completions.with_raw_response.create(
        model="frontier", messages=[{"role": "user", "content": "and one more"}]
    )
    fresh = out.headers["x-hybridgate-receipt"]
    page.wait_for_selector(f'tr.traffic[data-receipt="{fresh}"]', timeout=20_000)
    assert page.locator("tr.traffic").count() == 3

    page.locator(f'tr.traffic[data-receipt="{rids["masked"]}"] a').click()
    page.wait_for_selector("#verdict[data-verdict=valid], #verdict[data-verdict=invalid]")
    assert page.get_attribute("#verdict", "data-verdict") == "valid", page.inner_text("main")
    checks = page.inner_text("#checks")
    assert "Ed25519 signature" in checks and "inclusion proof" in checks
    assert '"route": "llama-onprem"' in page.inner_text("#receipt-body")
    _shot(page, "receipt")
    assert page.errors == []


@pytest.mark.parametrize(
    ("field", "expect"),
    [
        ("route", "signature does not verify"),
        ("proof", "inclusion"),
        ("checkpoint", "checkpoint"),
    ],
)
def test_a_tampered_receipt_is_rejected_by_the_page(
    browser: Any, env: ConsoleEnv, field: str, expect: str
) -> None:
    rid = _traffic(env)["plain"]
    env.h.openai(env.team_key).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "one more for a longer proof"}]
    )
    page = _page(browser)
    _sign_in(page, env)

    def tamper(route: Any) -> None:
        resp = route.fetch()
        bundle = resp.json()
        if field == "route":
            bundle["receipt"]["route"] = "llama-onprem"  # claim it stayed on-prem
        elif field == "proof":
            p = bundle["inclusion_proof"]
            p[0] = p[0][:-4] + ("AAA=" if not p[0].endswith("AAA=") else "BBB=")
        else:
            lines = bundle["checkpoint"].split("\n")
            lines[1] = str(int(lines[1]) + 1)
            bundle["checkpoint"] = "\n".join(lines)
        route.fulfill(response=resp, body=json.dumps(bundle))

    page.route("**/console/api/receipts/*", tamper)
    page.goto(f"{env.h.url}/console/receipts/{rid}")
    page.wait_for_selector("#verdict[data-verdict=valid], #verdict[data-verdict=invalid]")
    assert page.get_attribute("#verdict", "data-verdict") == "invalid"
    assert expect in page.inner_text("#verdict").lower() or expect in page.inner_text("#checks"), (
        page.inner_text("main")
    )
    if field == "route":
        _shot(page, "receipt-rejected")


def test_a_pinned_key_that_did_not_sign_rejects_the_receipt(browser: Any, env: ConsoleEnv) -> None:
    rid = _traffic(env)["plain"]
    page = _page(browser)
    _sign_in(page, env)
    page.goto(f"{env.h.url}/console/receipts/{rid}")
    page.wait_for_selector("#verdict[data-verdict=valid]")
    page.fill("#pin-key", env.alice.verifier().to_string())  # a valid key, not the log's
    page.click("#pin")
    page.wait_for_selector("#verdict[data-verdict=invalid]")
    assert "not" in page.inner_text("#verdict")
    page.click("#unpin")
    page.wait_for_selector("#verdict[data-verdict=valid]")


def test_approve_a_held_action_in_the_browser_and_the_gate_call_succeeds(
    browser: Any, env: ConsoleEnv, api: Callable[..., httpx.Client]
) -> None:
    params = {"amount": 25_000, "currency": "EUR", "to": "DE89370400440532013000"}
    agent = api(env.team_key, timeout=90)
    body = {"agent_id": "agent-7", "action": "EXECUTE_TRANSACTION", "params": params}
    with ThreadPoolExecutor(1) as pool:
        fut = pool.submit(agent.post, "/v1/actions/authorize", json=body)
        for _ in range(500):
            if env.h.gw.actions.list_approvals("pending", 10):
                break
            time.sleep(0.01)

        page = _page(browser)
        _sign_in(page, env)
        page.goto(env.h.url + "/console/approvals")
        assert "EXECUTE_TRANSACTION" in page.inner_text("article.held")
        assert "DE89370400440532013000" in page.inner_text("article.held pre")
        # approving without a key loaded does nothing
        page.click("button.approve")
        page.wait_for_selector("#action-result[data-state=error]")
        assert not fut.done()
        # alice's key file, the one `approvals keygen` writes, loaded into WebCrypto
        page.fill("#key-text", env.alice.to_private_string())
        page.click("#key-load")
        page.wait_for_selector("#key-status[data-loaded='1']")
        assert env.alice.key_id in page.inner_text("#key-status")
        assert page.inner_text("#key-public") == env.alice.verifier().to_string()
        _shot(page, "approvals")
        page.click("button.approve")
        page.wait_for_selector("#action-result[data-state=ok]")
        assert "approved" in page.inner_text("#action-result")
        out = fut.result(timeout=30).json()
    assert out["verdict"] == "ALLOW", out
    receipt = out["receipt"]
    assert receipt["receipt"]["approver"] == "alice"
    assert receipt["receipt"]["approver_key_id"] == env.alice.key_id
    # the agent's gate call now succeeds, once
    gate = agent.post("/v1/gate", json={**body, "receipt": receipt})
    assert gate.status_code == 200 and gate.json()["verdict"] == "ALLOW", gate.text
    assert agent.post("/v1/gate", json={**body, "receipt": receipt}).status_code == 409
    # the key survives a reload: it lives in this browser's IndexedDB, non-extractable
    page.reload()
    page.wait_for_selector("#key-status[data-loaded='1']")
    assert page.errors == []


def test_sign_and_apply_a_policy_proposal_in_the_browser(
    browser: Any, env: ConsoleEnv, api: Callable[..., httpx.Client]
) -> None:
    from governance.gov_fixtures import proposal_sig

    admin = api(ADMIN_KEY)
    policy = env.h.gw.policy.current[0].model_dump(mode="json")
    policy["classes"]["person"] = "allow"
    p = admin.post("/v1/admin/policy/proposals", json={"policy": policy, "note": "names may leave"})
    assert p.status_code == 201
    prop = p.json()

    page = _page(browser)
    _sign_in(page, env)
    page.goto(env.h.url + "/console/proposals")
    assert prop["proposal_id"] in page.inner_text("article.proposal")
    assert "person: allow" in page.inner_text("pre.diff")
    page.fill("#key-text", env.alice.to_private_string())
    page.click("#key-load")
    page.wait_for_selector("#key-status[data-loaded='1']")
    page.click("button.sign")
    page.wait_for_selector("#action-result[data-state=ok]")
    assert "1 of 2" in page.inner_text("#action-result")
    # the gateway counted the browser's signature exactly like a CLI one
    got = admin.get(f"/v1/admin/policy/proposals/{prop['proposal_id']}").json()
    assert got["valid_signers"] == ["alice"]
    # one signature is not enough for a loosening: the page shows the refusal
    page.click("button.apply")
    page.wait_for_selector("#action-result[data-state=error]")
    assert "loosens" in page.inner_text("#action-result")
    # bob signs from the CLI side; then the browser applies
    r = admin.post(
        f"/v1/admin/policy/proposals/{prop['proposal_id']}/signatures",
        json={"approver": "bob", "signature": proposal_sig(env.bob, prop)},
    )
    assert r.status_code == 200
    page.reload()
    _shot(page, "proposals")
    page.click("button.apply")
    page.wait_for_selector("#action-result[data-state=ok]")
    assert page.inner_text("#action-result").startswith("Applied (threshold)")
    assert env.h.gw.policy.current[1] == prop["policy_hash"]
    page.reload()
    history = page.inner_text("#policy-history")
    assert prop["policy_hash"][:16] in history and "alice, bob" in history
    assert page.errors == []


def test_team_sign_in_is_read_only(browser: Any, env: ConsoleEnv) -> None:
    _traffic(env)
    page = _page(browser)
    _sign_in(page, env, env.team_key)
    assert "read-only" in page.inner_text("nav")
    assert page.locator("tr.traffic").count() == 2
    page.goto(env.h.url + "/console/approvals")
    assert page.locator("#key-panel").count() == 0
    assert page.locator("button.approve").count() == 0
    page.click("#logout")
    page.wait_for_url("**/console/login")
    page.goto(env.h.url + "/console")
    assert page.url.endswith("/console/login")


def test_the_page_hashes_tricky_json_exactly_like_the_gateway(
    browser: Any, env: ConsoleEnv, api: Callable[..., httpx.Client]
) -> None:
    """RFC 8785 in the page and on the server agree on floats, escapes and key order by
    UTF-16 code units (an astral character sorts before U+FB01 there, after it by code
    point): the page signs only when its hash of the policy equals the gateway's."""
    admin = api(ADMIN_KEY)
    policy = env.h.gw.policy.current[0].model_dump(mode="json")
    policy["teams"] = {
        "\U0001f600": {"classes": {"person": "block"}},
        "\ufb01": {"classes": {"person": "block"}},
        'q"\\\u2028\u00e9': {"classes": {"person": "block"}},
    }
    policy["actions"] = [
        {
            "name": "fractions",
            "action": "PAY_\u20ac",
            "effect": "deny",
            "when": [
                {"param": "amount", "op": "gt", "value": 0.1},
                {"param": "rate", "op": "lt", "value": 1e-7},
                {"param": "big", "op": "gte", "value": 123456.789},
                {"param": "huge", "op": "lte", "value": 1e21},
                {"param": "int", "op": "eq", "value": 9007199254740991},
            ],
        }
    ]
    r = admin.post("/v1/admin/policy/proposals", json={"policy": policy})
    assert r.status_code == 201, r.text
    prop = r.json()
    page = _page(browser)
    _sign_in(page, env)
    page.goto(env.h.url + "/console/proposals")
    page.fill("#key-text", env.bob.to_private_string())
    page.click("#key-load")
    page.wait_for_selector("#key-status[data-loaded='1']")
    page.click("button.sign")
    page.wait_for_selector("#action-result:not([data-state=busy])")
    assert page.get_attribute("#action-result", "data-state") == "ok", page.inner_text(
        "#action-result"
    )
    got = admin.get(f"/v1/admin/policy/proposals/{prop['proposal_id']}").json()
    assert got["valid_signers"] == ["bob"]
