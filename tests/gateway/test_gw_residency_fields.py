"""Every field of a request is scanned: keys, numbers, ids and enums included.

Each value is placed in one field of a request sent with the official SDKs;
the external upstreams' recordings (every key, number and string of every
body they received) must not hold it, and the receipt must name its class.
A value in a field that must pass verbatim cannot be masked, so the request
is confined on-prem (or refused) rather than sent external as is.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_harness import Harness, running_gateway
from hybridgate.scan.normalize import normalize

CARD = "4111 1111 1111 1111"
SSN = "536-22-1234"
EMAIL = "jane.doe@example.com"
TERM = "Project Bluebird"
AWS = "AKIAZ7QX4MN2PL8RT5VW"

# value, class it must be receipted as
VALUES: dict[str, tuple[str, str]] = {
    "card": (CARD, "financial"),
    "ssn": (SSN, "government_id"),
    "email": (EMAIL, "contact"),
    "term": (TERM, "org_confidential"),
    "aws": (AWS, "secret"),
}


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw"), scanner={"terms": [TERM]}) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _fresh_recordings(h: Harness) -> None:
    """Each test judges only what its own requests sent."""
    h.external.clear()
    h.claude.clear()
    h.onprem.clear()


def external_dump(h: Harness) -> str:
    """Every key, number and string every external upstream received, decoded."""
    bodies = [r.body for r in h.external.requests] + [r.body for r in h.claude.requests]
    return "\n".join(json.dumps(b, ensure_ascii=False) for b in bodies)


def assert_not_external(h: Harness, value: str) -> None:
    """Not verbatim, not normalized, not as its bare digits."""
    seen = external_dump(h)
    view = normalize(seen).text.casefold()
    assert value not in seen
    assert normalize(value).text.casefold() not in view
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 8:
        assert digits not in re.sub(r"\D", "", view)


def receipt(h: Harness, headers: Mapping[str, str]) -> dict[str, Any]:
    rid = headers["x-hybridgate-receipt"]
    r = httpx.get(f"{h.url}/v1/receipts/{rid}", headers={"authorization": f"Bearer {h.key}"})
    assert r.status_code == 200
    body: dict[str, Any] = r.json()["receipt"]
    return body


def send_openai(h: Harness, body: dict[str, Any]) -> tuple[int, Mapping[str, str]]:
    try:
        raw = h.openai().chat.completions.with_raw_response.create(**body)
    except openai.APIStatusError as e:
        return e.status_code, e.response.headers
    return raw.http_response.status_code, raw.headers


def _tool() -> dict[str, Any]:
    return {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


#: field name -> request placing ``v`` there (model "any": external first, on-prem last)
PLACEMENTS: dict[str, Callable[[str], dict[str, Any]]] = {
    "metadata_key": lambda v: {
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {v: "x"},
    },
    "metadata_value": lambda v: {
        "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"note": v},
    },
    "tool_call_id": lambda v: {
        "tools": [_tool()],
        "messages": [
            {"role": "user", "content": "look it up"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": v, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": v, "content": "done"},
        ],
    },
    "schema_property_name": lambda v: {
        "messages": [{"role": "user", "content": "fill the form"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "form",
                    "parameters": {"type": "object", "properties": {v: {"type": "string"}}},
                },
            }
        ],
    },
    "schema_example": lambda v: {
        "messages": [{"role": "user", "content": "answer in JSON"}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "out",
                "schema": {"type": "object", "properties": {"a": {"examples": [v]}}},
            },
        },
    },
    "tool_arguments_escaped": lambda v: {
        "tools": [_tool()],
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
                            "arguments": '{"q": "' + "".join(f"\\u{ord(c):04x}" for c in v) + '"}',
                        },
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "done"},
        ],
    },
    "user_field": lambda v: {"messages": [{"role": "user", "content": "hi"}], "user": v},
    "stop": lambda v: {"messages": [{"role": "user", "content": "hi"}], "stop": [v]},
    "vendor_extension": lambda v: {
        "messages": [{"role": "user", "content": "hi"}],
        "extra_body": {"x_trace": {"labels": [v]}},
    },
}


@pytest.mark.parametrize("value_name", sorted(VALUES))
@pytest.mark.parametrize("field", sorted(PLACEMENTS))
def test_value_in_any_field_never_leaves_and_is_receipted(
    h: Harness, field: str, value_name: str
) -> None:
    value, cls = VALUES[value_name]
    body = {"model": "any", **PLACEMENTS[field](value)}
    status, headers = send_openai(h, body)
    assert_not_external(h, value)
    assert status in (200, 403, 503), status
    r = receipt(h, headers)
    assert cls in r["data_classes"], (field, value_name, r["data_classes"])
    if status == 200 and r["location"] == "external":
        assert r["action"] == "redact" and r["masked"] >= 1


@pytest.mark.parametrize("number", [4111111111111111, 536221234, 4111111111111111.0])
def test_numbers_are_scanned_with_their_key_as_context(h: Harness, number: float) -> None:
    key = "card" if number != 536221234 else "ssn"
    status, headers = send_openai(
        h,
        {
            "model": "frontier",
            "messages": [{"role": "user", "content": "hi"}],
            "extra_body": {"x_customer": {key: number}},
        },
    )
    # A number cannot be masked: an external-only model has no permitted route.
    assert status == 503
    r = receipt(h, headers)
    assert set(r["data_classes"]) & {"financial", "government_id"}
    assert_not_external(h, str(int(number)))


def test_value_masked_in_content_is_caught_again_in_a_verbatim_field(h: Harness) -> None:
    """Masked once, masked everywhere: the same card as a tool-call id confines the request."""
    card = "5500 0000 0000 0004"
    status, headers = send_openai(
        h,
        {
            "model": "any",
            "tools": [_tool()],
            "messages": [
                {"role": "user", "content": f"my card is {card}"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "ID" + card.replace(" ", ""),
                            "type": "function",
                            "function": {"name": "lookup", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "ID" + card.replace(" ", ""), "content": "ok"},
            ],
        },
    )
    assert status == 200
    assert headers["x-hybridgate-route"] == "llama-onprem"
    assert_not_external(h, card)


def test_value_split_across_content_parts_and_messages(h: Harness) -> None:
    card = "4111 1111 1111 1111"
    bodies = [
        {
            "model": "frontier",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "card: 4111 11"},
                        {"type": "text", "text": "11 1111 1111 thanks"},
                    ],
                }
            ],
        },
        {
            "model": "frontier",
            "messages": [
                {"role": "user", "content": "my card is 4111 1111"},
                {"role": "user", "content": "1111 1111, charge it"},
            ],
        },
    ]
    for body in bodies:
        status, headers = send_openai(h, body)
        assert status == 200
        assert_not_external(h, card)
        assert "financial" in receipt(h, headers)["data_classes"]


def test_anthropic_ids_and_input_keys_are_scanned(h: Harness) -> None:
    with pytest.raises(anthropic.APIStatusError) as e:
        h.anthropic().messages.create(
            model="claude",
            max_tokens=16,
            messages=[
                {"role": "user", "content": "use the tool"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": SSN, "name": "x", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": SSN, "content": "ok"}],
                },
            ],
        )
    assert e.value.status_code == 503  # government_id: on-prem only; claude is external
    assert_not_external(h, SSN)
    assert "government_id" in receipt(h, e.value.response.headers)["data_classes"]
    messages: Any = [
        {"role": "user", "content": "use the tool"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "x", "input": {EMAIL: "zoë@bücher.de"}}
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
    ]
    # Across families tool input travels as JSON text: keys inside it are masked like any
    # string.
    raw = h.anthropic().messages.with_raw_response.create(
        model="gpt-4o", max_tokens=16, messages=messages
    )
    assert raw.http_response.status_code == 200
    r = receipt(h, raw.headers)
    assert "contact" in r["data_classes"] and r["masked"] >= 2
    # Passed through to an Anthropic route, tool input stays an object whose key cannot
    # be masked: the request is confined (here: refused, claude is external), never leaked.
    with pytest.raises(anthropic.APIStatusError) as e2:
        h.anthropic().messages.create(model="claude", max_tokens=16, messages=messages)
    assert e2.value.status_code == 503
    assert "contact" in receipt(h, e2.value.response.headers)["data_classes"]
    assert_not_external(h, EMAIL)
    assert_not_external(h, "zoë@bücher.de")


def test_unscannable_part_is_said_in_the_receipt(h: Harness) -> None:
    status, headers = send_openai(
        h,
        {
            "model": "any",
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "what is this?"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                    ],
                }
            ],
        },
    )
    assert status == 200 and headers["x-hybridgate-route"] == "llama-onprem"
    r = receipt(h, headers)
    assert r["scan_complete"] is False
