"""Crash and resource faults a network-facing gateway must not have (issue: faults).

In-process through ``httpx.ASGITransport`` with in-memory providers; each test
is the regression test for one fault.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.types import Message

from asgi_harness import ADMIN_KEY, AsgiHarness, asgi_gateway
from hybridgate.errors import UpstreamError
from hybridgate.keys import MAX_KEY_CHARS
from hybridgate.providers.base import Usage
from hybridgate.routing.breaker import RouteHealth
from hybridgate.testing.memory import MemoryUpstream

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hello"}]}
ANTHROPIC = {"model": "auto", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
HUGE_INT = "1" + "0" * 5000
DEEP = "[" * 5000 + "]" * 5000


def _endpoints(h: AsgiHarness) -> list[tuple[str, dict[str, str], str]]:
    """Every endpoint that takes a JSON body: (path, headers, error format)."""
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    return [
        ("/v1/chat/completions", h.auth(), "openai"),
        ("/v1/embeddings", h.auth(), "openai"),
        ("/v1/messages", {"x-api-key": h.key}, "anthropic"),
        ("/v1/actions/authorize", h.auth(), "openai"),
        ("/v1/gate", {}, "openai"),  # unauthenticated on purpose
        ("/v1/admin/keys", admin, "openai"),
        ("/v1/admin/policy/reload", admin, "openai"),
        ("/v1/admin/approvers", admin, "openai"),
    ]


def _assert_400(r: httpx.Response, fmt: str) -> None:
    assert r.status_code == 400, r.text
    body = r.json()
    if fmt == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    else:
        assert body["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    "raw",
    [
        '{"model": "auto", "x": ' + HUGE_INT + "}",
        '{"model": "auto", "metadata": {"card": ' + HUGE_INT + "}}",
        '{"model": "auto", "temperature": 1e400}',
        '{"model": "auto", "x": ' + DEEP + "}",
        '{"model": "auto", "x": ' + "[" * 150 + "]" * 150 + "}",
    ],
    ids=["huge-int", "huge-int-nested", "float-overflow", "deep-5000", "deep-150"],
)
async def test_numbers_of_any_size_and_any_nesting_are_400_on_every_endpoint(
    tmp_path: Path, raw: str
) -> None:
    async with asgi_gateway(tmp_path) as h:
        for path, headers, fmt in _endpoints(h):
            r = await h.client.post(
                path, content=raw.encode(), headers={**headers, "content-type": "application/json"}
            )
            _assert_400(r, fmt)


async def test_deep_tool_arguments_are_400_not_a_recursion_error(tmp_path: Path) -> None:
    deep_args = '{"a": ' + DEEP + "}"
    body = {
        "model": "auto",
        "messages": [
            {"role": "user", "content": "call it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": deep_args},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
    }
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.post("/v1/chat/completions", json=body, headers=h.auth())
        _assert_400(r, "openai")
        assert "nested" in r.json()["error"]["message"]
        assert not h.upstream.received


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [10**52, 2**31, 10**4000])
async def test_absurd_max_tokens_is_400_not_a_decimal_error(
    tmp_path: Path, name: str, value: int
) -> None:
    async with asgi_gateway(tmp_path) as h:
        raw = json.dumps({**CHAT, name: 1}).replace(": 1}", f": {value}}}")
        r = await h.client.post(
            "/v1/chat/completions",
            content=raw.encode(),
            headers={**h.auth(), "content-type": "application/json"},
        )
        _assert_400(r, "openai")
        a = await h.client.post(
            "/v1/messages", json={**ANTHROPIC, "max_tokens": 10**52}, headers={"x-api-key": h.key}
        )
        assert a.status_code == 400, a.text
        assert not h.upstream.received


async def test_bearer_values_longer_than_any_key_never_reach_the_cache(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        for i in range(50):
            junk = f"hg-{i:04d}-" + "x" * (64 * 1024)
            r = await h.client.get("/v1/models", headers={"authorization": f"Bearer {junk}"})
            assert r.status_code == 401
        assert len(h.gw.keys._cache) == 0
        ok = await h.client.get("/v1/models", headers=h.auth())
        assert ok.status_code == 200
        assert len(h.key) <= MAX_KEY_CHARS


async def test_store_unavailable_sends_nothing_and_readyz_is_not_ready(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        ready = await h.client.get("/readyz")
        assert ready.status_code == 200
        store: Any = h.gw.store
        store.min_free_bytes = 2**62  # as if the disk were full
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
        assert not h.upstream.received
        ready = await h.client.get("/readyz")
        assert ready.status_code == 503 and "free" in ready.json()["reason"]
        store.min_free_bytes = 0
        assert (await h.client.get("/readyz")).status_code == 200
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 200


async def test_a_failed_write_keeps_the_store_unready_until_a_probe_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    import hybridgate.store.writer as sqlite_store

    def disk_full(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async with asgi_gateway(tmp_path) as h:
        store = h.gw.store
        monkeypatch.setattr(sqlite_store, "_probe_write", disk_full)
        with pytest.raises(sqlite3.OperationalError):
            await store.write(disk_full)  # a write fails the way a full disk does
        for _ in range(5):
            r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
            assert r.status_code == 503 and r.json()["error"]["code"] == "store_unavailable"
            assert (await h.client.get("/readyz")).status_code == 503
        assert not h.upstream.received
        monkeypatch.undo()  # space is back: the next probe commits
        for _ in range(300):
            if store.unavailable_reason() is None:
                break
            await asyncio.sleep(0.01)
        assert store.unavailable_reason() is None
        r = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert r.status_code == 200


async def test_client_hanging_up_mid_body_is_receipted_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with asgi_gateway(tmp_path) as h:
        messages: list[Message] = [
            {"type": "http.request", "body": b'{"model": "auto", "mess', "more_body": True},
            {"type": "http.disconnect"},
        ]
        sent: list[Message] = []

        async def receive() -> Message:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"authorization", f"Bearer {h.key}".encode()),
                (b"content-type", b"application/json"),
                (b"content-length", b"5000"),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 4000),
        }
        with caplog.at_level(logging.INFO):
            await h.app(scope, receive, send)
        assert h.gw.ledger.size() == 1
        rid = h.gw.store.query("SELECT receipt_id FROM usage_log")[0][0]
        signed = h.gw.ledger.get_receipt(rid)
        assert signed is not None
        assert signed["receipt"]["outcome"] == "client_disconnected"
        assert signed["receipt"]["status"] == 499
        assert not any(rec.exc_info for rec in caplog.records), [r.message for r in caplog.records]
        assert not h.upstream.received


def test_one_key_cannot_open_a_route_for_everyone() -> None:
    health = RouteHealth(failure_threshold=3, cooldown_s=30)
    for _ in range(3 * 4 - 1):
        health.record_failure("onprem", "attacker")
        assert health.allow("onprem")
    health.record_failure("onprem", "attacker")  # a long run from one key still opens it
    assert not health.allow("onprem")
    two = RouteHealth(failure_threshold=3, cooldown_s=30)
    two.record_failure("r", "a")
    two.record_failure("r", "a")
    two.record_failure("r", "b")  # failures from two keys: the route is broken
    assert not two.allow("r")
    timeouts = RouteHealth(failure_threshold=2, cooldown_s=30)
    timeouts.record_failure("r")
    timeouts.record_failure("r", "a")
    assert not timeouts.allow("r")


async def test_client_caused_5xx_does_not_trip_the_onprem_breaker(tmp_path: Path) -> None:
    def script(request: dict[str, Any]) -> str:
        text = json.dumps(request["messages"])
        if "poison" in text:
            raise UpstreamError("model crashed", upstream_status=500)
        return "fine"

    async with asgi_gateway(tmp_path, MemoryUpstream(script=script)) as h:
        body = {"model": "onprem", "messages": [{"role": "user", "content": "poison"}]}
        for _ in range(6):
            r = await h.client.post("/v1/chat/completions", json=body, headers=h.auth())
            assert r.status_code == 503
        other = h.gw.keys.create("default")
        r = await h.client.post(
            "/v1/chat/completions",
            json={"model": "onprem", "messages": [{"role": "user", "content": "hi"}]},
            headers=h.auth(other),
        )
        assert r.status_code == 200 and r.headers["x-hybridgate-route"] == "onprem"


def _utf8_usage(request: dict[str, Any]) -> Usage:
    """The worst an honest upstream can bill: a token per UTF-8 byte, every output token."""
    text = "".join(str(m.get("content") or "") for m in request.get("messages", []))
    return Usage(len(text.encode("utf-8")), int(request.get("max_tokens") or 0))


@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=st.text(alphabet=st.sampled_from("a😀€語\u0301 "), min_size=50, max_size=400))
def test_200_concurrent_requests_never_overspend_whatever_the_text(
    tmp_path_factory: pytest.TempPathFactory, text: str
) -> None:
    budgets = [{"scope": "team", "name": "race", "usd_per_day": 0.05}]
    up = MemoryUpstream(usage_for=_utf8_usage, latency_s=0.02)

    async def run() -> tuple[list[int], Decimal]:
        tmp = tmp_path_factory.mktemp("race")
        price = {"input_per_mtok": 10, "output_per_mtok": 10}
        routes = [
            {"name": "onprem", "provider": "memory", "model": "m", "location": "on_prem"}
            | {"price": price}
        ]
        async with asgi_gateway(
            tmp, up, budgets=budgets, routes=routes, models={"auto": {"routes": ["onprem"]}}
        ) as h:
            key = h.gw.keys.create("race")
            body = {**CHAT, "max_tokens": 8, "messages": [{"role": "user", "content": text}]}
            rs = await asyncio.gather(
                *(
                    h.client.post("/v1/chat/completions", json=body, headers=h.auth(key))
                    for _ in range(200)
                )
            )
            spent = Decimal(str(h.gw.usage.summary()["cost_usd"]))
            return [r.status_code for r in rs], spent

    codes, spent = asyncio.run(run())
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 1
    assert spent <= Decimal("0.05"), spent


class _BlockingScanner:
    """The real scanner, but every scan waits on ``release`` in whatever thread runs it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.release = threading.Event()
        self.entered = threading.Event()

    def _wait(self, text: Any) -> None:
        if isinstance(text, str) and len(text) < 10_000:
            return  # only the large prompt is held; small requests scan as usual
        self.entered.set()
        self.release.wait(30)

    def scan(self, text: str) -> Any:
        self._wait(text)
        return self.inner.scan(text)

    def analyze(self, text: str) -> Any:
        self._wait(text)
        return self.inner.analyze(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _large_chat(size: int = 200_000) -> dict[str, Any]:
    return {"model": "auto", "messages": [{"role": "user", "content": "word " * (size // 5)}]}


async def test_large_scans_run_off_the_event_loop(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path, server={"max_body_bytes": 1 << 20}) as h:
        blocking = _BlockingScanner(h.pipeline.scanner)
        h.pipeline.scanner = blocking  # type: ignore[assignment]
        task = asyncio.create_task(
            h.client.post("/v1/chat/completions", json=_large_chat(), headers=h.auth())
        )
        await asyncio.to_thread(blocking.entered.wait, 30)
        # The scan is stuck in its thread; the loop still answers (it would hang if not).
        health = await asyncio.wait_for(h.client.get("/healthz"), 30)
        assert health.status_code == 200
        assert not task.done()
        blocking.release.set()
        r = await task
        assert r.status_code == 200


async def test_scan_pool_full_is_503_and_sends_nothing(tmp_path: Path) -> None:
    server = {"max_body_bytes": 1 << 20, "scan_workers": 1, "scan_queue": 0}
    async with asgi_gateway(tmp_path, server=server) as h:
        blocking = _BlockingScanner(h.pipeline.scanner)
        h.pipeline.scanner = blocking  # type: ignore[assignment]
        first = asyncio.create_task(
            h.client.post("/v1/chat/completions", json=_large_chat(), headers=h.auth())
        )
        await asyncio.to_thread(blocking.entered.wait, 30)
        r = await h.client.post("/v1/chat/completions", json=_large_chat(), headers=h.auth())
        assert r.status_code == 503 and r.json()["error"]["code"] == "scanner_busy"
        small = await h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth())
        assert small.status_code == 200  # small bodies scan inline, unaffected
        blocking.release.set()
        assert (await first).status_code == 200
        assert len(h.upstream.received) == 2


async def test_scan_budget_exceeded_is_413_in_each_format(tmp_path: Path) -> None:
    server = {"max_body_bytes": 1 << 20, "max_scan_bytes": 4096}
    async with asgi_gateway(tmp_path, server=server) as h:
        r = await h.client.post("/v1/chat/completions", json=_large_chat(10_000), headers=h.auth())
        assert r.status_code == 413 and r.json()["error"]["code"] == "scan_budget_exceeded"
        assert "scan budget" in r.json()["error"]["message"]
        a = await h.client.post(
            "/v1/messages",
            json={**_large_chat(10_000), "max_tokens": 5},
            headers={"x-api-key": h.key},
        )
        assert a.status_code == 413 and a.json()["error"]["type"] == "request_too_large"
        assert h.receipt(r)["status"] == 413
        assert not h.upstream.received


async def test_scan_past_its_time_budget_is_503_and_sends_nothing(tmp_path: Path) -> None:
    server = {"max_body_bytes": 1 << 20, "scan_timeout_s": 0.2}
    async with asgi_gateway(tmp_path, server=server) as h:
        blocking = _BlockingScanner(h.pipeline.scanner)
        h.pipeline.scanner = blocking  # type: ignore[assignment]
        r = await h.client.post("/v1/chat/completions", json=_large_chat(), headers=h.auth())
        blocking.release.set()
        assert r.status_code == 503 and r.json()["error"]["code"] == "scan_timeout"
        assert not h.upstream.received


async def test_a_trickled_body_is_408_after_the_body_deadline(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path, server={"body_timeout_s": 0.2}) as h:
        first = True
        sent: list[Message] = []

        async def receive() -> Message:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b'{"model":', "more_body": True}
            await asyncio.Event().wait()  # the rest never comes
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/messages",
            "raw_path": b"/v1/messages",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"x-api-key", h.key.encode()), (b"content-type", b"application/json")],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 4000),
        }
        await asyncio.wait_for(h.app(scope, receive, send), 30)
        start = next(m for m in sent if m["type"] == "http.response.start")
        assert start["status"] == 408
        body = json.loads(b"".join(m.get("body", b"") for m in sent if "body" in m))
        assert body["error"]["type"] == "timeout_error"
        assert h.gw.ledger.size() == 1  # refused, and receipted


def test_a_connection_trickling_its_headers_is_closed(tmp_path: Path) -> None:
    from asgi_harness import memory_config
    from hybridgate.app import create_app
    from hybridgate.config import parse_config
    from hybridgate.providers.registry import default_registry
    from hybridgate.server import ServerThread

    up = MemoryUpstream()
    app = create_app(
        parse_config(memory_config(tmp_path)),
        providers=default_registry().register("memory", up.factory),
    )
    with ServerThread(app, header_timeout_s=0.3) as server:
        with socket.create_connection((server.host, server.port), timeout=30) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
            assert sock.recv(1024) == b""  # closed by the server, not by our timeout
        # An ordinary client on a keep-alive connection is unaffected.
        with httpx.Client(base_url=server.base_url) as client:
            for _ in range(3):
                assert client.get("/healthz").status_code == 200
