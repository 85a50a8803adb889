"""OpenAIUpstream driven by the official ``openai`` SDK: the wire format is exact."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from hybridgate.testing import OpenAIUpstream

MSGS: list[dict[str, str]] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "My card is 4111 1111 1111 1111"},
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture
def up(server: OpenAIUpstream) -> Iterator[OpenAIUpstream]:
    server.reset()
    server.clear()
    yield server
    server.reset()


def _client(up: OpenAIUpstream, **kw: Any) -> Any:
    """The official client, typed loosely: these tests check the wire, not the SDK's stubs."""
    return openai.OpenAI(base_url=up.base_url, api_key="sk-test-key-123456", max_retries=0, **kw)


def test_base_url_and_echo_completion(up: OpenAIUpstream) -> None:
    assert up.base_url.startswith("http://127.0.0.1:") and up.base_url.endswith("/v1")
    r = _client(up).chat.completions.create(model="gpt-test", messages=MSGS)
    assert r.object == "chat.completion" and r.model == "gpt-test"
    assert r.choices[0].message.content == "echo: My card is 4111 1111 1111 1111"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage is not None
    # words in every string of `messages`, role names included: 1+2 + 1+7
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (11, 8)


def test_streaming_with_usage(up: OpenAIUpstream) -> None:
    stream = _client(up).chat.completions.create(
        model="m",
        messages=MSGS,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: My card is 4111 1111 1111 1111"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_has_no_usage_chunk(up: OpenAIUpstream) -> None:
    chunks = list(_client(up).chat.completions.create(model="m", messages=MSGS, stream=True))
    assert all(c.choices for c in chunks)
    assert all(c.usage is None for c in chunks)


def test_fixed_reply_max_tokens_and_stop(up: OpenAIUpstream) -> None:
    up.set_reply("alpha beta gamma delta")
    c = _client(up)
    r = c.chat.completions.create(model="m", messages=MSGS, max_tokens=2)
    assert r.choices[0].message.content == "alpha beta" and r.choices[0].finish_reason == "length"
    r2 = c.chat.completions.create(model="m", messages=MSGS, stop=[" gamma"])
    assert r2.choices[0].message.content == "alpha beta" and r2.choices[0].finish_reason == "stop"


def test_tool_calls_with_sdk_stream_helper(up: OpenAIUpstream) -> None:
    up.use_tools()
    c = _client(up)
    r = c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "lookup"
    assert json.loads(call.function.arguments) == {"text": MSGS[1]["content"]}
    with c.chat.completions.stream(model="m", messages=MSGS, tools=TOOLS) as s:
        for _ in s:
            pass
        final = s.get_final_completion()
    fcall = final.choices[0].message.tool_calls[0]
    assert json.loads(fcall.function.arguments) == {"text": MSGS[1]["content"]}
    assert final.choices[0].finish_reason == "tool_calls"
    # tool_choice "none" means no call
    r3 = c.chat.completions.create(model="m", messages=MSGS, tools=TOOLS, tool_choice="none")
    assert r3.choices[0].message.tool_calls is None


def test_embeddings_deterministic(up: OpenAIUpstream) -> None:
    up.configure(embedding_dim=16)
    c = _client(up)
    a = c.embeddings.create(model="e", input=["one two", "three"])
    b = c.embeddings.create(model="e", input="one two")
    assert len(a.data) == 2 and len(a.data[0].embedding) == 16
    assert a.data[0].embedding == b.data[0].embedding
    assert abs(sum(x * x for x in a.data[0].embedding) - 1.0) < 1e-9
    assert a.usage.prompt_tokens == 3
    assert c.models.list().data[0].id == "loopback"


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (400, openai.BadRequestError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_errors_in_openai_format(up: OpenAIUpstream, status: int, exc: type[Exception]) -> None:
    up.fail_next(2, status, "injected")
    c = _client(up)
    for _ in range(2):
        with pytest.raises(exc) as ei:
            c.chat.completions.create(model="m", messages=MSGS)
        assert "injected" in str(ei.value)
    assert c.chat.completions.create(model="m", messages=MSGS).choices


def test_api_key_enforced(up: OpenAIUpstream) -> None:
    up.configure(api_key="sk-right")
    with pytest.raises(openai.AuthenticationError):
        _client(up).chat.completions.create(model="m", messages=MSGS)
    ok: Any = openai.OpenAI(base_url=up.base_url, api_key="sk-right", max_retries=0)
    assert ok.chat.completions.create(model="m", messages=MSGS).choices


def test_cut_stream_raises_in_sdk(up: OpenAIUpstream) -> None:
    up.cut_stream_after(3)
    got = []
    with pytest.raises(openai.APIError):
        for ch in _client(up).chat.completions.create(model="m", messages=MSGS, stream=True):
            got.append(ch)
    assert len(got) == 3


def test_stall_times_out_and_latency(up: OpenAIUpstream) -> None:
    up.stall(10)
    with pytest.raises(openai.APITimeoutError):
        _client(up, timeout=0.3).chat.completions.create(model="m", messages=MSGS)
    up.stall(0)
    up.set_latency(0.2)
    t0 = time.perf_counter()
    _client(up).chat.completions.create(model="m", messages=MSGS)
    assert time.perf_counter() - t0 >= 0.2


def test_refuse_and_accept(up: OpenAIUpstream) -> None:
    port = up.port
    up.refuse_connections()
    with pytest.raises(openai.APIConnectionError):
        _client(up).chat.completions.create(model="m", messages=MSGS)
    up.accept_connections()
    assert up.port == port
    assert _client(up).chat.completions.create(model="m", messages=MSGS).choices


def test_recording_redacts_auth_and_all_text(up: OpenAIUpstream) -> None:
    _client(up).chat.completions.create(model="m", messages=MSGS, user="alice")
    rec = up.requests[-1]
    assert rec.method == "POST" and rec.path == "/v1/chat/completions"
    assert rec.headers["authorization"] == "<redacted>"
    assert "sk-test-key-123456" not in json.dumps(rec.headers)
    text = up.all_text()
    assert "4111 1111 1111 1111" in text and "Be brief." in text and "alice" in text
    up.clear()
    assert up.requests == [] and up.all_text() == ""


def test_invalid_json_is_400(up: OpenAIUpstream) -> None:
    req = urllib.request.Request(
        up.base_url + "/chat/completions",
        data=b"{nope",
        headers={"content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as ei:
        urllib.request.urlopen(req, timeout=5)
    assert ei.value.code == 400
    assert json.loads(ei.value.read())["error"]["type"] == "invalid_request_error"


def test_concurrent_recording_is_complete(up: OpenAIUpstream) -> None:
    c = _client(up)

    def worker() -> None:
        for _ in range(10):
            c.chat.completions.create(model="m", messages=MSGS)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(up.requests) == 40


async def test_async_client_stream(up: OpenAIUpstream) -> None:
    c: Any = openai.AsyncOpenAI(base_url=up.base_url, api_key="k", max_retries=0)
    stream = await c.chat.completions.create(model="m", messages=MSGS, stream=True)
    text = "".join([ch.choices[0].delta.content or "" async for ch in stream if ch.choices])
    assert text.startswith("echo: ")
    await c.close()


def test_unknown_knob_rejected(up: OpenAIUpstream) -> None:
    with pytest.raises(TypeError):
        up.configure(no_such_knob=1)
    with pytest.raises(ValueError):
        up.fail_next(1, 200)
