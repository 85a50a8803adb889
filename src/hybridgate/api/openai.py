"""The OpenAI-compatible surface: chat completions, embeddings, models.

Internal bodies already are OpenAI-shaped, so translation is the identity;
what this module adds is OpenAI's SSE framing (``data: ...`` and ``[DONE]``)
and honouring ``stream_options.include_usage``.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.api.common import (
    error_body,
    error_response,
    gateway_headers,
    json_bytes,
    make_authenticator,
)
from hybridgate.api.exchange import WireFormat, run_exchange
from hybridgate.errors import GatewayError, NotFound
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import Pipeline
from hybridgate.policy import Principal, evaluate
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
        return b"data: " + json_bytes(error_body(err, "openai")) + b"\n\n"


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


def openai_routes(pipeline: Pipeline) -> list[Route]:
    gw = pipeline.gw

    async def chat(request: Request) -> Response:
        return await run_exchange(request, pipeline, CHAT)

    async def completions(request: Request) -> Response:
        return await run_exchange(request, pipeline, COMPLETIONS)

    async def embeddings(request: Request) -> Response:
        return await run_exchange(request, pipeline, EMBEDDINGS)

    def visible(key: KeyInfo) -> list[dict[str, Any]]:
        policy, phash = gw.policy.current
        principal = Principal(key_id=key.key_id, team=key.team)
        data = []
        created = int(time.time())
        for name in sorted(gw.candidates):
            facts = gw.candidates[name]
            # What this key may call: some route of the model survives its team's restrictions.
            if key.is_admin or evaluate(RequestScan(), principal, facts, policy, phash).permitted:
                data.append(
                    {"id": name, "object": "model", "created": created, "owned_by": "hybridgate"}
                )
        return data

    async def models(request: Request) -> Response:
        try:
            key = await make_authenticator(gw)(request)
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_models", None))
        return JSONResponse(
            {"object": "list", "data": visible(key)}, headers=gateway_headers("req_models", None)
        )

    async def model(request: Request) -> Response:
        try:
            key = await make_authenticator(gw)(request)
            wanted = str(request.path_params["model_id"])
            target = gw.alias_target(wanted)
            for m in visible(key):
                if m["id"] == target:
                    m = {**m, "id": wanted}
                    return JSONResponse(m, headers=gateway_headers("req_models", None))
            raise NotFound(
                f"The model {wanted!r} does not exist or you do not have access to it.",
                code="model_not_found",
                param="model",
            )
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_models", None))

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
    ]
