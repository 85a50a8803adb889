"""OpenAI Chat Completions over HTTP: OpenAI itself, vLLM, llama.cpp, Ollama, LM Studio.

The internal request shape *is* the OpenAI shape, so this provider only swaps
the model name, asks for streamed usage, and guards the protocol: a stream
that ends without ``[DONE]`` or a ``finish_reason`` is an error, never a short
answer.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from hybridgate import fastjson
from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers._http import (
    HTTPClient,
    error_message_from_body,
    sanitize_message,
    status_error,
)
from hybridgate.providers.base import Completion, Usage
from hybridgate.providers.native import RESPONSES_TERMINAL, sse_events
from hybridgate.providers.sse import SSEDecoder
from hybridgate.providers.tokens import (
    estimate_completion_tokens,
    estimate_request_tokens,
    estimate_tokens,
)

DEFAULT_OPENAI_BASE = "https://api.openai.com/v1"


def _reported_usage(body: dict[str, Any]) -> Usage | None:
    u = body.get("usage")
    if not isinstance(u, dict):
        return None
    pt, ct = u.get("prompt_tokens"), u.get("completion_tokens")
    if isinstance(pt, int) and not isinstance(pt, bool) and pt >= 0:
        ct_ok = isinstance(ct, int) and not isinstance(ct, bool) and ct >= 0
        return Usage(pt, ct if ct_ok else 0, reported=True)  # type: ignore[arg-type]
    return None


def usage_dict(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


class OpenAICompatProvider:
    """Provider for any server speaking OpenAI's ``/chat/completions`` and ``/embeddings``."""

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        base = route.base_url or DEFAULT_OPENAI_BASE
        self._base = base.rstrip("/")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if route.api_key:
            headers["authorization"] = f"Bearer {route.api_key}"
        headers.update(route.headers)
        self._http = HTTPClient(route, headers)

    def _on_error(self, status: int, raw: bytes) -> UpstreamError:
        return status_error(self.route, status, error_message_from_body(raw))

    def _body(self, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        body = dict(request)
        body["model"] = self.route.model
        limit = body.get("max_completion_tokens")
        if self.route.provider != "openai" and limit is not None and "max_tokens" not in body:
            # Self-hosted OpenAI-compatible servers (llama.cpp, Ollama, older vLLM) read
            # only ``max_tokens``; one that ignored the newer field would generate past
            # the limit the budget reservation counted on.
            body["max_tokens"] = limit
        if stream:
            body["stream"] = True
            opts = body.get("stream_options")
            body["stream_options"] = {
                **(opts if isinstance(opts, dict) else {}),
                "include_usage": True,
            }
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def chat(self, request: dict[str, Any]) -> Completion:
        body = await self._http.post_json(
            self._base + "/chat/completions", self._body(request, stream=False), self._on_error
        )
        choices = body.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise UpstreamError(
                f"route {self.route.name}: upstream answer has no choices",
                code="upstream_protocol_error",
            )
        usage = _reported_usage(body)
        if usage is None:
            message = choices[0].get("message")
            completion = estimate_completion_tokens(message) if isinstance(message, dict) else 0
            usage = Usage(estimate_request_tokens(request), completion, reported=False)
            body["usage"] = usage_dict(usage)
        return Completion(body=body, usage=usage)

    async def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        decoder = SSEDecoder()
        finished = done = False
        usage_seen = False
        text_chars: list[str] = []
        last: dict[str, Any] = {}
        raw = self._http.post_stream(
            self._base + "/chat/completions", self._body(request, stream=True), self._on_error
        )
        async with contextlib.aclosing(raw):
            async for data in raw:
                for ev in decoder.feed(data):
                    payload = ev.data.strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    chunk = self._parse_chunk(payload)
                    if chunk is None:
                        continue
                    last = chunk
                    if _reported_usage(chunk) is not None:
                        usage_seen = True
                    for choice in chunk.get("choices") or ():
                        if not isinstance(choice, dict):
                            continue
                        if choice.get("finish_reason"):
                            finished = True
                        delta = choice.get("delta")
                        if isinstance(delta, dict):
                            _collect_delta_text(delta, text_chars)
                    yield chunk
                if done:
                    break
        if not done and not finished:
            raise UpstreamError(
                f"route {self.route.name}: upstream stream ended before it finished",
                code="upstream_stream_cut",
            )
        if not usage_seen:
            usage = Usage(
                estimate_request_tokens(request),
                estimate_tokens("".join(text_chars)),
                reported=False,
            )
            yield {
                "id": last.get("id", "chatcmpl-hybridgate"),
                "object": "chat.completion.chunk",
                "created": last.get("created", int(time.time())),
                "model": last.get("model", self.route.model),
                "choices": [],
                "usage": {**usage_dict(usage), "estimated": True},
            }

    def _parse_chunk(self, payload: str) -> dict[str, Any] | None:
        if not payload:
            return None
        try:
            chunk = fastjson.loads(payload)
        except ValueError:
            raise UpstreamError(
                f"route {self.route.name}: upstream sent a stream event that is not JSON",
                code="upstream_protocol_error",
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamError(
                f"route {self.route.name}: upstream sent a stream event that is not an object",
                code="upstream_protocol_error",
            )
        err = chunk.get("error")
        if err is not None:
            msg = err.get("message") if isinstance(err, dict) else str(err)
            clean = sanitize_message(str(msg or "no message"), (self.route.api_key or "",))
            raise UpstreamError(
                f"route {self.route.name}: upstream reported an error mid-stream: {clean}",
                code="upstream_error",
            )
        return chunk

    # -- the Responses API, passed through (see providers/native.py) --------------
    def _responses_body(self, request: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        body = dict(request)
        body["model"] = self.route.model
        if stream:
            body["stream"] = True
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return body

    async def responses(self, request: dict[str, Any]) -> dict[str, Any]:
        """POST /responses with the body as the client wrote it (model swapped)."""
        out = await self._http.post_json(
            self._base + "/responses", self._responses_body(request, stream=False), self._on_error
        )
        if not isinstance(out.get("output"), list):
            raise UpstreamError(
                f"route {self.route.name}: upstream response has no output",
                code="upstream_protocol_error",
            )
        return out

    def responses_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        raw = self._http.post_stream(
            self._base + "/responses", self._responses_body(request, stream=True), self._on_error
        )
        return sse_events(self.route.name, raw, RESPONSES_TERMINAL)

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        body = dict(request)
        body["model"] = self.route.model
        out = await self._http.post_json(self._base + "/embeddings", body, self._on_error)
        if not isinstance(out.get("data"), list):
            raise UpstreamError(
                f"route {self.route.name}: upstream embeddings answer has no data",
                code="upstream_protocol_error",
            )
        return out

    async def aclose(self) -> None:
        await self._http.aclose()


def _collect_delta_text(delta: dict[str, Any], into: list[str]) -> None:
    content = delta.get("content")
    if isinstance(content, str):
        into.append(content)
    calls = delta.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                for key in ("name", "arguments"):
                    if isinstance(fn.get(key), str):
                        into.append(fn[key])
