"""HTTP for policy governance: proposals, approver signatures, apply, history.

Everything needs the admin key, which lets a caller *propose* and *submit*
signatures but never *be* an approver: a signature counts only if it verifies
with a key in the governance document, so the admin key alone cannot change
the policy. Without a governance file these endpoints answer 404.
"""

from __future__ import annotations

import functools

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.api.common import Authenticate, guarded, read_json
from hybridgate.errors import InvalidRequest, NotFound
from hybridgate.governance.service import GovernanceService
from hybridgate.keys import KeyInfo

MAX_PROPOSAL_BYTES = 1024 * 1024


def governance_routes(service: GovernanceService | None, authenticate: Authenticate) -> list[Route]:
    guard = functools.partial(guarded, authenticate)

    def svc() -> GovernanceService:
        if service is None:
            raise NotFound("governance is not configured (set governance_file in the config)")
        return service

    async def status(_: Request, __: KeyInfo) -> Response:
        return JSONResponse(svc().status())

    async def list_proposals(request: Request, _: KeyInfo) -> Response:
        return JSONResponse({"data": svc().list_proposals(request.query_params.get("status"))})

    async def propose(request: Request, key: KeyInfo) -> Response:
        body = await read_json(request, MAX_PROPOSAL_BYTES)
        if not isinstance(body, dict) or not isinstance(body.get("policy"), dict):
            raise InvalidRequest("body must be an object with a `policy` object")
        note = body.get("note", "")
        if not isinstance(note, str):
            raise InvalidRequest("`note` must be a string", param="note")
        out = await svc().propose(body["policy"], proposer=key.name or "admin", note=note)
        return JSONResponse(out, status_code=201)

    async def get_proposal(request: Request, _: KeyInfo) -> Response:
        s = svc()
        return JSONResponse(await s.describe(s.get(request.path_params["proposal_id"])))

    async def sign(request: Request, _: KeyInfo) -> Response:
        body = await read_json(request, 64 * 1024)
        if not isinstance(body, dict):
            raise InvalidRequest("body must be an object with `approver` and `signature`")
        out = await svc().sign(
            request.path_params["proposal_id"], body.get("approver"), body.get("signature")
        )
        return JSONResponse(out)

    async def apply(request: Request, key: KeyInfo) -> Response:
        out = await svc().apply(request.path_params["proposal_id"], applied_by=key.name or "admin")
        return JSONResponse(out)

    async def history(_: Request, __: KeyInfo) -> Response:
        return JSONResponse({"data": svc().history()})

    base = "/v1/admin/policy/proposals"
    return [
        Route("/v1/admin/governance", guard(status, admin=True), methods=["GET"]),
        Route(base, guard(list_proposals, admin=True), methods=["GET"]),
        Route(base, guard(propose, admin=True), methods=["POST"]),
        Route(base + "/{proposal_id}", guard(get_proposal, admin=True), methods=["GET"]),
        Route(base + "/{proposal_id}/signatures", guard(sign, admin=True), methods=["POST"]),
        Route(base + "/{proposal_id}/apply", guard(apply, admin=True), methods=["POST"]),
        Route("/v1/admin/policy/history", guard(history, admin=True), methods=["GET"]),
    ]
