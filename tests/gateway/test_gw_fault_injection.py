"""Fault injection: scanner, policy, on-prem route and store failures fail closed.

In-process (``asgi_gateway_sync``, in-memory routes ``ext`` external and
``onprem``) except the downed on-prem upstream, which needs a real one to stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from asgi_harness import ADMIN_KEY, SyncAsgiHarness, asgi_gateway_sync
from gateway_harness import running_gateway
from hybridgate.scan.findings import ScanResult

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
#: The in-memory routes' models, plus one with external routes only.
MODELS = {
    "auto": {"routes": ["onprem", "ext"], "strategy": "least_cost"},
    "any": {"routes": ["ext", "onprem"], "strategy": "fallback"},
    "frontier": {"routes": ["ext"], "strategy": "fallback"},
}


def _chat(h: SyncAsgiHarness, model: str, text: str) -> Any:
    body = {"model": model, "messages": [{"role": "user", "content": text}]}
    return h.client.post("/v1/chat/completions", json=body, headers=h.auth())


def _external(h: SyncAsgiHarness) -> list[dict[str, Any]]:
    """What the external route received."""
    return [req for route, req in h.upstream.received if route == "ext"]


class ExplodingScanner:
    def scan(self, text: str) -> ScanResult:
        raise RuntimeError("detector crashed")


def test_scanner_raising_confines_to_on_prem(tmp_path: Path) -> None:
    with asgi_gateway_sync(tmp_path, models=MODELS) as h:
        h.app.state.pipeline.scanner = ExplodingScanner()
        r = _chat(h, "frontier", "card 4111 1111 1111 1111")
        assert r.status_code == 503
        assert "4111" not in r.text
        raw = _chat(h, "any", "card 4111 1111 1111 1111")
        assert raw.status_code == 200
        assert raw.headers["x-hybridgate-route"] == "onprem"
        assert not _external(h)


def test_policy_evaluation_failure_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridgate.pipeline.decision as decision

    def broken(*a: object, **k: object) -> object:
        raise ValueError("policy bug")

    with asgi_gateway_sync(tmp_path) as h:
        monkeypatch.setattr(decision, "evaluate", broken)
        r = _chat(h, "any", "hi")
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "policy_unavailable"
        assert not h.upstream.received


def test_invalid_policy_reload_keeps_last_good(tmp_path: Path) -> None:
    with asgi_gateway_sync(tmp_path) as h:
        before = h.client.get("/v1/admin/policy", headers=ADMIN).json()["policy_hash"]
        bad = h.client.post(
            "/v1/admin/policy/reload",
            headers=ADMIN,
            json={"classes": {"secret": "allow-everything"}},
        )
        assert bad.status_code == 400 and "last good policy" in bad.json()["error"]["message"]
        assert bad.json()["policy_hash"] == before
        # The secret is still blocked.
        assert _chat(h, "any", "key AKIAZ7QX4MN2PL8RT5VW").status_code == 403
        good = h.client.post(
            "/v1/admin/policy/reload", headers=ADMIN, json={"classes": {"contact": "allow"}}
        )
        assert good.status_code == 200 and good.json()["policy_hash"] != before


def test_on_prem_route_down_is_503_never_external(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        h.onprem.stop()
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(
                model="any", messages=[{"role": "user", "content": "SSN 536-22-1234 please"}]
            )
        assert e.value.status_code == 503
        body = e.value.body
        assert isinstance(body, dict) and body["code"] == "no_route_available"
        assert "on-prem" in body["message"] and "536-22-1234" not in body["message"]
        assert not h.external.requests and not h.claude.requests


def test_store_unavailable_fails_closed(tmp_path: Path) -> None:
    with asgi_gateway_sync(tmp_path) as h:
        assert _chat(h, "any", "warm").status_code == 200
        h.gw.store.close()
        r = _chat(h, "any", "SSN 536-22-1234")
        assert r.status_code == 503
        assert "536-22-1234" not in repr(_external(h))
