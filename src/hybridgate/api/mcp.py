"""The gateway as an MCP server (streamable HTTP at ``/mcp``) and as OpenAI tools.

* ``/mcp`` — Model Context Protocol over streamable HTTP (the official ``mcp``
  SDK, stateless mode): ``tools/list`` lists every served task adapter,
  ``tools/call`` runs one through :func:`hybridgate.api.mcp_tools.call_tool`.
  Clients authenticate with a virtual key (``Authorization: Bearer``), as on
  every other endpoint; the result's ``_meta`` carries the receipt id.
* ``GET /v1/tools`` — the same tools as OpenAI function-tool definitions.
* ``POST /v1/tools/call`` — ``{"name", "arguments"}`` -> the answer and receipt,
  for agents that run OpenAI function calls themselves.

The tool list is read from the registry on every call, so adapters added or
removed while the gateway runs appear and disappear without a restart.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from hybridgate.api.common import (
    error_response,
    gateway_headers,
    read_json,
)
from hybridgate.api.mcp_tools import ToolDeps, call_tool, openai_tool, tool_definitions
from hybridgate.errors import GatewayError, InvalidRequest
from hybridgate.keys import KeyInfo

MCP_API = "mcp.tools_call"
OPENAI_TOOLS_API = "openai.tools_call"


def _tool_meta(receipt_id: str, adapter_sha: str | None, route: str | None) -> dict[str, Any]:
    return {
        "hybridgate/receipt": receipt_id,
        "hybridgate/adapter_sha256": adapter_sha,
        "hybridgate/route": route,
    }


def mcp_app(deps: ToolDeps) -> tuple[Callable[[Scope, Receive, Send], Any], Any]:
    """The ``/mcp`` ASGI app and its lifespan (the SDK's session manager must run)."""
    import mcp.types as types
    from mcp.server.lowlevel.server import Server
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    async def key_of(ctx: Any) -> KeyInfo:
        request = getattr(ctx, "request", None)
        if not isinstance(request, Request):
            raise InvalidRequest("MCP calls must come over HTTP")
        return await deps.authenticate(request)

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        await key_of(ctx)
        return types.ListToolsResult(
            tools=[
                types.Tool(
                    name=a.name,
                    description=a.description,
                    input_schema=a.input_schema,
                    meta={"hybridgate/model": m, "hybridgate/adapter_sha256": a.sha256},
                )
                for m, a in tool_definitions(deps)
            ]
        )

    async def call(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        key = await key_of(ctx)
        result = await call_tool(deps, key, params.name, params.arguments or {}, api=MCP_API)
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=result.text)],
            is_error=result.is_error,
            meta=_tool_meta(
                result.receipt_id,
                result.adapter.sha256 if result.adapter else None,
                result.route,
            ),
        )

    server: Server[Any] = Server(
        "hybridgate", version="1", on_list_tools=list_tools, on_call_tool=call
    )
    manager = StreamableHTTPSessionManager(app=server, stateless=True, json_response=True)

    class Endpoint:
        """A plain ASGI app (Starlette routes a class instance as ASGI, not as a handler)."""

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            request = Request(scope)
            try:  # refuse unauthenticated requests before the protocol layer sees them
                await deps.authenticate(request)
            except GatewayError as err:
                await error_response(err, "openai", gateway_headers("req_mcp", None))(
                    scope, receive, send
                )
                return
            await manager.handle_request(scope, receive, send)

    @contextlib.asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with manager.run():
            yield

    return Endpoint(), lifespan


def tool_routes(deps: ToolDeps) -> tuple[list[Route | Mount], Any]:
    """Routes for ``/mcp`` and ``/v1/tools``, and the lifespan the MCP part needs."""
    endpoint, lifespan = mcp_app(deps)

    async def list_openai(request: Request) -> Response:
        try:
            await deps.authenticate(request)
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_tools", None))
        data = [openai_tool(a, m) for m, a in tool_definitions(deps)]
        return JSONResponse({"object": "list", "data": data})

    async def call_openai(request: Request) -> Response:
        try:
            key = await deps.authenticate(request)
            body = await read_json(request, deps.max_body_bytes)
            if not isinstance(body, dict) or not isinstance(body.get("name"), str):
                raise InvalidRequest('body must be {"name": string, "arguments": object}')
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_tools", None))
        args = body.get("arguments", {})
        if isinstance(args, str):  # OpenAI function calls carry arguments as a JSON string
            import json

            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        max_tokens = body.get("max_tokens")
        result = await call_tool(
            deps,
            key,
            body["name"],
            args,
            api=OPENAI_TOOLS_API,
            max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        )
        payload: dict[str, Any] = {
            "name": body["name"][:64],
            "content": result.text,
            "is_error": result.is_error,
            "receipt_id": result.receipt_id,
            "adapter_sha256": result.adapter.sha256 if result.adapter else None,
            "route": result.route,
        }
        if result.error_code:
            payload["error_code"] = result.error_code
        headers = gateway_headers("req_tools", result.route, result.receipt_id)
        return JSONResponse(payload, headers=headers)

    routes: list[Route | Mount] = [
        Route("/mcp", endpoint, methods=["GET", "POST", "DELETE"]),
        Route("/v1/tools", list_openai, methods=["GET"]),
        Route("/v1/tools/call", call_openai, methods=["POST"]),
    ]
    return routes, lifespan
