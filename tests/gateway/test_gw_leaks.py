"""Under the default policy no original sensitive value reaches an external route.

A generated corpus puts each value in every part of a request (system prompt,
multi-turn history, tool-call arguments, tool results, Anthropic content
blocks), sent streaming and not, through both APIs. The external upstreams'
recordings are then searched for every original value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from gateway_harness import Harness, running_gateway

# value, data class, what the default policy does with it
REDACTED = {
    "card": "4111 1111 1111 1111",
    "card_dashed": "5500-0000-0000-0004",
    "iban": "GB82 WEST 1234 5698 7654 32",
    "email": "jane.doe@example.com",
    "phone": "+44 20 7946 0958",
}
ON_PREM = {
    "ssn": "536-22-1234",
    "mrn": "MRN: 00482913",
    "term": "Project Bluebird",
}
BLOCKED = {
    "aws": "AKIAZ7QX4MN2PL8RT5VW",
    "github": "ghp_" + "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5",
}


def _digits(v: str) -> str:
    return re.sub(r"\D", "", v)


def _shapes(value: str) -> list[tuple[str, dict[str, Any]]]:
    """One OpenAI request per place a value can hide."""
    tool = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    return [
        ("user", {"messages": [{"role": "user", "content": f"Please check {value} for me."}]}),
        (
            "system",
            {
                "messages": [
                    {"role": "system", "content": f"Customer record: {value}"},
                    {"role": "user", "content": "Summarize the record."},
                ]
            },
        ),
        (
            "history",
            {
                "messages": [
                    {"role": "user", "content": f"My details are {value}"},
                    {"role": "assistant", "content": "Noted."},
                    {"role": "user", "content": "What did I tell you?"},
                ]
            },
        ),
        (
            "content_parts",
            {"messages": [{"role": "user", "content": [{"type": "text", "text": f"id {value}"}]}]},
        ),
        (
            "tool_call_and_result",
            {
                "tools": [tool],
                "messages": [
                    {"role": "user", "content": "look it up"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {
                                    "name": "lookup",
                                    "arguments": json.dumps({"q": value}),
                                },
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": f"found: {value}"},
                ],
            },
        ),
    ]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(
        tmp_path_factory.mktemp("gw"), scanner={"terms": ["Project Bluebird"]}
    ) as harness:
        yield harness


def _assert_not_external(h: Harness, value: str) -> None:
    seen = h.external_text()
    assert value not in seen
    assert value.lower() not in seen.lower()
    d = _digits(value)
    if len(d) >= 8:
        assert d not in _digits(seen)


@pytest.mark.parametrize("name", sorted(REDACTED))
@pytest.mark.parametrize("stream", [False, True])
def test_redacted_values_never_leave_and_come_back(h: Harness, name: str, stream: bool) -> None:
    value = REDACTED[name]
    for shape, body in _shapes(value):
        for model in ("frontier", "claude"):
            r: Any = h.openai().chat.completions.create(model=model, stream=stream, **body)
            if stream:
                text = "".join((c.choices[0].delta.content or "") for c in r if c.choices)
            else:
                text = r.choices[0].message.content or ""
            _assert_not_external(h, value)
            if shape == "user":
                # The stand-in echoes what it saw (a placeholder); the client gets the original.
                assert value in text, (shape, model, text)


@pytest.mark.parametrize("name", sorted(ON_PREM))
def test_on_prem_values_stay_on_prem(h: Harness, name: str) -> None:
    value = ON_PREM[name]
    for _shape, body in _shapes(value):
        h.onprem.clear()
        raw = h.openai().chat.completions.with_raw_response.create(model="any", **body)
        assert raw.headers["x-hybridgate-route"] == "llama-onprem"
        assert raw.headers["x-hybridgate-action"] == "on_prem_only"
        assert h.onprem.requests  # it went in-house, unmasked
        _assert_not_external(h, value)
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(model="frontier", **body)
        assert e.value.status_code == 503
        assert value not in str(e.value.body)


@pytest.mark.parametrize("name", sorted(BLOCKED))
def test_blocked_values_go_nowhere(h: Harness, name: str) -> None:
    value = BLOCKED[name]
    for _shape, body in _shapes(value):
        h.onprem.clear()
        with pytest.raises(openai.PermissionDeniedError) as e:
            h.openai().chat.completions.create(model="any", **body)
        err = e.value.body
        assert isinstance(err, dict) and err["code"] == "policy_blocked"
        assert "secret" in err["message"] and value not in err["message"]
        assert not h.onprem.requests
        _assert_not_external(h, value)


def test_anthropic_content_blocks_are_scanned(h: Harness) -> None:
    card, email = REDACTED["card"], REDACTED["email"]
    msg = h.anthropic().messages.create(
        model="claude",
        max_tokens=64,
        system=[{"type": "text", "text": f"Account owner {email}"}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": f"Charge {card} please"}]},
        ],
    )
    assert card in msg.content[0].text  # type: ignore[union-attr]
    _assert_not_external(h, card)
    _assert_not_external(h, email)
    with pytest.raises(anthropic.PermissionDeniedError):
        h.anthropic().messages.create(
            model="claude",
            max_tokens=16,
            messages=[
                {"role": "user", "content": "use the tool"},
                {
                    "role": "assistant",
                    "content": [
                        {
                            "type": "tool_use",
                            "id": "t1",
                            "name": "x",
                            "input": {"k": BLOCKED["aws"]},
                        }
                    ],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
                },
            ],
        )
    _assert_not_external(h, BLOCKED["aws"])


def test_anthropic_streaming_restores_placeholders(h: Harness) -> None:
    email = REDACTED["email"]
    with h.anthropic().messages.stream(
        model="claude", max_tokens=64, messages=[{"role": "user", "content": f"mail {email}"}]
    ) as s:
        text = "".join(s.text_stream)
    assert email in text
    _assert_not_external(h, email)


def test_clean_prompts_take_the_cheapest_permitted_route(h: Harness) -> None:
    raw = h.openai().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Write a haiku about autumn."}]
    )
    assert raw.headers["x-hybridgate-route"] == "llama-onprem"
    assert raw.headers["x-hybridgate-action"] == "allow"
