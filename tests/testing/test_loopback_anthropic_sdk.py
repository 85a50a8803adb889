"""AnthropicUpstream driven by the official ``anthropic`` SDK: the wire format is exact."""

from __future__ import annotations

import importlib
import importlib.util
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from hybridgate.testing import AnthropicUpstream

# Newer anthropic SDKs run on the httpx2 fork; older ones on httpx.
_HX: Any = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")

MSGS: list[dict[str, Any]] = [{"role": "user", "content": "Call me at +44 20 7946 0958"}]
TOOLS: list[dict[str, Any]] = [
    {"name": "dial", "description": "Dial", "input_schema": {"type": "object", "properties": {}}}
]


@pytest.fixture(scope="module")
def server() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as up:
        yield up


@pytest.fixture
def up(server: AnthropicUpstream) -> Iterator[AnthropicUpstream]:
    server.reset()
    server.clear()
    yield server
    server.reset()


def _client(up: AnthropicUpstream, **kw: Any) -> Any:
    """The official client, typed loosely: these tests check the wire, not the SDK's stubs."""
    return anthropic.Anthropic(
        base_url=up.base_url, api_key="sk-ant-test-123456", max_retries=0, **kw
    )


def test_create_message(up: AnthropicUpstream) -> None:
    m = _client(up).messages.create(
        model="claude-t", max_tokens=50, system="Sys prompt", messages=MSGS
    )
    assert m.type == "message" and m.role == "assistant" and m.model == "claude-t"
    assert m.id.startswith("msg_")
    assert m.content[0].type == "text" and m.content[0].text == "echo: Call me at +44 20 7946 0958"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    # words of every string in messages and system: 1 role + 7 words + 2 system words
    assert (m.usage.input_tokens, m.usage.output_tokens) == (10, 8)
    rec = up.requests[-1]
    assert rec.path == "/v1/messages" and "anthropic-version" in rec.headers
    key_headers = [rec.headers.get(h) for h in ("x-api-key", "authorization") if h in rec.headers]
    assert key_headers and all(v == "<redacted>" for v in key_headers)
    assert "sk-ant-test-123456" not in json.dumps(rec.headers)
    assert "Sys prompt" in up.all_text() and "+44 20 7946 0958" in up.all_text()


def test_stream_text_and_final_message(up: AnthropicUpstream) -> None:
    with _client(up).messages.stream(model="c", max_tokens=50, messages=MSGS) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    assert "".join(texts) == "echo: Call me at +44 20 7946 0958"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 8 and final.usage.input_tokens == 8


def test_raw_stream_event_sequence(up: AnthropicUpstream) -> None:
    events = list(_client(up).messages.create(model="c", max_tokens=50, messages=MSGS, stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[1] == "content_block_start"
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(types[2:-3]) == {"content_block_delta"}  # ping is consumed by the SDK


def test_stop_sequences_and_max_tokens(up: AnthropicUpstream) -> None:
    up.set_reply("one two three four")
    c = _client(up)
    m = c.messages.create(model="c", max_tokens=50, messages=MSGS, stop_sequences=[" three"])
    assert m.content[0].text == "one two"
    assert m.stop_reason == "stop_sequence" and m.stop_sequence == " three"
    m2 = c.messages.create(model="c", max_tokens=1, messages=MSGS)
    assert m2.content[0].text == "one" and m2.stop_reason == "max_tokens"


def test_tool_use_plain_and_streamed(up: AnthropicUpstream) -> None:
    up.use_tools(arguments={"number": "+44 20 7946 0958"})
    c = _client(up)
    m = c.messages.create(model="c", max_tokens=50, messages=MSGS, tools=TOOLS)
    assert m.stop_reason == "tool_use"
    block = m.content[0]
    assert block.type == "tool_use" and block.name == "dial"
    assert block.input == {"number": "+44 20 7946 0958"}
    with c.messages.stream(model="c", max_tokens=50, messages=MSGS, tools=TOOLS) as s:
        final = s.get_final_message()
    fb = final.content[0]
    assert fb.type == "tool_use" and fb.input == {"number": "+44 20 7946 0958"}
    follow = [
        *MSGS,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": fb.id, "name": "dial", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": fb.id, "content": "ringing"}],
        },
    ]
    up.use_tools(False)
    m3 = c.messages.create(model="c", max_tokens=50, messages=follow, tools=TOOLS)
    assert m3.content[0].text == "echo: ringing"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, anthropic.BadRequestError),
        (429, anthropic.RateLimitError),
        (500, anthropic.InternalServerError),
        (529, anthropic.InternalServerError),
    ],
)
def test_errors_in_anthropic_format(
    up: AnthropicUpstream, status: int, exc: type[anthropic.APIStatusError]
) -> None:
    up.fail_next(1, status, "injected failure")
    with pytest.raises(exc) as ei:
        _client(up).messages.create(model="c", max_tokens=5, messages=MSGS)
    body: Any = ei.value.body
    assert body["type"] == "error" and body["error"]["message"] == "injected failure"
    if status == 529:
        assert body["error"]["type"] == "overloaded_error"


def test_missing_max_tokens_is_invalid_request(up: AnthropicUpstream) -> None:
    req = urllib.request.Request(
        up.base_url + "/v1/messages",
        data=json.dumps({"model": "c", "messages": MSGS}).encode(),
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=5)
    assert ei.value.code == 400
    assert json.loads(ei.value.read())["error"]["type"] == "invalid_request_error"


def test_cut_stream_raises_in_sdk(up: AnthropicUpstream) -> None:
    up.cut_stream_after(4)
    # The SDK surfaces a broken transfer as its HTTP library's protocol error.
    with (
        pytest.raises((anthropic.APIError, _HX.RemoteProtocolError)),
        _client(up).messages.stream(
            model="c",
            max_tokens=50,
            messages=MSGS,
        ) as s,
    ):
        for _ in s:
            pass


def test_stall_refuse_and_key(up: AnthropicUpstream) -> None:
    up.stall(10)
    with pytest.raises(anthropic.APITimeoutError):
        _client(up, timeout=0.3).messages.create(model="c", max_tokens=5, messages=MSGS)
    up.stall(0)
    up.refuse_connections()
    with pytest.raises(anthropic.APIConnectionError):
        _client(up).messages.create(model="c", max_tokens=5, messages=MSGS)
    up.accept_connections()
    up.configure(api_key="right-key")
    with pytest.raises(anthropic.AuthenticationError):
        _client(up).messages.create(model="c", max_tokens=5, messages=MSGS)
    ok: Any = anthropic.Anthropic(base_url=up.base_url, api_key="right-key", max_retries=0)
    assert ok.messages.create(model="c", max_tokens=5, messages=MSGS).content


async def test_async_client_stream(up: AnthropicUpstream) -> None:
    c: Any = anthropic.AsyncAnthropic(base_url=up.base_url, api_key="k", max_retries=0)
    async with c.messages.stream(model="c", max_tokens=50, messages=MSGS) as s:
        text = "".join([t async for t in s.text_stream])
    assert text.startswith("echo: ")
    await c.close()


def test_usage_reporting_off(up: AnthropicUpstream) -> None:
    up.configure(report_usage=False)
    m = _client(up).messages.create(model="c", max_tokens=5, messages=MSGS)
    assert (m.usage.input_tokens, m.usage.output_tokens) == (0, 0)
