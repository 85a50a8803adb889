"""The Anthropic Messages surface driven by the official ``anthropic`` SDK."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from gateway_harness import Harness, running_gateway


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


def test_messages_non_streaming_to_anthropic_route(h: Harness) -> None:
    h.claude.clear()
    raw = h.anthropic().messages.with_raw_response.create(
        model="claude",
        max_tokens=100,
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello there"}],
    )
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant"
    assert msg.content[0].type == "text" and msg.content[0].text
    assert msg.usage.input_tokens > 0
    assert raw.headers["x-hybridgate-route"] == "claude"
    assert raw.headers["x-hybridgate-receipt"]
    sent = h.claude.requests[-1]
    assert sent.body["model"] == "claude-3-5-sonnet-latest"
    assert sent.body["max_tokens"] == 100


def test_messages_to_openai_compatible_route(h: Harness) -> None:
    h.onprem.clear()
    msg = h.anthropic().messages.create(
        model="llama-onprem",
        max_tokens=50,
        system=[{"type": "text", "text": "System block"}],
        messages=[
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
        ],
    )
    assert msg.content[0].type == "text"
    sent = h.onprem.requests[-1].body
    assert sent["messages"][0] == {"role": "system", "content": "System block"} or (
        sent["messages"][0]["role"] == "system"
    )
    assert [m["role"] for m in sent["messages"]][-3:] == ["user", "assistant", "user"]


def test_messages_streaming(h: Harness) -> None:
    with h.anthropic().messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": "stream please"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_messages_streaming_from_openai_route(h: Harness) -> None:
    with h.anthropic().messages.stream(
        model="gpt-4o", max_tokens=64, messages=[{"role": "user", "content": "stream via openai"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text"


def test_tool_use_round_trip(h: Harness) -> None:
    h.external.use_tools(True)
    tools: Any = [
        {
            "name": "get_stock",
            "description": "price",
            "input_schema": {"type": "object", "properties": {"ticker": {"type": "string"}}},
        }
    ]
    msg = h.anthropic().messages.create(
        model="gpt-4o",
        max_tokens=64,
        tools=tools,
        messages=[{"role": "user", "content": "price of ACME?"}],
    )
    h.external.use_tools(False)
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert uses and uses[0].name == "get_stock" and isinstance(uses[0].input, dict)
    assert msg.stop_reason == "tool_use"
    # Send the tool result back: it must arrive upstream as an OpenAI tool message.
    assistant_blocks: Any = [u.model_dump() for u in uses]
    h.external.clear()
    h.anthropic().messages.create(
        model="gpt-4o",
        max_tokens=64,
        tools=tools,
        messages=[
            {"role": "user", "content": "price of ACME?"},
            {"role": "assistant", "content": assistant_blocks},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "42.00 USD"}
                ],
            },
        ],
    )
    sent = h.external.requests[-1].body["messages"]
    tool_msgs = [m for m in sent if m["role"] == "tool"]
    assert tool_msgs and "42.00 USD" in str(tool_msgs[0]["content"])


def test_errors_in_anthropic_format(h: Harness) -> None:
    with pytest.raises(anthropic.AuthenticationError) as e:
        h.anthropic(key="nope").messages.create(
            model="claude", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    body = e.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        h.anthropic().messages.create(
            model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(anthropic.BadRequestError):
        h.anthropic().messages.create(model="claude", max_tokens=5, messages=[])
