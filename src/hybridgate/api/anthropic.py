"""The Anthropic Messages surface (``POST /v1/messages``), streaming included.

Requests are translated to the internal (OpenAI) shape before anything else
runs, so the scanner and policy see every system block, tool_use input and
tool_result; answers and stream events are translated back into the exact
event sequence the official ``anthropic`` SDK expects.
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from hybridgate.api.common import error_body, sse_event
from hybridgate.api.exchange import ExchangeRunner, WireFormat
from hybridgate.api.messages import MessagesAPI
from hybridgate.errors import GatewayError
from hybridgate.translate.anthropic import (
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)


class AnthropicFramer:
    def __init__(self, request: dict[str, Any]) -> None:
        self._stream = OpenAIToAnthropicStream(model=str(request.get("model", "")))

    def frames(self, chunk: dict[str, Any]) -> list[bytes]:
        return [sse_event(e) for e in self._stream.feed(chunk)]

    def end(self) -> list[bytes]:
        return [sse_event(e) for e in self._stream.finish()]

    def error(self, err: GatewayError) -> bytes:
        return sse_event(error_body(err, "anthropic"))


MESSAGES = WireFormat(
    api="anthropic.messages",
    errors="anthropic",
    to_internal=anthropic_request_to_openai,
    from_internal=openai_response_to_anthropic,
    framer=AnthropicFramer,
)


def anthropic_routes(runner: ExchangeRunner) -> list[Route]:
    """Messages with same-family pass-through (see :mod:`hybridgate.api.messages`)."""
    api = MessagesAPI(runner)
    return [
        Route("/v1/messages", api.create, methods=["POST"]),
        Route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"]),
    ]
