"""Shadow and audit comparisons call a route's chat interface whatever API the exchange used.

A Responses or Messages exchange sends its own wire format upstream; the comparison
translates that body, and a real OpenAI-wire server accepts the result.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hybridgate.config import RouteConfig
from hybridgate.distill.service import comparison_body
from hybridgate.errors import InvalidRequest
from hybridgate.providers.openai_compat import OpenAICompatProvider
from hybridgate.testing import OpenAIUpstream

TICKET = "My invoice shows a double charge"

CASES: list[tuple[str, dict[str, Any]]] = [
    (
        "openai.responses",
        {
            "model": "auto",
            "instructions": "Label the ticket.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": TICKET}]}],
            "max_output_tokens": 16,
            "stream": True,
        },
    ),
    (
        "anthropic.messages",
        {
            "model": "auto",
            "system": "Label the ticket.",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": [{"type": "text", "text": TICKET}]}],
            "stream": True,
        },
    ),
    (
        "openai.chat",
        {
            "model": "auto",
            "messages": [
                {"role": "system", "content": "Label the ticket."},
                {"role": "user", "content": TICKET},
            ],
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    ),
]


@pytest.mark.parametrize(("api", "sent"), CASES, ids=[c[0] for c in CASES])
def test_comparison_body_is_a_chat_request_a_chat_server_answers(
    api: str, sent: dict[str, Any]
) -> None:
    body = comparison_body(api, sent)
    assert "stream" not in body and "stream_options" not in body
    assert "input" not in body and "system" not in body
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user"]

    async def ask(url: str) -> str:
        route = RouteConfig(
            name="r", provider="openai_compat", model="m", base_url=url, location="on_prem"
        )
        p = OpenAICompatProvider(route)
        try:
            c = await p.chat(body)
        finally:
            await p.aclose()
        return str(c.body["choices"][0]["message"]["content"])

    with OpenAIUpstream() as up:
        answer = asyncio.run(ask(up.base_url))
        received = up.requests[-1].body
    assert answer == f"echo: {TICKET}"
    assert received["messages"][0]["content"] == "Label the ticket."


def test_a_body_no_chat_route_can_take_is_refused_not_sent() -> None:
    with pytest.raises(InvalidRequest):
        comparison_body("openai.responses", {"model": "auto", "input": 7})
