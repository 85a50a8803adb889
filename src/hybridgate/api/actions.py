"""HTTP for the action gate: authorize, the reference gate, approvals and approvers.

Verdicts (ALLOW / DENY / HALTED) are answers, rendered as ``{"verdict": ...}``
with their own status; anything else that goes wrong (bad JSON, bad key, a
forged approver signature) is a :class:`GatewayError` rendered as
``{"error": {"type", "code", "message"}}``. Bodies are read with a hard cap
and must be UTF-8 JSON without NaN or infinities.

``/v1/gate`` needs no API key on purpose: the receipt is the authorization
(signed, bound to one action, agent and parameter set, short-lived and
single-use), exactly what an executor without access to the key store can
check. Put it where only agents can reach it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.actions.model import MAX_BODY_BYTES, parse_action_request, parse_decision
from hybridgate.actions.service import ActionService, VerdictResult
from hybridgate.errors import (
    GatewayError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)
from hybridgate.keys import KeyInfo

log = logging.getLogger("hybridgate.api.actions")

Authenticate = Callable[[Request], Awaitable[KeyInfo]]
Handler = Callable[[Request], Awaitable[Response]]


def error_json(err: GatewayError) -> JSONResponse:
    headers = {"www-authenticate": "Bearer"} if err.status == 401 else None
    return JSONResponse(
        {"error": {"type": err.openai_type, "code": err.code, "message": err.message}},
        status_code=err.status,
        headers=headers,
    )


async def read_json(request: Request, limit: int = MAX_BODY_BYTES) -> Any:
    """The body as JSON, refused with 413 once it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit() or len(declared) > 18:
            raise InvalidRequest("invalid Content-Length header")
        if int(declared) > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc.msg}") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"{name} is not valid JSON")


def _verdict(result: VerdictResult) -> JSONResponse:
    return JSONResponse(result.body, status_code=result.status)


def _int_query(request: Request, name: str, default: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= maximum:
        raise InvalidRequest(f"`{name}` must be an integer from 1 to {maximum}", param=name)
    return int(raw)


def action_routes(service: ActionService, authenticate: Authenticate) -> list[Route]:
    """Routes for the action gate, built around one service and the gateway's authenticator."""

    def guarded(
        handler: Callable[[Request, KeyInfo], Awaitable[Response]], *, admin: bool
    ) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                key = await authenticate(request)
                if admin and not key.is_admin:
                    raise PermissionDenied("this endpoint needs the admin key")
                return await handler(request, key)
            except GatewayError as err:
                return error_json(err)

        return endpoint

    async def authorize(request: Request, key: KeyInfo) -> Response:
        if key.is_admin or key.key_id is None:
            raise PermissionDenied("actions are authorized for a virtual key, not the admin key")
        req = parse_action_request(await read_json(request))
        return _verdict(await service.authorize(req, key))

    async def gate(request: Request) -> Response:
        try:
            body = await read_json(request)
            req = parse_action_request(body)
            return _verdict(await service.gate(req, body.get("receipt")))
        except GatewayError as err:
            return error_json(err)

    async def list_approvals(request: Request, _: KeyInfo) -> Response:
        status = request.query_params.get("status")
        if status is not None and status not in ("pending", "approved", "rejected", "expired"):
            raise InvalidRequest(
                "`status` must be pending, approved, rejected or expired", param="status"
            )
        limit = _int_query(request, "limit", 100, 1000)
        return JSONResponse({"data": service.list_approvals(status, limit)})

    async def get_approval(request: Request, _: KeyInfo) -> Response:
        return JSONResponse(service.get_approval(request.path_params["approval_id"]))

    async def decide(request: Request, _: KeyInfo) -> Response:
        dec = parse_decision(await read_json(request, 16 * 1024))
        return JSONResponse(await service.decide(request.path_params["approval_id"], dec))

    async def list_approvers(_: Request, __: KeyInfo) -> Response:
        return JSONResponse({"data": [a.to_json() for a in service.approvers.list()]})

    async def add_approver(request: Request, _: KeyInfo) -> Response:
        body = await read_json(request, 16 * 1024)
        if not isinstance(body, dict) or not isinstance(body.get("public_key"), str):
            raise InvalidRequest("body must be an object with a string `public_key`")
        name = body.get("name")
        if name is not None and not isinstance(name, str):
            raise InvalidRequest("`name` must be a string", param="name")
        approver = await service.approvers.register(body["public_key"], name)
        return JSONResponse(approver.to_json(), status_code=201)

    async def remove_approver(request: Request, _: KeyInfo) -> Response:
        name = request.path_params["name"]
        if not await service.approvers.remove(name):
            raise NotFound("no approver registered through the API with that name")
        return JSONResponse({"removed": name})

    return [
        Route("/v1/actions/authorize", guarded(authorize, admin=False), methods=["POST"]),
        Route("/v1/gate", gate, methods=["POST"]),
        Route("/v1/admin/approvals", guarded(list_approvals, admin=True), methods=["GET"]),
        Route(
            "/v1/admin/approvals/{approval_id}",
            guarded(get_approval, admin=True),
            methods=["GET"],
        ),
        Route("/v1/admin/approvals/{approval_id}", guarded(decide, admin=True), methods=["POST"]),
        Route("/v1/admin/approvers", guarded(list_approvers, admin=True), methods=["GET"]),
        Route("/v1/admin/approvers", guarded(add_approver, admin=True), methods=["POST"]),
        Route(
            "/v1/admin/approvers/{name}", guarded(remove_approver, admin=True), methods=["DELETE"]
        ),
    ]
