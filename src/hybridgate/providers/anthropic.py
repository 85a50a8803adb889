"""Anthropic Messages over HTTP, behind the OpenAI-shaped provider seam.

Requests and answers are translated by :mod:`hybridgate.translate.anthropic`
(pure, tested on its own); this module adds transport, Anthropic's headers and
error body, and the stream guard: a stream without ``message_stop`` is an
error, never a short answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from hybridgate import fastjson
from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers._http import HTTPClient, error_message_from_body, status_error
from hybridgate.providers.base import Completion, Usage
from hybridgate.providers.native import MESSAGES_TERMINAL, sse_events
from hybridgate.providers.sse import SSEDecoder
from hybridgate.translate.anthropic import (
    AnthropicToOpenAIStream,
    anthropic_response_to_openai,
    openai_request_to_anthropic,
)

DEFAULT_ANTHROPIC_BASE = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider:
    """Provider for the Anthropic Messages API (``/v1/messages``)."""

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        base = (route.base_url or DEFAULT_ANTHROPIC_BASE).rstrip("/")
        self._url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if route.api_key:
            headers["x-api-key"] = route.api_key
        headers.update(route.headers)
        self._http = HTTPClient(route, headers)

    def _on_error(self, status: int, raw: bytes) -> UpstreamError:
        # 529 "overloaded" is Anthropic's own retryable status; status_error treats all 5xx so.
        return status_error(self.route, status, error_message_from_body(raw))

    def _body(self, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        body = openai_request_to_anthropic(request)
        body["model"] = self.route.model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    async def chat(self, request: dict[str, Any]) -> Completion:
        message = await self._http.post_json(
            self._url, self._body(request, stream=False), self._on_error
        )
        if message.get("type") == "error":
            err = message.get("error")
            msg = err.get("message") if isinstance(err, dict) else None
            raise status_error(self.route, 500, str(msg or "error body with HTTP 200"))
        body = anthropic_response_to_openai(message)
        u = body["usage"]
        reported = isinstance(message.get("usage"), dict)
        return Completion(
            body=body,
            usage=Usage(u["prompt_tokens"], u["completion_tokens"], reported=reported),
        )

    async def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        decoder = SSEDecoder()
        translator = AnthropicToOpenAIStream(self.route.model)
        raw = self._http.post_stream(self._url, self._body(request, stream=True), self._on_error)
        async with contextlib.aclosing(raw):
            async for data in raw:
                for ev in decoder.feed(data):
                    try:
                        event = fastjson.loads(ev.data)
                    except ValueError:
                        raise UpstreamError(
                            f"route {self.route.name}: upstream sent a stream event "
                            "that is not JSON",
                            code="upstream_protocol_error",
                        ) from None
                    if not isinstance(event, dict):
                        continue
                    if "type" not in event and ev.event:
                        event["type"] = ev.event
                    for chunk in translator.feed(event):
                        yield chunk
                    if translator.done:
                        return
        raise UpstreamError(
            f"route {self.route.name}: upstream stream ended before message_stop",
            code="upstream_stream_cut",
        )

    # -- Messages, passed through (see providers/native.py) ------------------------
    def _native_body(self, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        body = dict(request)
        body["model"] = self.route.model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
        return body

    async def messages(
        self, request: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST /v1/messages with the client's body (model swapped) and forwarded headers."""
        message = await self._http.post_json(
            self._url, self._native_body(request, stream=False), self._on_error, headers
        )
        if message.get("type") == "error" or not isinstance(message.get("content"), list):
            raise status_error(self.route, 500, "upstream answer is not a message")
        return message

    def messages_stream(
        self, request: dict[str, Any], headers: dict[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        raw = self._http.post_stream(
            self._url, self._native_body(request, stream=True), self._on_error, headers
        )
        return sse_events(self.route.name, raw, MESSAGES_TERMINAL)

    async def count_tokens(
        self, request: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """POST /v1/messages/count_tokens (nothing is generated, nothing is billed)."""
        body = dict(request)
        body["model"] = self.route.model
        return await self._http.post_json(
            self._url + "/count_tokens", body, self._on_error, headers
        )

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(
            f"route {self.route.name}: embeddings are not supported by the Anthropic API",
            retryable=False,
            code="not_supported",
        )

    async def aclose(self) -> None:
        await self._http.aclose()
