"""OpenAICompatProvider against the loopback OpenAI upstream over real HTTP."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError, UpstreamTimeout
from hybridgate.providers.openai_compat import OpenAICompatProvider
from hybridgate.providers.registry import build_provider
from hybridgate.providers.tokens import estimate_request_tokens
from hybridgate.testing import OpenAIUpstream

KEY = "sk-route-secret-0123456789"
REQ: dict[str, Any] = {
    "model": "client-model",
    "messages": [
        {"role": "system", "content": "Be short."},
        {"role": "user", "content": "What is two plus two"},
    ],
}
TOOLS = [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}]


def _route(base_url: str, **kw: Any) -> RouteConfig:
    return RouteConfig(
        name="oa",
        provider="openai_compat",
        model="upstream-model",
        base_url=base_url,
        api_key=KEY,
        location="external",
        headers={"x-org": "acme"},
        **kw,
    )


def _provider(up: OpenAIUpstream, **kw: Any) -> OpenAICompatProvider:
    p = build_provider(_route(up.base_url, **kw))
    assert isinstance(p, OpenAICompatProvider)
    return p


async def test_chat_non_stream_headers_model_and_usage(openai_up: OpenAIUpstream) -> None:
    p = _provider(openai_up)
    try:
        c = await p.chat(dict(REQ, stream=False))
    finally:
        await p.aclose()
    assert c.body["choices"][0]["message"]["content"] == "echo: What is two plus two"
    assert c.usage.reported and c.usage.prompt_tokens == 9 and c.usage.completion_tokens == 6
    rec = openai_up.requests[-1]
    assert rec.path == "/v1/chat/completions"
    assert rec.body["model"] == "upstream-model"
    assert "stream" not in rec.body
    assert rec.headers["authorization"] == "<redacted>"  # it was sent; the recorder hides it
    assert rec.headers["x-org"] == "acme"


async def test_bearer_key_is_sent(openai_up: OpenAIUpstream) -> None:
    openai_up.configure(api_key=KEY)
    p = _provider(openai_up)
    try:
        assert (await p.chat(REQ)).body["choices"]
    finally:
        await p.aclose()
    wrong = build_provider(
        _route(openai_up.base_url).model_copy(update={"api_key": "sk-wrong-key-000"})
    )
    try:
        with pytest.raises(UpstreamError) as ei:
            await wrong.chat(REQ)
    finally:
        await wrong.aclose()
    assert ei.value.upstream_status == 401 and not ei.value.retryable


async def test_usage_counted_when_not_reported(openai_up: OpenAIUpstream) -> None:
    openai_up.configure(report_usage=False, reply="abcdefgh")
    p = _provider(openai_up)
    try:
        c = await p.chat(REQ)
        chunks = [ch async for ch in p.chat_stream(REQ)]
    finally:
        await p.aclose()
    assert not c.usage.reported
    assert c.usage.prompt_tokens == estimate_request_tokens(REQ)
    assert c.usage.completion_tokens == 2
    assert c.body["usage"]["prompt_tokens"] == estimate_request_tokens(REQ)
    last = chunks[-1]
    assert last["choices"] == [] and last["usage"]["estimated"] is True
    assert last["usage"]["completion_tokens"] == 2


async def test_stream_requests_usage_and_yields_chunks(openai_up: OpenAIUpstream) -> None:
    p = _provider(openai_up)
    try:
        chunks = [ch async for ch in p.chat_stream(REQ)]
    finally:
        await p.aclose()
    sent = openai_up.requests[-1].body
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    assert text == "echo: What is two plus two"
    assert chunks[-1]["usage"] == {"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}
    assert "estimated" not in chunks[-1]["usage"]


async def test_tool_calls_non_stream_and_stream(openai_up: OpenAIUpstream) -> None:
    openai_up.use_tools(arguments={"expr": "2+2"})
    p = _provider(openai_up)
    req = dict(REQ, tools=TOOLS)
    try:
        c = await p.chat(req)
        chunks = [ch async for ch in p.chat_stream(req)]
    finally:
        await p.aclose()
    choice = c.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "calc" and json.loads(call["function"]["arguments"]) == {
        "expr": "2+2"
    }
    args = "".join(
        tc["function"].get("arguments", "")
        for ch in chunks
        if ch["choices"]
        for tc in ch["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"expr": "2+2"}
    assert any(ch["choices"] and ch["choices"][0]["finish_reason"] == "tool_calls" for ch in chunks)


async def test_embeddings(openai_up: OpenAIUpstream) -> None:
    p = _provider(openai_up)
    try:
        out = await p.embeddings({"model": "x", "input": ["a b", "c"]})
        again = await p.embeddings({"model": "x", "input": ["a b"]})
    finally:
        await p.aclose()
    assert [d["index"] for d in out["data"]] == [0, 1]
    assert out["data"][0]["embedding"] == again["data"][0]["embedding"]
    assert out["data"][0]["embedding"] != out["data"][1]["embedding"]
    assert out["usage"]["prompt_tokens"] == 3
    assert openai_up.requests[-1].body["model"] == "upstream-model"


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (404, False)]
)
async def test_http_errors_mapped(openai_up: OpenAIUpstream, status: int, retryable: bool) -> None:
    openai_up.fail_next(2, status, f"boom {KEY} details")
    p = _provider(openai_up)
    try:
        with pytest.raises(UpstreamError) as ei:
            await p.chat(REQ)
        with pytest.raises(UpstreamError) as es:
            async for _ in p.chat_stream(REQ):
                pass
    finally:
        await p.aclose()
    for err in (ei.value, es.value):
        assert err.upstream_status == status and err.retryable is retryable
        assert "boom" in err.message and KEY not in err.message
        assert not isinstance(err, UpstreamTimeout)


async def test_timeout_on_stall(openai_up: OpenAIUpstream) -> None:
    openai_up.stall(10)
    p = _provider(openai_up, timeout_s=0.3)
    try:
        with pytest.raises(UpstreamTimeout) as ei:
            await p.chat(REQ)
        with pytest.raises(UpstreamTimeout):
            async for _ in p.chat_stream(REQ):
                pass
    finally:
        openai_up.stall(0)
        await p.aclose()
    assert ei.value.retryable and ei.value.code == "upstream_timeout"


async def test_refused_connection_fresh_and_kept_alive(openai_up: OpenAIUpstream) -> None:
    p = _provider(openai_up)
    try:
        await p.chat(REQ)  # leaves a kept-alive connection in the pool
        openai_up.refuse_connections()
        with pytest.raises(UpstreamError) as kept:
            await p.chat(REQ)
        fresh = _provider(openai_up)
        try:
            with pytest.raises(UpstreamError) as new:
                await fresh.chat(REQ)
        finally:
            await fresh.aclose()
        openai_up.accept_connections()
        assert (await p.chat(REQ)).body["choices"]
    finally:
        await p.aclose()
    for err in (kept.value, new.value):
        assert err.retryable and err.code == "upstream_unreachable"
        assert not isinstance(err, UpstreamTimeout)


async def test_nothing_listening_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = OpenAICompatProvider(_route(f"http://127.0.0.1:{port}/v1"))
    try:
        with pytest.raises(UpstreamError) as ei:
            await p.chat(REQ)
    finally:
        await p.aclose()
    assert ei.value.code == "upstream_unreachable" and ei.value.retryable


@pytest.mark.parametrize("cut", [1, 3, 7])
async def test_stream_cut_midway_raises(openai_up: OpenAIUpstream, cut: int) -> None:
    openai_up.cut_stream_after(cut)
    p = _provider(openai_up)
    got: list[dict[str, Any]] = []
    try:
        with pytest.raises(UpstreamError) as ei:
            async for ch in p.chat_stream(REQ):
                got.append(ch)
    finally:
        await p.aclose()
    assert len(got) == cut  # the chunks before the cut arrived, then it raised
    assert ei.value.code in ("upstream_stream_cut", "upstream_unreachable")


async def test_abandoned_stream_releases_connection(openai_up: OpenAIUpstream) -> None:
    p = _provider(openai_up)
    try:
        for _ in range(3):
            stream = p.chat_stream(REQ)
            async for _ch in stream:
                break
            await stream.aclose()  # type: ignore[attr-defined]
        assert (await p.chat(REQ)).body["choices"]
    finally:
        await p.aclose()


def test_default_base_and_registry() -> None:
    r = RouteConfig(name="o", provider="openai", model="gpt", location="external")
    p = build_provider(r)
    assert isinstance(p, OpenAICompatProvider)
    assert p._base == "https://api.openai.com/v1"


def test_provider_survives_event_loop_change(openai_up: OpenAIUpstream) -> None:
    import asyncio

    p = _provider(openai_up)
    first = asyncio.run(p.chat(REQ))
    second = asyncio.run(p.chat(REQ))  # the old session's loop is gone; a new one is made
    asyncio.run(p.aclose())
    assert first.body["choices"] and second.body["choices"]


def test_recording_can_be_switched_off(openai_up: OpenAIUpstream) -> None:
    import asyncio

    openai_up.configure(record=False)
    p = _provider(openai_up)

    async def call() -> None:  # one loop: the connection is closed by the loop that opened it
        try:
            await p.chat(REQ)
        finally:
            await p.aclose()

    asyncio.run(call())
    assert openai_up.requests == []


@pytest.mark.parametrize(
    ("provider", "sent", "expected"),
    [
        # a self-hosted server may read only max_tokens: the limit is mirrored there
        (
            "openai_compat",
            {"max_completion_tokens": 7},
            {"max_completion_tokens": 7, "max_tokens": 7},
        ),
        ("vllm", {"max_completion_tokens": 7}, {"max_completion_tokens": 7, "max_tokens": 7}),
        # OpenAI itself reads the newer field (and refuses max_tokens on reasoning models)
        ("openai", {"max_completion_tokens": 7}, {"max_completion_tokens": 7}),
        # a client's own max_tokens is never changed
        (
            "openai_compat",
            {"max_completion_tokens": 7, "max_tokens": 3},
            {"max_completion_tokens": 7, "max_tokens": 3},
        ),
        ("openai_compat", {}, {}),
    ],
)
async def test_output_limit_reaches_servers_that_read_only_max_tokens(
    openai_up: OpenAIUpstream, provider: str, sent: dict[str, int], expected: dict[str, int]
) -> None:
    route = RouteConfig(
        name="oa", provider=provider, model="m", base_url=openai_up.base_url, location="on_prem"
    )
    p = OpenAICompatProvider(route)
    try:
        await p.chat({**REQ, **sent})
    finally:
        await p.aclose()
    body = openai_up.requests[-1].body
    got = {k: body[k] for k in ("max_completion_tokens", "max_tokens") if k in body}
    assert got == expected
