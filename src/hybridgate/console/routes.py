"""The console's HTTP surface: pages, a small JSON API for the page script, static assets.

Security, in one place:

* sign-in takes the admin key or a virtual key in a form (login CSRF token in
  a separate cookie), at most a few attempts a minute per client address
  (429 beyond; counted across replicas when they share Redis), and opens a
  session whose random id is the only thing the browser keeps:
  ``HttpOnly; SameSite=Strict; Path=/console`` (``Secure`` behind HTTPS); the
  store keeps only its keyed hash, so any replica sharing the store serves
  the session (:mod:`hybridgate.console.session`);
* every POST must carry the session's CSRF token (a form field or the
  ``x-csrf-token`` header) and, when the browser sends one, a same-origin
  ``Origin``;
* every response carries a strict Content-Security-Policy (scripts and styles
  only from ``/console/static``, nothing inline, no framing), ``nosniff``,
  ``same-origin`` referrers and ``no-store``;
* team sessions are read-only and see only their own key's traffic; deciding
  a held action or signing a proposal needs an admin session *and* the
  approver's own signature, verified by the same code as the CLI's.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from hybridgate.actions.model import parse_decision
from hybridgate.api.common import error_body, read_body, read_json
from hybridgate.console import data, views
from hybridgate.console.data import ConsoleDeps
from hybridgate.console.session import COOKIE, LOGIN_COOKIE, Session, same_token
from hybridgate.console.throttle import SignInThrottle, client_bucket, retry_after
from hybridgate.errors import (
    AuthenticationError,
    GatewayError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from hybridgate.governance.service import GovernanceService

log = logging.getLogger("hybridgate.console")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
}
STATIC_FILES = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}
MAX_FORM_BYTES = 8 * 1024

Handler = Callable[[Request], Awaitable[Response]]
SessionHandler = Callable[[Request, Session], Awaitable[Response]]


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def _same_origin(request: Request) -> bool:
    """False for a request a browser marks as coming from another site or origin."""
    if request.headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    o = urlsplit(origin)
    return o.scheme in ("http", "https") and o.netloc == request.headers.get("host", "")


def _static(name: str) -> bytes:
    return resources.files("hybridgate.console").joinpath("static", name).read_bytes()


def console_routes(deps: ConsoleDeps) -> list[BaseRoute]:
    governance = deps.governance
    sessions = deps.sessions
    throttle = deps.throttle or SignInThrottle(
        deps.settings.signin_burst, deps.settings.signin_per_minute
    )
    assets = {name: _static(name) for name in STATIC_FILES}

    def secured(handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            resp = await handler(request)
            for k, v in SECURITY_HEADERS.items():
                resp.headers.setdefault(k, v)
            return resp

        return endpoint

    async def current(request: Request) -> Session | None:
        return await sessions.get(request.cookies.get(COOKIE))

    def page(handler: SessionHandler) -> Handler:
        async def endpoint(request: Request) -> Response:
            s: Session | None = None
            try:
                s = await current(request)
                if s is None:
                    return RedirectResponse("/console/login", status_code=303)
                return await handler(request, s)
            except GatewayError as err:
                return HTMLResponse(views.error_page(s, err.status, err.message), err.status)

        return secured(endpoint)

    def api(handler: SessionHandler, *, write: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            try:
                s = await current(request)
                if s is None:
                    raise AuthenticationError("sign in to the console first")
                if write:
                    if not same_token(request.headers.get("x-csrf-token"), s.csrf):
                        raise PermissionDenied("missing or wrong CSRF token", code="csrf")
                    if not _same_origin(request):
                        raise PermissionDenied("cross-origin request refused", code="csrf")
                    if not s.is_admin:
                        raise PermissionDenied("team sessions are read-only")
                return await handler(request, s)
            except GatewayError as err:
                return JSONResponse(error_body(err, "openai"), status_code=err.status)

        return secured(endpoint)

    # -- sign-in ----------------------------------------------------------------------
    def _login_page(
        request: Request,
        error: str | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> Response:
        token = secrets.token_urlsafe(24)
        resp = HTMLResponse(views.login(error, token), status_code=status, headers=headers)
        resp.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/console",
            max_age=3600,
        )
        return resp

    async def login_form(request: Request) -> Response:
        if await current(request) is not None:
            return RedirectResponse("/console", status_code=303)
        return _login_page(request, None)

    async def login(request: Request) -> Response:
        client = client_bucket(request.client.host if request.client else None)
        wait = await throttle.atake(client)
        if wait is not None:
            log.warning("console sign-in throttled for %s", client)
            after = retry_after(wait)
            return _login_page(
                request,
                f"too many sign-in attempts from your address; try again in {after} s",
                429,
                {"retry-after": after},
            )
        try:
            raw = await read_body(request, MAX_FORM_BYTES)
        except GatewayError:
            return _login_page(request, "the form is too large", 413)
        form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
        token = (form.get("csrf") or [""])[0]
        if not _same_origin(request) or not same_token(token, request.cookies.get(LOGIN_COOKIE)):
            return _login_page(request, "the sign-in form expired; try again", 403)
        key = (form.get("key") or [""])[0].strip()
        try:
            info = deps.keys.authenticate(key)
        except AuthenticationError:
            log.info("console sign-in refused")
            return _login_page(request, "that key is not valid", 401)
        try:
            s = await sessions.create(info)
        except GatewayError as err:  # the store is unavailable: no session, say so
            return _login_page(request, err.message, err.status)
        log.info("console sign-in: %s", s.who)
        resp = RedirectResponse("/console", status_code=303)
        resp.set_cookie(
            COOKIE,
            s.sid,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path="/console",
        )
        resp.delete_cookie(LOGIN_COOKIE, path="/console")
        return resp

    async def logout(request: Request) -> Response:
        s = await current(request)
        raw = await read_body(request, MAX_FORM_BYTES)
        form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=8)
        if s is not None and same_token((form.get("csrf") or [""])[0], s.csrf):
            await sessions.drop(s.sid)
        resp = RedirectResponse("/console/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/console")
        return resp

    # -- pages ------------------------------------------------------------------------
    async def overview(_: Request, s: Session) -> Response:
        receipts = data.recent_receipts(deps, s)
        html = views.overview(
            s,
            receipts,
            data.usage(deps, s),
            data.budgets(deps, s),
            data.route_health(deps),
            deps.policy.current[1],
        )
        return HTMLResponse(html)

    async def receipt_page(request: Request, s: Session) -> Response:
        rid = request.path_params["receipt_id"]
        if len(rid) > 100:
            raise NotFound("no such receipt")
        return HTMLResponse(views.receipt(s, rid))

    async def approvals_page(_: Request, s: Session) -> Response:
        held = deps.actions.list_approvals("pending", 200)
        held = [h for h in held if h.get("params") is not None]
        if not s.is_admin:
            held = [h for h in held if h.get("team") == s.key.team]
        return HTMLResponse(views.approvals(s, held))

    async def proposals_page(_: Request, s: Session) -> Response:
        if governance is None:
            return HTMLResponse(views.proposals(s, [], None))
        listed = governance.list_proposals("open")
        full = [await governance.describe(governance.get(p["proposal_id"])) for p in listed]
        return HTMLResponse(views.proposals(s, full, governance.status(), governance.history()))

    # -- JSON for the page script ----------------------------------------------------------
    async def receipt_bundle(request: Request, s: Session) -> Response:
        rid = request.path_params["receipt_id"]
        signed = deps.ledger.get_receipt(rid) if len(rid) <= 100 else None
        if signed is None or (not s.is_admin and signed["receipt"].get("key_id") != s.key.key_id):
            raise NotFound("no such receipt for this session")
        bundle = await asyncio.to_thread(deps.ledger.bundle, rid)
        if bundle is None:
            raise NotFound("no such receipt for this session")
        return JSONResponse(bundle)

    async def traffic(_: Request, s: Session) -> Response:
        return JSONResponse({"data": data.traffic(deps, s)})

    async def log_key(_: Request, __: Session) -> Response:
        return JSONResponse({"keys": [v.to_string() for v in deps.verifiers()]})

    async def decide(request: Request, _: Session) -> Response:
        dec = parse_decision(await read_json(request, 16 * 1024))
        return JSONResponse(await deps.actions.decide(request.path_params["approval_id"], dec))

    def _gov() -> GovernanceService:
        if governance is None:
            raise NotFound("governance is not configured")
        return governance

    async def sign(request: Request, _: Session) -> Response:
        body: Any = await read_json(request, 16 * 1024)
        if not isinstance(body, dict):
            raise InvalidRequest("body must be an object with `approver` and `signature`")
        out = await _gov().sign(
            request.path_params["proposal_id"], body.get("approver"), body.get("signature")
        )
        return JSONResponse(out)

    async def apply(request: Request, s: Session) -> Response:
        out = await _gov().apply(request.path_params["proposal_id"], applied_by="console:admin")
        return JSONResponse(out)

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in assets:
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            assets[name],
            media_type=STATIC_FILES[name],
            headers={**SECURITY_HEADERS, "cache-control": "no-cache"},
        )

    async def root_redirect(_: Request) -> Response:
        return RedirectResponse("/console", status_code=308)

    return [
        Route("/console/", secured(root_redirect), methods=["GET"]),
        Route("/console", page(overview), methods=["GET"]),
        Route("/console/login", secured(login_form), methods=["GET"]),
        Route("/console/login", secured(login), methods=["POST"]),
        Route("/console/logout", secured(logout), methods=["POST"]),
        Route("/console/receipts/{receipt_id}", page(receipt_page), methods=["GET"]),
        Route("/console/approvals", page(approvals_page), methods=["GET"]),
        Route("/console/proposals", page(proposals_page), methods=["GET"]),
        Route("/console/static/{name}", static, methods=["GET"]),
        Route("/console/api/receipts/{receipt_id}", api(receipt_bundle), methods=["GET"]),
        Route("/console/api/log-key", api(log_key), methods=["GET"]),
        Route("/console/api/traffic", api(traffic), methods=["GET"]),
        Route("/console/api/approvals/{approval_id}", api(decide, write=True), methods=["POST"]),
        Route(
            "/console/api/proposals/{proposal_id}/signatures",
            api(sign, write=True),
            methods=["POST"],
        ),
        Route(
            "/console/api/proposals/{proposal_id}/apply", api(apply, write=True), methods=["POST"]
        ),
    ]
