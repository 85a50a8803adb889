"""The one small interface every upstream speaks, whatever its wire protocol.

Inside the gateway a chat request is an OpenAI Chat Completions body (a dict),
and answers are OpenAI ``chat.completion`` / ``chat.completion.chunk`` dicts.
Each provider translates to and from its upstream's protocol at this seam, so
scanning, policy, redaction and accounting see one shape.

Errors: a provider raises :class:`hybridgate.errors.UpstreamError` (or its
subclass ``UpstreamTimeout``) with ``retryable`` set for timeouts, 5xx, 429 and
connection failures. A stream that fails before its first chunk raises from the
first ``__anext__``; one that fails later raises mid-iteration, and the
pipeline ends the client's stream with an error event.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from hybridgate.config import RouteConfig


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    #: True when the upstream reported usage; False when the gateway counted it.
    reported: bool = True

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished answer: an OpenAI ``chat.completion`` body and its usage."""

    body: dict[str, Any]
    usage: Usage


class Provider(Protocol):
    route: RouteConfig

    async def chat(self, request: dict[str, Any]) -> Completion:
        """Send a non-streaming chat request (OpenAI body; ``model`` is replaced by the route's)."""
        ...

    def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Stream OpenAI ``chat.completion.chunk`` dicts; the last carries ``usage`` when known."""
        ...

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        """OpenAI embeddings body in, OpenAI embeddings response out."""
        ...

    async def aclose(self) -> None: ...
