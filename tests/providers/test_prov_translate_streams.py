"""Answers and streams between the two APIs, checked against the official SDKs' parsers."""

from __future__ import annotations

import importlib
import importlib.util
import json
from typing import Any

import anthropic
import pytest

from hybridgate.errors import UpstreamError
from hybridgate.translate.anthropic import (
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_error_event,
    anthropic_response_to_openai,
    openai_response_to_anthropic,
)


def _completion(
    message: dict[str, Any], finish: str, usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage or {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("stop_sequence", "stop"),
    ],
)
def test_anthropic_message_to_openai(stop: str, finish: str) -> None:
    msg = {
        "id": "msg_01",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [
            {"type": "text", "text": "Hello "},
            {"type": "text", "text": "there"},
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}},
        ],
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 2},
    }
    out = anthropic_response_to_openai(msg)
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    choice = out["choices"][0]
    assert choice["finish_reason"] == finish
    assert choice["message"]["content"] == "Hello there"
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "f", "arguments": '{"x": 1}'}}
    ]
    assert out["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_anthropic_message_tool_only_has_null_content() -> None:
    msg = {
        "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}],
        "stop_reason": "tool_use",
    }
    assert anthropic_response_to_openai(msg)["choices"][0]["message"]["content"] is None


def test_anthropic_message_malformed() -> None:
    with pytest.raises(UpstreamError):
        anthropic_response_to_openai({"content": "nope"})


def test_openai_completion_to_anthropic_validates_with_sdk() -> None:
    body = _completion(
        {
            "role": "assistant",
            "content": "Sure.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "g", "arguments": "{broken"},
                },
            ],
        },
        "tool_calls",
    )
    out = openai_response_to_anthropic(body)
    assert out["id"] == "msg_abc123"
    assert out["stop_reason"] == "tool_use"
    assert out["usage"] == {"input_tokens": 11, "output_tokens": 7}
    parsed = anthropic.types.Message.model_validate(out)
    assert parsed.content[0].type == "text" and parsed.content[0].text == "Sure."
    assert parsed.content[1].type == "tool_use" and parsed.content[1].input == {"a": 1}
    assert parsed.content[2].type == "tool_use" and parsed.content[2].input == {
        "_raw_arguments": "{broken"
    }


@pytest.mark.parametrize(
    ("finish", "stop"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        (None, "end_turn"),
    ],
)
def test_finish_to_stop_reason(finish: str | None, stop: str) -> None:
    out = openai_response_to_anthropic(_completion({"role": "assistant", "content": "x"}, finish))  # type: ignore[arg-type]
    assert out["stop_reason"] == stop


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


OPENAI_TOOL_STREAM = [
    _chunk({"role": "assistant", "content": ""}),
    _chunk({"content": "Let me "}),
    _chunk({"content": "look."}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        }
    ),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"q": '}}]}),
    _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"cats"}'}}]}),
    _chunk(
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": "{}"},
                }
            ]
        }
    ),
    _chunk({}, "tool_calls"),
    {
        "id": "chatcmpl-s1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
    },
]


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in events
    )


# Newer anthropic SDKs run on the httpx2 fork; older ones on httpx. Use whichever it uses.
_HX: Any = importlib.import_module("httpx2" if importlib.util.find_spec("httpx2") else "httpx")


def _sdk_client(payload: bytes) -> anthropic.Anthropic:
    """The official SDK, its HTTP answered in memory with ``payload`` as an SSE body."""

    def handler(request: Any) -> Any:
        return _HX.Response(200, content=payload, headers={"content-type": "text/event-stream"})

    client = _HX.Client(transport=_HX.MockTransport(handler))
    return anthropic.Anthropic(api_key="k", base_url="http://test", http_client=client)


def test_openai_to_anthropic_stream_event_order() -> None:
    st = OpenAIToAnthropicStream(model="claude-gw")
    events: list[dict[str, Any]] = []
    for c in OPENAI_TOOL_STREAM:
        events.extend(st.feed(c))
    events.extend(st.finish())
    types = [e["type"] for e in events]
    assert types == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [e["index"] for e in events if e["type"] == "content_block_start"] == [0, 1, 2]
    assert events[-2]["delta"]["stop_reason"] == "tool_use"
    assert events[-2]["usage"] == {"input_tokens": 20, "output_tokens": 9}
    assert st.finish() == [] and st.feed(OPENAI_TOOL_STREAM[1]) == []


def test_openai_to_anthropic_stream_through_official_sdk() -> None:
    st = OpenAIToAnthropicStream(model="claude-gw")
    events = [e for c in OPENAI_TOOL_STREAM for e in st.feed(c)] + st.finish()
    client = _sdk_client(_sse(events))
    texts: list[str] = []
    with client.messages.stream(
        model="x", max_tokens=10, messages=[{"role": "user", "content": "q"}]
    ) as s:
        for ev in s:
            if ev.type == "text":
                texts.append(ev.text)
        final = s.get_final_message()
    assert "".join(texts) == "Let me look."
    assert final.id == "msg_s1" and final.model == "claude-gw"
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "text" and final.content[0].text == "Let me look."
    assert final.content[1].type == "tool_use" and final.content[1].input == {"q": "cats"}
    assert final.content[1].id == "call_a"
    assert final.content[2].type == "tool_use" and final.content[2].name == "g"
    assert final.usage.input_tokens == 20 and final.usage.output_tokens == 9


def test_openai_to_anthropic_stream_empty_and_estimated_usage() -> None:
    st = OpenAIToAnthropicStream(model="m", input_tokens=3)
    events = st.feed(_chunk({"content": "abcdefgh"}, "length")) + st.finish()
    assert events[-2]["delta"]["stop_reason"] == "max_tokens"
    assert events[-2]["usage"] == {"input_tokens": 3, "output_tokens": 2}
    final = _sdk_client(_sse(events)).messages.create(
        model="x", max_tokens=5, messages=[{"role": "user", "content": "q"}], stream=True
    )
    assert next(e.type for e in final) == "message_start"
    only_finish = OpenAIToAnthropicStream(model="m").finish()
    assert [e["type"] for e in only_finish] == ["message_start", "message_delta", "message_stop"]


def test_error_event_raises_in_sdk() -> None:
    st = OpenAIToAnthropicStream(model="m")
    events = st.feed(_chunk({"content": "partial"}))
    events.append(anthropic_error_event("upstream broke", 502))
    assert events[-1] == {
        "type": "error",
        "error": {"type": "api_error", "message": "upstream broke"},
    }
    assert anthropic_error_event("busy", 529)["error"]["type"] == "overloaded_error"
    client = _sdk_client(_sse(events))
    with (
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(
            model="x", max_tokens=10, messages=[{"role": "user", "content": "q"}]
        ) as s,
    ):
        for _ in s:
            pass


ANTHROPIC_STREAM: list[dict[str, Any]] = [
    {
        "type": "message_start",
        "message": {
            "id": "msg_9",
            "type": "message",
            "role": "assistant",
            "model": "claude-up",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 25, "output_tokens": 1},
        },
    },
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " you"}},
    {"type": "content_block_stop", "index": 0},
    {
        "type": "content_block_start",
        "index": 1,
        "content_block": {"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"a"'},
    },
    {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": ": 2}"},
    },
    {"type": "content_block_stop", "index": 1},
    {
        "type": "message_delta",
        "delta": {"stop_reason": "tool_use", "stop_sequence": None},
        "usage": {"output_tokens": 12},
    },
    {"type": "message_stop"},
]


def test_anthropic_to_openai_stream() -> None:
    st = AnthropicToOpenAIStream("route-model")
    chunks = [c for e in ANTHROPIC_STREAM for c in st.feed(e)]
    assert st.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hi you"
    calls = [
        tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert (
        calls[0]["id"] == "toolu_x"
        and calls[0]["function"]["name"] == "f"
        and calls[0]["index"] == 0
    )
    assert "".join(tc["function"]["arguments"] for tc in calls) == '{"a": 2}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 25, "completion_tokens": 12, "total_tokens": 37}
    assert all(c["model"] == "claude-up" for c in chunks)
    # The OpenAI SDK accepts every chunk.
    import openai.types.chat as oc

    for c in chunks:
        oc.ChatCompletionChunk.model_validate(c)


def test_anthropic_to_openai_stream_error_event() -> None:
    st = AnthropicToOpenAIStream("m")
    st.feed(ANTHROPIC_STREAM[0])
    with pytest.raises(UpstreamError) as ei:
        st.feed({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})
    assert ei.value.retryable and ei.value.upstream_status == 529
    with pytest.raises(UpstreamError) as ei2:
        st.feed({"type": "error", "error": {"type": "invalid_request_error", "message": "x"}})
    assert not ei2.value.retryable


def test_round_trip_openai_stream_to_anthropic_and_back() -> None:
    fwd = OpenAIToAnthropicStream(model="m")
    events = [e for c in OPENAI_TOOL_STREAM for e in fwd.feed(c)] + fwd.finish()
    back = AnthropicToOpenAIStream("m")
    chunks = [c for e in events for c in back.feed(e)]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me look."
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 20
