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

import functools
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.actions.model import MAX_BODY_BYTES, parse_action_request, parse_decision
from hybridgate.actions.service import ActionService, VerdictResult
from hybridgate.api.common import Authenticate, guarded, read_json
from hybridgate.errors import (
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from hybridgate.keys import KeyInfo

log = logging.getLogger("hybridgate.api.actions")


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
    guard = functools.partial(guarded, authenticate)

    async def authorize(request: Request, key: KeyInfo) -> Response:
        if key.is_admin or key.key_id is None:
            raise PermissionDenied("actions are authorized for a virtual key, not the admin key")
        req = parse_action_request(await read_json(request, MAX_BODY_BYTES))
        return _verdict(await service.authorize(req, key))

    async def gate(request: Request) -> Response:
        body = await read_json(request, MAX_BODY_BYTES)
        req = parse_action_request(body)
        return _verdict(await service.gate(req, body.get("receipt")))

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
        Route("/v1/actions/authorize", guard(authorize, admin=False), methods=["POST"]),
        Route("/v1/gate", gate, methods=["POST"]),
        Route(
            "/v1/admin/approvals",
            guard(list_approvals, admin=True),
            methods=["GET"],
        ),
        Route(
            "/v1/admin/approvals/{approval_id}",
            guard(get_approval, admin=True),
            methods=["GET"],
        ),
        Route(
            "/v1/admin/approvals/{approval_id}",
            guard(decide, admin=True),
            methods=["POST"],
        ),
        Route(
            "/v1/admin/approvers",
            guard(list_approvers, admin=True),
            methods=["GET"],
        ),
        Route("/v1/admin/approvers", guard(add_approver, admin=True), methods=["POST"]),
        Route(
            "/v1/admin/approvers/{name}",
            guard(remove_approver, admin=True),
            methods=["DELETE"],
        ),
    ]
