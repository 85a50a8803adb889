"""AnthropicProvider against the loopback Anthropic upstream over real HTTP."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError, UpstreamTimeout
from hybridgate.providers.anthropic import AnthropicProvider
from hybridgate.providers.registry import build_provider
from hybridgate.testing import AnthropicUpstream

KEY = "sk-ant-secret-0123456789"
REQ: dict[str, Any] = {
    "model": "client-model",
    "messages": [
        {"role": "system", "content": "Be short."},
        {"role": "user", "content": "Name a colour"},
    ],
}
TOOLS = [{"type": "function", "function": {"name": "pick", "parameters": {"type": "object"}}}]


def _provider(up: AnthropicUpstream, **kw: Any) -> AnthropicProvider:
    route = RouteConfig(
        name="claude",
        provider="anthropic",
        model="claude-up",
        base_url=up.base_url,
        api_key=KEY,
        location="external",
        **kw,
    )
    p = build_provider(route)
    assert isinstance(p, AnthropicProvider)
    return p


async def test_chat_translates_both_ways(anthropic_up: AnthropicUpstream) -> None:
    anthropic_up.configure(api_key=KEY)
    p = _provider(anthropic_up)
    try:
        c = await p.chat(dict(REQ, max_tokens=100, stop=["zzz"]))
    finally:
        await p.aclose()
    rec = anthropic_up.requests[-1]
    assert rec.path == "/v1/messages"
    assert rec.headers["anthropic-version"] == "2023-06-01"
    assert rec.headers["x-api-key"] == "<redacted>"
    assert rec.body["model"] == "claude-up" and rec.body["system"] == "Be short."
    assert rec.body["max_tokens"] == 100 and rec.body["stop_sequences"] == ["zzz"]
    assert rec.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Name a colour"}]}
    ]
    assert c.body["object"] == "chat.completion"
    assert c.body["choices"][0]["message"]["content"] == "echo: Name a colour"
    assert c.body["choices"][0]["finish_reason"] == "stop"
    assert c.usage.reported
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (
        c.body["usage"]["prompt_tokens"],
        4,
    )


async def test_default_max_tokens_and_length(anthropic_up: AnthropicUpstream) -> None:
    p = _provider(anthropic_up)
    try:
        c = await p.chat(REQ)
        short = await p.chat(dict(REQ, max_tokens=2))
    finally:
        await p.aclose()
    assert anthropic_up.requests[0].body["max_tokens"] == 4096
    assert c.body["choices"][0]["finish_reason"] == "stop"
    assert short.body["choices"][0]["finish_reason"] == "length"
    assert short.body["choices"][0]["message"]["content"] == "echo: Name"


async def test_stream(anthropic_up: AnthropicUpstream) -> None:
    p = _provider(anthropic_up)
    try:
        chunks = [ch async for ch in p.chat_stream(REQ)]
    finally:
        await p.aclose()
    assert anthropic_up.requests[-1].body["stream"] is True
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    assert text == "echo: Name a colour"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 4
    assert chunks[-1]["usage"]["prompt_tokens"] > 0


async def test_tool_calls_both_modes(anthropic_up: AnthropicUpstream) -> None:
    anthropic_up.use_tools(arguments={"colour": "red"})
    p = _provider(anthropic_up)
    req = dict(REQ, tools=TOOLS, tool_choice="auto")
    try:
        c = await p.chat(req)
        chunks = [ch async for ch in p.chat_stream(req)]
    finally:
        await p.aclose()
    sent = anthropic_up.requests[-1].body
    assert sent["tools"] == [{"name": "pick", "input_schema": {"type": "object"}}]
    assert sent["tool_choice"] == {"type": "auto"}
    call = c.body["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "pick"
    assert json.loads(call["function"]["arguments"]) == {"colour": "red"}
    assert c.body["choices"][0]["finish_reason"] == "tool_calls"
    args = "".join(
        tc["function"].get("arguments", "")
        for ch in chunks
        if ch["choices"]
        for tc in ch["choices"][0]["delta"].get("tool_calls") or []
    )
    assert json.loads(args) == {"colour": "red"}


async def test_tool_result_round_trip_to_upstream(anthropic_up: AnthropicUpstream) -> None:
    p = _provider(anthropic_up)
    req = {
        "messages": [
            {"role": "user", "content": "pick one"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "toolu_1",
                        "type": "function",
                        "function": {"name": "pick", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_1", "content": "green"},
        ],
        "tools": TOOLS,
    }
    try:
        c = await p.chat(req)
    finally:
        await p.aclose()
    assert c.body["choices"][0]["message"]["content"] == "echo: green"


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (529, True), (429, True), (400, False), (401, False)]
)
async def test_errors(anthropic_up: AnthropicUpstream, status: int, retryable: bool) -> None:
    anthropic_up.fail_next(2, status, f"nope {KEY}")
    p = _provider(anthropic_up)
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
        assert "nope" in err.message and KEY not in err.message


async def test_timeout_refused_and_cut(anthropic_up: AnthropicUpstream) -> None:
    p = _provider(anthropic_up, timeout_s=0.3)
    try:
        anthropic_up.stall(10)
        with pytest.raises(UpstreamTimeout):
            await p.chat(REQ)
        anthropic_up.stall(0)
        anthropic_up.cut_stream_after(4)
        got = []
        with pytest.raises(UpstreamError) as cut:
            async for ch in p.chat_stream(REQ):
                got.append(ch)
        assert got  # it failed mid-iteration, after chunks had arrived
        anthropic_up.cut_stream_after(None)
        anthropic_up.refuse_connections()
        with pytest.raises(UpstreamError) as refused:
            await p.chat(REQ)
        anthropic_up.accept_connections()
    finally:
        await p.aclose()
    assert cut.value.code in ("upstream_stream_cut", "upstream_unreachable")
    assert refused.value.code == "upstream_unreachable" and refused.value.retryable


async def test_embeddings_not_supported(anthropic_up: AnthropicUpstream) -> None:
    p = _provider(anthropic_up)
    with pytest.raises(UpstreamError) as ei:
        await p.embeddings({"input": "x"})
    assert not ei.value.retryable and ei.value.code == "not_supported"
    await p.aclose()


def test_base_url_forms() -> None:
    def url(base: str | None) -> str:
        r = RouteConfig(
            name="c", provider="anthropic", model="m", base_url=base, location="external"
        )
        return AnthropicProvider(r)._url

    assert url(None) == "https://api.anthropic.com/v1/messages"
    assert url("http://h:1/") == "http://h:1/v1/messages"
    assert url("http://h:1/v1") == "http://h:1/v1/messages"
