"""Operator and auditor endpoints: keys, policy reload, receipts, the log, usage.

Keys and policy need the admin key. A receipt bundle is served to the key that
made the request or to the admin. Log endpoints need any valid key: auditors
can also work fully offline from ``hybridgate log export``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from hybridgate.accounting import UsageLog
from hybridgate.api.common import (
    Authenticate,
    guarded,
    parse_json,
    read_body,
    read_json,
)
from hybridgate.config import load_config
from hybridgate.errors import InvalidRequest, NotFound
from hybridgate.keys import KeyInfo, KeyStore
from hybridgate.ledger import Ledger, VerifierKey
from hybridgate.metrics import Metrics
from hybridgate.policy import PolicyHolder
from hybridgate.policy.model import PolicyConfig

log = logging.getLogger("hybridgate.admin")

PolicyLoader = Callable[[], PolicyConfig]


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or not raw.isdigit() or len(raw) > 20:
        raise InvalidRequest(f"query parameter `{name}` must be a non-negative integer", param=name)
    return int(raw)


@dataclass(frozen=True)
class AdminDeps:
    """What the operator and auditor endpoints use, and nothing else of the gateway."""

    authenticate: Authenticate
    keys: KeyStore
    policy: PolicyHolder
    ledger: Ledger
    usage: UsageLog
    metrics: Metrics
    #: Public keys receipts verify with, the active one first.
    verifiers: Callable[[], list[VerifierKey]]


def admin_routes(gw: AdminDeps, reload_policy: PolicyLoader) -> list[Route]:
    guard = functools.partial(guarded, gw.authenticate)

    async def create_key(request: Request, _: KeyInfo) -> Response:
        body = await read_json(request, 64 * 1024)
        if not isinstance(body, dict) or not isinstance(body.get("team"), str):
            raise InvalidRequest("body must be an object with a string `team`")
        budget = body.get("budget_usd")
        try:
            budget_d = None if budget is None else Decimal(str(budget))
        except InvalidOperation:
            raise InvalidRequest("`budget_usd` must be a number") from None
        name = body.get("name")
        key = gw.keys.create(
            body["team"], name=name if isinstance(name, str) else None, budget_usd=budget_d
        )
        return JSONResponse({"key": key, "key_id": key.split("-")[1], "team": body["team"]}, 201)

    async def list_keys(_: Request, __: KeyInfo) -> Response:
        return JSONResponse(
            {
                "data": [
                    {
                        "key_id": k.key_id,
                        "team": k.team,
                        "name": k.name,
                        "budget_usd": None if k.budget_usd is None else str(k.budget_usd),
                        "created_ns": k.created_ns,
                        "revoked": k.revoked_ns is not None,
                    }
                    for k in gw.keys.list()
                ]
            }
        )

    async def revoke_key(request: Request, _: KeyInfo) -> Response:
        gw.keys.revoke(request.path_params["key_id"])
        return JSONResponse({"revoked": request.path_params["key_id"]})

    async def policy_reload(request: Request, _: KeyInfo) -> Response:
        raw = await read_body(request, 1024 * 1024)
        if raw.strip():
            data = parse_json(raw)

            def loader() -> PolicyConfig:
                return PolicyConfig.model_validate(data)

            result = gw.policy.reload(loader)
        else:
            result = gw.policy.reload(reload_policy)
        gw.metrics.policy_reloads.labels("ok" if result.ok else "refused").inc()
        phash = gw.policy.current[1]
        if not result.ok:
            return JSONResponse(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "policy_invalid",
                        "message": "policy refused; the last good policy stays active: "
                        + str(result.error),
                    },
                    "policy_hash": phash,
                },
                status_code=400,
            )
        return JSONResponse({"reloaded": True, "policy_hash": phash})

    async def policy_show(_: Request, __: KeyInfo) -> Response:
        policy, phash = gw.policy.current
        return JSONResponse({"policy_hash": phash, "policy": policy.model_dump(mode="json")})

    async def receipt(request: Request, key: KeyInfo) -> Response:
        rid = request.path_params["receipt_id"]
        signed = gw.ledger.get_receipt(rid)
        if signed is None or (not key.is_admin and signed["receipt"].get("key_id") != key.key_id):
            raise NotFound("no such receipt for this key")
        bundle = gw.ledger.bundle(rid)
        if bundle is None:
            raise NotFound("no such receipt for this key")
        return JSONResponse(bundle)

    async def checkpoint(_: Request, __: KeyInfo) -> Response:
        return PlainTextResponse(gw.ledger.checkpoint())

    async def consistency(request: Request, _: KeyInfo) -> Response:
        first, second = _int_param(request, "first"), _int_param(request, "second")
        try:
            return JSONResponse(gw.ledger.consistency(first, second))
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None

    async def public_key(_: Request, __: KeyInfo) -> Response:
        verifiers = gw.verifiers()
        return JSONResponse(
            {
                "active": verifiers[0].to_string(),
                "keys": [v.to_string() for v in verifiers],
            }
        )

    async def usage(request: Request, key: KeyInfo) -> Response:
        by = request.query_params.get("by")
        scope = None if key.is_admin else key.key_id
        since = _int_param(request, "since_ns") if "since_ns" in request.query_params else None
        out: dict[str, Any] = {"summary": gw.usage.summary(key_id=scope, since_ns=since)}
        if by:
            if by not in ("team", "route", "location", "day", "key", "model", "adapter"):
                raise InvalidRequest(
                    "`by` must be one of team, route, location, day, key, model, adapter"
                )
            out["rows"] = gw.usage.report(by=by, key_id=scope, since_ns=since)  # type: ignore[arg-type]
        return JSONResponse(out)

    return [
        Route("/v1/admin/keys", guard(create_key, admin=True), methods=["POST"]),
        Route("/v1/admin/keys", guard(list_keys, admin=True), methods=["GET"]),
        Route(
            "/v1/admin/keys/{key_id}",
            guard(revoke_key, admin=True),
            methods=["DELETE"],
        ),
        Route(
            "/v1/admin/policy/reload",
            guard(policy_reload, admin=True),
            methods=["POST"],
        ),
        Route("/v1/admin/policy", guard(policy_show, admin=True), methods=["GET"]),
        Route(
            "/v1/receipts/{receipt_id}",
            guard(receipt, admin=False),
            methods=["GET"],
        ),
        Route("/v1/log/checkpoint", guard(checkpoint, admin=False), methods=["GET"]),
        Route("/v1/log/consistency", guard(consistency, admin=False), methods=["GET"]),
        Route("/v1/log/public-key", guard(public_key, admin=False), methods=["GET"]),
        Route("/v1/usage", guard(usage, admin=False), methods=["GET"]),
    ]


def config_policy_loader(config_path: str | None, fallback: PolicyConfig) -> PolicyLoader:
    """Re-read the policy from the config file it came from (or keep the embedded one)."""

    def load() -> PolicyConfig:
        if config_path is None:
            return fallback
        return load_config(config_path).policy

    return load
