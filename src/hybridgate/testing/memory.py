"""An in-memory provider, for tests that drive the app through ``httpx.ASGITransport``.

It records what it was sent (the same proof the loopback upstreams give) and
answers with a scripted behaviour, without sockets. Register it for a kind::

    upstream = MemoryUpstream()
    registry = default_registry().register("memory", upstream.factory)
    app = create_app(config, providers=registry)

Use the loopback servers instead where the wire matters: SDK behaviour,
stream cut-offs, kill and restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hybridgate.config import RouteConfig
from hybridgate.providers.base import Completion, Provider, Usage

#: Given the request sent upstream, raise (a fault) or return the answer's text.
Script = Callable[[dict[str, Any]], str]


def echo(request: dict[str, Any]) -> str:
    """The default answer: the last user message, so tests can see what arrived."""
    for m in reversed(request.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return str(m["content"])
    return "ok"


@dataclass
class MemoryUpstream:
    """Shared by every route built from it; ``received`` holds (route, request) pairs."""

    script: Script = echo
    #: Tokens the answer reports, or None to report no usage.
    usage: Usage | None = field(default_factory=lambda: Usage(10, 5))
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: When set, calls wait on it before answering (to hold a request open).
    gate: asyncio.Event | None = None
    #: When set, the usage reported for each request (overrides ``usage``).
    usage_for: Callable[[dict[str, Any]], Usage] | None = None
    #: Seconds each call takes (keeps concurrent requests in flight together).
    latency_s: float = 0.0

    def factory(self, route: RouteConfig) -> Provider:
        return MemoryProvider(route, self)


class MemoryProvider:
    def __init__(self, route: RouteConfig, upstream: MemoryUpstream) -> None:
        self.route = route
        self._up = upstream

    async def _answer(self, request: dict[str, Any]) -> str:
        self._up.received.append((self.route.name, request))
        if self._up.gate is not None:
            await self._up.gate.wait()
        if self._up.latency_s:
            await asyncio.sleep(self._up.latency_s)
        return self._up.script(request)

    def _usage(self, request: dict[str, Any]) -> Usage | None:
        if self._up.usage_for is not None:
            return self._up.usage_for(request)
        return self._up.usage

    async def chat(self, request: dict[str, Any]) -> Completion:
        text = await self._answer(request)
        usage = self._usage(request) or Usage(0, 0, reported=False)
        body = {
            "id": "chatcmpl-memory",
            "object": "chat.completion",
            "created": 0,
            "model": self.route.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "total_tokens": usage.total_tokens,
            },
        }
        return Completion(body=body, usage=usage)

    async def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text = await self._answer(request)
        base = {"id": "chatcmpl-memory", "object": "chat.completion.chunk", "created": 0}
        for i, word in enumerate(text.split(" ")):
            piece = word if i == 0 else " " + word
            yield {**base, "choices": [{"index": 0, "delta": {"content": piece}}]}
        yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        u = self._usage(request)
        if u is not None:
            yield {
                **base,
                "choices": [],
                "usage": {
                    "prompt_tokens": u.prompt_tokens,
                    "completion_tokens": u.completion_tokens,
                    "total_tokens": u.total_tokens,
                },
            }

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        await self._answer(request)
        inp = request.get("input")
        n = 1 if isinstance(inp, str) else len(inp or [])
        return {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.0, 1.0]} for i in range(n)
            ],
            "model": self.route.model,
            "usage": {"prompt_tokens": 3 * n, "total_tokens": 3 * n},
        }

    async def aclose(self) -> None:
        return None
