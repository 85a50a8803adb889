"""The exchange's single owner, its outcome, and errors at one boundary — in-process.

Driven through ``httpx.ASGITransport`` with in-memory providers: what is
checked here is the pipeline and the HTTP layer, not the wire.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from asgi_harness import asgi_gateway, memory_config
from hybridgate.app import create_app
from hybridgate.config import parse_config
from hybridgate.errors import ConfigError, UpstreamError
from hybridgate.providers.registry import ProviderRegistry, default_registry
from hybridgate.testing.memory import MemoryUpstream

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hello there"}]}


async def test_answer_receipt_and_headers_come_from_one_outcome(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 200
        assert r.json()["choices"][0]["message"]["content"] == "hello there"
        rec = h.receipt(r)
        assert rec["outcome"] == "ok" and rec["status"] == 200
        assert rec["route"] == r.headers["x-hybridgate-route"] == "onprem"
        assert rec["location"] == r.headers["x-hybridgate-location"] == "on_prem"
        assert rec["request_id"] == r.headers["x-hybridgate-request-id"]
        assert rec["action"] == r.headers["x-hybridgate-action"]
        assert (rec["tokens_in"], rec["tokens_out"]) == (10, 5)
        # The response commitment covers exactly the bytes the client got.
        assert rec["response_commitment"] == h.gw.ledger.commit(r.content)
        assert h.gw.budgets.outstanding == 0


async def test_stream_commits_every_frame_and_ends_after_the_receipt(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        body = {**CHAT, "stream": True}
        r = await h.client.post("/v1/chat/completions", json=body, headers=h.auth())
        assert r.status_code == 200 and r.text.endswith("data: [DONE]\n\n")
        rec = h.receipt(r)
        assert rec["outcome"] == "ok"
        assert rec["response_commitment"] == h.gw.ledger.commit(r.content)


class _Exploding:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def __call__(self, request: dict[str, Any]) -> str:
        raise self.exc


async def test_a_bug_is_a_json_500_in_the_api_format_with_a_receipt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up = MemoryUpstream(script=_Exploding(RuntimeError("provider bug")))
    async with asgi_gateway(tmp_path, up) as h:
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error"
        assert "provider bug" not in r.text
        rec = h.receipt(r)
        assert rec["outcome"] == "error" and rec["error_code"] == "internal_error"
        assert rec["response_commitment"] == h.gw.ledger.commit(r.content)
        a = await h.client.post(
            "/v1/messages",
            json={
                "model": "auto",
                "max_tokens": 10,
                "messages": [{"role": "user", "content": "x"}],
            },
            headers={"x-api-key": h.key},
        )
        assert a.status_code == 500
        assert a.json() == {
            "type": "error",
            "error": {"type": "api_error", "message": "internal error"},
        }
    assert any("provider bug" in (r.exc_text or "") for r in caplog.records)


async def test_upstream_failure_is_refused_and_the_hold_released(tmp_path: Path) -> None:
    up = MemoryUpstream(script=_Exploding(UpstreamError("down", upstream_status=503)))
    async with asgi_gateway(tmp_path, up) as h:
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 503
        rec = h.receipt(r)
        assert rec["outcome"] == "refused" and rec["error_code"] == "no_route_available"
        assert rec["attempts"] == ["onprem", "ext"]
        assert h.gw.budgets.outstanding == 0


async def test_unknown_paths_and_methods_are_json_in_the_path_format(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.get("/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
        r = await h.client.get("/v1/chat/completions")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        assert "POST" in r.headers["allow"]
        r = await h.client.get("/v1/messages")
        assert r.status_code == 405
        assert r.json()["type"] == "error"
        assert r.json()["error"]["type"] == "invalid_request_error"
        r = await h.client.post("/v1/messages", json={})
        assert r.status_code == 401
        assert r.json()["error"]["type"] == "authentication_error"
        assert r.headers["x-hybridgate-request-id"] == "req_unauthenticated"


async def test_cancelled_exchange_is_receipted_and_releases_its_hold(tmp_path: Path) -> None:
    gate = asyncio.Event()
    up = MemoryUpstream(gate=gate)
    async with asgi_gateway(tmp_path, up) as h:
        task = asyncio.create_task(
            h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        )
        for _ in range(500):
            if up.received:
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(200):
            if h.gw.ledger.size() >= 1:
                break
            await asyncio.sleep(0.01)
        assert h.gw.ledger.size() == 1
        rid = h.gw.store.query("SELECT receipt_id FROM usage_log")[0][0]
        signed = h.gw.ledger.get_receipt(rid)
        assert signed is not None
        assert signed["receipt"]["outcome"] == "client_disconnected"
        assert signed["receipt"]["status"] == 499
        assert h.gw.budgets.outstanding == 0


def test_registry_builds_registered_kinds_and_names_unknown_ones(tmp_path: Path) -> None:
    raw = memory_config(tmp_path)
    with pytest.raises(ConfigError, match=r"route ext: unknown provider 'memory' \(known: "):
        create_app(parse_config(raw))
    empty = ProviderRegistry()
    with pytest.raises(ConfigError, match="known: \\)"):
        create_app(parse_config(raw), providers=empty)
    assert "memory" not in default_registry().kinds()  # each registry is its own
    up = MemoryUpstream()
    app = create_app(parse_config(raw), providers=default_registry().register("memory", up.factory))
    assert sorted(app.state.gateway.providers) == ["ext", "onprem"]


async def test_error_messages_never_echo_the_path(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.get("/v1/%3Cscript%3Ealert(1)%3C%2Fscript%3E/x")
        assert r.status_code == 404 and "script" not in r.text
        r = await h.client.request("BREW", "/v1/chat/completions")
        assert r.status_code == 405 and "BREW" not in r.text
