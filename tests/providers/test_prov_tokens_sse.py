"""Token estimates, the SSE decoder and upstream error sanitizing (pure)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers._http import sanitize_message, status_error
from hybridgate.providers.sse import SSEDecoder, SSEEvent
from hybridgate.providers.tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_IMAGE,
    TOKENS_PER_MESSAGE,
    estimate_completion_tokens,
    estimate_request_tokens,
    estimate_tokens,
)


def test_estimate_tokens_rounds_up_four_chars() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("abcde") == 2
    assert estimate_tokens("x" * 400) == 100


def test_estimate_request_tokens_counts_messages_parts_tools() -> None:
    req = {
        "messages": [
            {"role": "system", "content": "abcdabcd"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "abcd"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"function": {"name": "abcd", "arguments": "{}"}}],
            },
        ]
    }
    expected = REPLY_PRIMING_TOKENS + 3 * TOKENS_PER_MESSAGE + 2 + 1 + TOKENS_PER_IMAGE + 1 + 1
    assert estimate_request_tokens(req) == expected
    with_tools = dict(req, tools=[{"type": "function", "function": {"name": "f"}}])
    assert estimate_request_tokens(with_tools) > expected


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(tools=st.lists(_JSON, min_size=1, max_size=4))
def test_tool_tokens_count_the_characters_of_compact_json(tools: list[object]) -> None:
    """Tools are counted as the characters ``json.dumps(ensure_ascii=False)`` writes
    (serialized by orjson, counted from its UTF-8 without a second serializer)."""
    try:
        text = json.dumps(tools, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        return  # a lone surrogate: written escaped, counted as escaped
    base = estimate_request_tokens({"messages": [{"role": "user", "content": "x"}]})
    got = estimate_request_tokens({"messages": [{"role": "user", "content": "x"}], "tools": tools})
    assert got - base == estimate_tokens(text)


def test_estimate_request_tokens_embeddings_and_junk() -> None:
    assert estimate_request_tokens({"input": "abcdefgh"}) == 2
    assert estimate_request_tokens({"input": ["abcd", [1, 2, 3], 7]}) == 1 + 3 + 1
    assert estimate_request_tokens({"messages": "nope"}) == 0
    assert estimate_request_tokens({"messages": [1, None]}) == REPLY_PRIMING_TOKENS


def test_estimate_completion_tokens() -> None:
    assert estimate_completion_tokens({"role": "assistant", "content": "abcdefgh"}) == 2


def test_sse_multiline_comments_crlf_and_split_feeds() -> None:
    dec = SSEDecoder()
    stream = (
        b": keep-alive comment\r\n\r\n"
        b'event: message_start\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"data:no-space\n\n"
        b"data: [DONE]\r\r"
    )
    events: list[SSEEvent] = []
    for i in range(len(stream)):  # byte by byte: every split point
        events.extend(dec.feed(stream[i : i + 1]))
    assert events == [
        SSEEvent("message_start", '{"a":\n1}'),
        SSEEvent(None, "no-space"),
        SSEEvent(None, "[DONE]"),
    ]


def test_sse_ignores_partial_event_and_unknown_fields() -> None:
    dec = SSEDecoder()
    assert dec.feed(b"id: 7\nretry: 10\ndata: x\n\ndata: partial") == [SSEEvent(None, "x")]


def test_sse_event_without_data_is_not_emitted() -> None:
    assert SSEDecoder().feed(b"event: ping\n\n") == []


def test_sse_line_limit() -> None:
    dec = SSEDecoder(max_line_bytes=16)
    with pytest.raises(UpstreamError):
        dec.feed(b"data: " + b"x" * 64)


def test_sanitize_strips_keys_and_control_chars() -> None:
    msg = sanitize_message(
        "bad key sk-abcdef1234567890\x00\nBearer tok_123456789 mysecret", ("mysecret",)
    )
    assert "sk-abcdef" not in msg and "tok_123456789" not in msg and "mysecret" not in msg
    assert "\x00" not in msg and "\n" not in msg
    assert len(sanitize_message("y" * 10_000)) <= 401


def test_status_error_retryability() -> None:
    route = RouteConfig(name="r", provider="openai", model="m", location="external", api_key="k-1")
    assert status_error(route, 500, "x").retryable
    assert status_error(route, 503, "x").retryable
    assert status_error(route, 529, "x").retryable
    e429 = status_error(route, 429, "slow down")
    assert e429.retryable and e429.upstream_status == 429 and e429.code == "upstream_rate_limited"
    e400 = status_error(route, 400, "bad k-1")
    assert not e400.retryable and e400.upstream_status == 400 and "k-1" not in e400.message
    assert not status_error(route, 404, "x").retryable
