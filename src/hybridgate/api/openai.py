"""The OpenAI-compatible surface: chat completions, embeddings, models.

Internal bodies already are OpenAI-shaped, so translation is the identity;
what this module adds is OpenAI's SSE framing (``data: ...`` and ``[DONE]``)
and honouring ``stream_options.include_usage``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.api.common import gateway_headers, json_bytes
from hybridgate.api.exchange import ExchangeRunner, WireFormat
from hybridgate.errors import GatewayError, NotFound
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import decide
from hybridgate.policy import PolicyHolder, Principal
from hybridgate.routing.table import RouteTable
from hybridgate.scan.findings import RequestScan
from hybridgate.translate.completions import (
    chat_to_completion,
    chunk_to_completion,
    completions_to_chat,
)


class OpenAIFramer:
    def __init__(self, request: dict[str, Any]) -> None:
        opts = request.get("stream_options")
        self.include_usage = isinstance(opts, dict) and opts.get("include_usage") is True

    def frames(self, chunk: dict[str, Any]) -> list[bytes]:
        if not self.include_usage:
            if not chunk.get("choices") and "usage" in chunk:
                return []
            chunk.pop("usage", None)
        return [b"data: " + json_bytes(chunk) + b"\n\n"]

    def end(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def error(self, err: GatewayError) -> bytes:
        return b"data: " + err.render("openai") + b"\n\n"


class CompletionsFramer(OpenAIFramer):
    """Legacy completions: the same SSE framing with ``text_completion`` chunks."""

    def frames(self, chunk: dict[str, Any]) -> list[bytes]:
        return super().frames(chunk_to_completion(chunk))


def _identity(x: Any) -> Any:
    return x


CHAT = WireFormat(
    api="openai.chat",
    errors="openai",
    to_internal=_identity,
    from_internal=_identity,
    framer=OpenAIFramer,
)
COMPLETIONS = WireFormat(
    api="openai.completions",
    errors="openai",
    to_internal=completions_to_chat,
    from_internal=chat_to_completion,
    framer=CompletionsFramer,
)
EMBEDDINGS = WireFormat(
    api="openai.embeddings",
    errors="openai",
    to_internal=_identity,
    from_internal=_identity,
    framer=OpenAIFramer,
    kind="embeddings",
)


def openai_routes(
    runner: ExchangeRunner,
    table: RouteTable,
    policy: PolicyHolder,
    alias_target: Callable[[str], str] = lambda name: name,
) -> list[Route]:
    """Chat, legacy completions and embeddings run as exchanges; ``/v1/models`` lists what
    the caller's key may call (some route of the model survives its team's restrictions)."""

    async def chat(request: Request) -> Response:
        return await runner.run(request, CHAT)

    async def completions(request: Request) -> Response:
        return await runner.run(request, COMPLETIONS)

    async def embeddings(request: Request) -> Response:
        return await runner.run(request, EMBEDDINGS)

    def visible(key: KeyInfo) -> list[dict[str, Any]]:
        current, phash = policy.current
        principal = Principal(key_id=key.key_id, team=key.team)
        data = []
        created = int(time.time())
        for name in sorted(table.candidates):
            facts = table.candidates[name]
            if key.is_admin or decide(RequestScan(), principal, facts, current, phash).permitted:
                data.append(
                    {"id": name, "object": "model", "created": created, "owned_by": "hybridgate"}
                )
        return data

    async def models(request: Request) -> Response:
        key = await runner.authenticate(request)
        return JSONResponse(
            {"object": "list", "data": visible(key)}, headers=gateway_headers("req_models", None)
        )

    async def model(request: Request) -> Response:
        key = await runner.authenticate(request)
        wanted = str(request.path_params["model_id"])
        target = alias_target(wanted)
        for m in visible(key):
            if m["id"] == target:
                return JSONResponse(
                    {**m, "id": wanted}, headers=gateway_headers("req_models", None)
                )
        raise NotFound(
            f"The model {wanted!r} does not exist or you do not have access to it.",
            code="model_not_found",
            param="model",
        )

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
    ]
