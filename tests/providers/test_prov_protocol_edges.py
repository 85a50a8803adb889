"""Hostile or broken upstream bytes: a canned-response server in the test's own loop."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers.anthropic import AnthropicProvider
from hybridgate.providers.openai_compat import OpenAICompatProvider

REQ: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}


class Canned:
    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.content_type = "text/event-stream"


@pytest.fixture
async def canned() -> AsyncIterator[tuple[Canned, str]]:
    state = Canned()

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=state.status, headers={"content-type": state.content_type})
        await resp.prepare(request)
        await resp.write(state.body)
        await resp.write_eof()  # a clean end of the HTTP body
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    app.router.add_post("/v1/messages", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield state, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _openai(base: str) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        RouteConfig(
            name="o", provider="openai_compat", model="m", base_url=base + "/v1", location="on_prem"
        )
    )


def _anthropic(base: str) -> AnthropicProvider:
    return AnthropicProvider(
        RouteConfig(name="a", provider="anthropic", model="m", base_url=base, location="external")
    )


def _chunk(content: str | None, finish: str | None = None) -> bytes:
    import json

    delta = {} if content is None else {"content": content}
    c = {
        "id": "x",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return json.dumps(c).encode()


async def _drain(p: Any) -> list[dict[str, Any]]:
    out = []
    try:
        async for ch in p.chat_stream(REQ):
            out.append(ch)
    finally:
        await p.aclose()
    return out


async def test_clean_http_end_without_done_or_finish_raises(canned: tuple[Canned, str]) -> None:
    state, base = canned
    state.body = b"data: " + _chunk("Hel") + b"\n\ndata: " + _chunk("lo") + b"\n\n"
    with pytest.raises(UpstreamError) as ei:
        await _drain(_openai(base))
    assert ei.value.code == "upstream_stream_cut"


async def test_finish_without_done_is_complete_and_comments_ignored(
    canned: tuple[Canned, str],
) -> None:
    state, base = canned
    state.body = (
        b": heartbeat\r\n\r\ndata: " + _chunk("Hi") + b"\r\n\r\n"
        b"data: " + _chunk(None, "stop") + b"\r\n\r\n"
    )
    chunks = await _drain(_openai(base))
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hi"
    assert chunks[-1]["usage"]["estimated"] is True  # no usage chunk: the gateway counted


async def test_non_json_event_and_error_event(canned: tuple[Canned, str]) -> None:
    state, base = canned
    state.body = b"data: {not json\n\n"
    with pytest.raises(UpstreamError) as ei:
        await _drain(_openai(base))
    assert ei.value.code == "upstream_protocol_error"
    state.body = b'data: {"error": {"message": "model overloaded"}}\n\n'
    with pytest.raises(UpstreamError) as ee:
        await _drain(_openai(base))
    assert "model overloaded" in ee.value.message


async def test_non_json_and_choiceless_bodies(canned: tuple[Canned, str]) -> None:
    state, base = canned
    state.content_type = "application/json"
    for body in (b"<html>", b"[1, 2]", b'{"no": "choices"}'):
        state.body = body
        p = _openai(base)
        with pytest.raises(UpstreamError) as ei:
            await p.chat(REQ)
        await p.aclose()
        assert ei.value.code == "upstream_protocol_error"
    state.status = 502
    state.body = b"<html>bad gateway</html>"
    p = _openai(base)
    with pytest.raises(UpstreamError) as eb:
        await p.chat(REQ)
    await p.aclose()
    assert (
        eb.value.retryable and eb.value.upstream_status == 502 and "bad gateway" in eb.value.message
    )


async def test_anthropic_stream_without_message_stop_raises(canned: tuple[Canned, str]) -> None:
    state, base = canned
    state.body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"m",'
        b'"usage":{"input_tokens":3,"output_tokens":1}}}\n\n'
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"partial"}}\n\n'
    )
    got: list[dict[str, Any]] = []
    p = _anthropic(base)
    with pytest.raises(UpstreamError) as ei:
        async for ch in p.chat_stream(REQ):
            got.append(ch)
    await p.aclose()
    assert ei.value.code == "upstream_stream_cut"
    assert any(c["choices"] and c["choices"][0]["delta"].get("content") == "partial" for c in got)


async def test_anthropic_error_event_mid_stream(canned: tuple[Canned, str]) -> None:
    state, base = canned
    state.body = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n'
        b'event: error\ndata: {"type":"error",'
        b'"error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    p = _anthropic(base)
    with pytest.raises(UpstreamError) as ei:
        async for _ in p.chat_stream(REQ):
            pass
    await p.aclose()
    assert ei.value.retryable and ei.value.upstream_status == 529
