"""Messages with same-family pass-through, driven by the official ``anthropic`` SDK:
every field reaches an Anthropic upstream; across families untranslatable fields
are refused by name; count_tokens; system messages; documents."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest

from gateway_harness import Harness, running_gateway


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _clean(h: Harness) -> Iterator[None]:
    for up in (h.external, h.claude, h.onprem):
        up.clear()
    yield
    for up in (h.external, h.claude, h.onprem):
        up.reset()


NATIVE_FIELDS: dict[str, Any] = {
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "metadata": {"user_id": "u-1"},
    "top_k": 5,
    "context_management": {"edits": [{"type": "clear_tool_uses_20250919"}]},
    "output_config": {"effort": "low"},
}


@pytest.mark.parametrize("stream", [False, True])
def test_every_field_and_beta_header_reach_anthropic(h: Harness, stream: bool) -> None:
    client = h.anthropic()
    kwargs: dict[str, Any] = dict(
        model="claude",
        max_tokens=2048,
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "hi there", "cache_control": {"type": "ephemeral"}}
                ],
            }
        ],
        tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 1}],
        extra_body={k: v for k, v in NATIVE_FIELDS.items()},
        extra_headers={"anthropic-beta": "context-management-2025-06-27"},
    )
    if stream:
        with client.messages.stream(**kwargs) as s:
            text = "".join(s.text_stream)
            msg = s.get_final_message()
    else:
        msg = client.messages.create(**kwargs)
        text = "".join(b.text for b in msg.content if b.type == "text")
    assert "hi there" in text
    assert msg.model == "claude"
    assert not msg.id.startswith("msg_msg_")
    sent = h.claude.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers.get("anthropic-beta") == "context-management-2025-06-27"
    body = sent.body
    for key, value in NATIVE_FIELDS.items():
        assert body[key] == value, key
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][0]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][0]["type"] == "web_search_20250305"
    assert body["model"] == "claude-3-5-sonnet-latest"


def test_masked_values_restored_on_native_route(h: Harness) -> None:
    msg = h.anthropic().messages.create(
        model="claude",
        max_tokens=100,
        messages=[{"role": "user", "content": "mail jane.doe@example.com today"}],
    )
    text = "".join(b.text for b in msg.content if b.type == "text")
    assert "jane.doe@example.com" in text  # restored for the client
    assert "jane.doe@example.com" not in h.claude.all_text()  # masked upstream


def test_system_role_inside_messages(h: Harness) -> None:
    for model, up in (("claude", h.claude), ("llama-onprem", h.onprem)):
        msg = h.anthropic().messages.create(
            model=model,
            max_tokens=100,
            messages=[
                {"role": "user", "content": "first"},
                {"role": "assistant", "content": "ok"},
                {"role": "system", "content": "be terse"},
                {"role": "user", "content": "second"},
            ],
        )
        assert msg.content
        assert "be terse" in up.all_text()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("thinking", {"type": "enabled", "budget_tokens": 1024}),
        ("top_k", 3),
        ("output_config", {"effort": "low"}),
        ("context_management", {"edits": []}),
    ],
)
def test_cross_family_fields_refused_by_name(h: Harness, field: str, value: Any) -> None:
    with pytest.raises(anthropic.BadRequestError, match=field):
        h.anthropic().messages.create(
            model="llama-onprem",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            extra_body={field: value},
        )
    assert h.onprem.requests == []


def test_server_tool_refused_off_anthropic(h: Harness) -> None:
    with pytest.raises(anthropic.BadRequestError, match="server tool"):
        h.anthropic().messages.create(
            model="llama-onprem",
            max_tokens=10,
            messages=[{"role": "user", "content": "x"}],
            tools=[{"type": "web_search_20250305", "name": "web_search"}],
        )


def test_response_format_refused_on_anthropic_route(h: Harness) -> None:
    with pytest.raises(openai.BadRequestError, match="response_format"):
        h.openai().chat.completions.create(
            model="claude",
            messages=[{"role": "user", "content": "x"}],
            response_format={"type": "json_object"},
        )
    assert h.claude.requests == []


def test_count_tokens_native_and_estimated(h: Harness) -> None:
    client = h.anthropic()
    n = client.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "one two three"}]
    )
    assert n.input_tokens == 4  # the loopback counts words of every string (role too)
    assert h.claude.requests[-1].path == "/v1/messages/count_tokens"
    est = client.messages.count_tokens(
        model="llama-onprem", messages=[{"role": "user", "content": "one two three"}]
    )
    assert est.input_tokens > 0
    assert h.onprem.requests == []  # estimated locally, nothing sent


def test_documents_text_scanned_and_binary_confined(h: Harness) -> None:
    client = h.anthropic()
    ssn_doc: Any = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "SSN 536-22-1234"},
    }
    raw = client.messages.with_raw_response.create(
        model="any",
        max_tokens=50,
        messages=[{"role": "user", "content": [ssn_doc, {"type": "text", "text": "summarise"}]}],
    )
    assert raw.headers["x-hybridgate-route"] == "llama-onprem"
    pdf: Any = {
        "type": "document",
        "source": {
            "type": "base64",
            "media_type": "application/pdf",
            "data": base64.b64encode(b"%PDF-1.4 secret").decode(),
        },
    }
    # an unreadable document is unknown data: confined, so an external-only model refuses
    with pytest.raises(anthropic.APIStatusError, match="unscannable"):
        client.messages.create(
            model="frontier",
            max_tokens=50,
            messages=[{"role": "user", "content": [pdf, {"type": "text", "text": "read"}]}],
        )
    assert h.claude.requests == [] and h.external.requests == []
    # the on-prem route speaks Chat Completions, which cannot carry the PDF: refused by name
    with pytest.raises(anthropic.BadRequestError, match="document"):
        client.messages.create(
            model="any",
            max_tokens=50,
            messages=[{"role": "user", "content": [pdf, {"type": "text", "text": "read"}]}],
        )
    assert h.claude.requests == [] and h.external.requests == []
