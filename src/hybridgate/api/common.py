"""What every HTTP endpoint shares: bounded body reading, authentication,
error rendering in each API's own format, and the gateway's response headers.

Network input is hostile until validated here: the body is read with a hard
size cap (413 before it is all in memory), must be UTF-8 JSON, and nesting
bombs are refused as 400s rather than surfacing as 500s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hybridgate.errors import GatewayError, InvalidRequest, PayloadTooLarge, PermissionDenied
from hybridgate.keys import KeyInfo
from hybridgate.runtime import Gateway

log = logging.getLogger("hybridgate.api")

ErrorFormat = Literal["openai", "anthropic"]
Authenticate = Callable[[Request], Awaitable[KeyInfo]]

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(err: GatewayError, fmt: ErrorFormat) -> dict[str, Any]:
    if fmt == "anthropic":
        etype = _ANTHROPIC_TYPES.get(err.status, "api_error")
        return {"type": "error", "error": {"type": etype, "message": err.message}}
    return {
        "error": {
            "message": err.message,
            "type": err.openai_type,
            "param": err.param,
            "code": err.code,
        }
    }


def error_response(
    err: GatewayError, fmt: ErrorFormat, headers: dict[str, str] | None = None
) -> JSONResponse:
    h = dict(headers or {})
    if err.status == 401 and fmt == "openai":
        h.setdefault("www-authenticate", "Bearer")
    return JSONResponse(error_body(err, fmt), status_code=err.status, headers=h)


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        except ValueError:
            raise InvalidRequest("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None


def _no_constants(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them by default."""
    raise InvalidRequest(f"{name} is not valid JSON")


async def read_json(request: Request, limit: int) -> Any:
    return parse_json(await read_body(request, limit))


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.headers.get("x-api-key")


def make_authenticator(gw: Gateway) -> Authenticate:
    async def authenticate(request: Request) -> KeyInfo:
        return gw.keys.authenticate(presented_key(request))

    return authenticate


def require_admin(key: KeyInfo) -> None:
    """A valid key that is not the admin key is authenticated but not permitted: 403."""
    if not key.is_admin:
        raise PermissionDenied("this endpoint needs the admin key")


KeyedHandler = Callable[[Request, KeyInfo], Awaitable[Response]]


def guarded(
    authenticate: Authenticate, handler: KeyedHandler, *, admin: bool
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that authenticates (and for ``admin`` requires the admin key) first,
    and renders any :class:`GatewayError` in the OpenAI error format."""

    async def endpoint(request: Request) -> Response:
        try:
            key = await authenticate(request)
            if admin:
                require_admin(key)
            return await handler(request, key)
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers("req_admin", None))

    return endpoint


def gateway_headers(
    request_id: str, route: str | None, receipt_id: str | None = None, **extra: str | None
) -> dict[str, str]:
    h = {"x-hybridgate-request-id": request_id, "x-hybridgate-route": route or "none"}
    if receipt_id:
        h["x-hybridgate-receipt"] = receipt_id
    for k, v in extra.items():
        if v is not None:
            h["x-hybridgate-" + k.replace("_", "-")] = v
    return h


def json_bytes(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class RawJSONResponse(Response):
    """A JSON response from bytes we already encoded (they also feed the commitment)."""

    media_type = "application/json"
