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

from hybridgate.api.common import error_body, error_response, gateway_headers, json_bytes
from hybridgate.api.exchange import WireFormat, run_exchange
from hybridgate.errors import GatewayError
from hybridgate.pipeline import Pipeline
from hybridgate.policy import Principal, evaluate
from hybridgate.scan.findings import RequestScan


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


def _identity(x: Any) -> Any:
    return x


CHAT = WireFormat(
    api="openai.chat",
    errors="openai",
    to_internal=_identity,
    from_internal=_identity,
    framer=OpenAIFramer,
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

    async def embeddings(request: Request) -> Response:
        return await run_exchange(request, pipeline, EMBEDDINGS)

    async def models(request: Request) -> Response:
        from hybridgate.api.common import make_authenticator

        try:
            key = await make_authenticator(gw)(request)
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_models", None))
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
        return JSONResponse(
            {"object": "list", "data": data}, headers=gateway_headers("req_models", None)
        )

    return [
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/embeddings", embeddings, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
    ]
