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
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hybridgate import fastjson
from hybridgate.errors import (
    ErrorFormat,
    GatewayError,
    InvalidRequest,
    PayloadTooLarge,
    PermissionDenied,
)
from hybridgate.jsonlimits import (
    MAX_DEPTH,
    JSONLimitError,
    deeper_than,
    finite_float,
)
from hybridgate.keys import KeyInfo, KeyStore

log = logging.getLogger("hybridgate.api")

Authenticate = Callable[[Request], Awaitable[KeyInfo]]

#: Paths whose errors are rendered in the Anthropic format; everything else is OpenAI's.
_ANTHROPIC_PATHS = ("/v1/messages",)


def error_format_for(path: str) -> ErrorFormat:
    """The error format a client of ``path`` expects (the SDK it uses parses it)."""
    if any(path == p or path.startswith(p + "/") for p in _ANTHROPIC_PATHS):
        return "anthropic"
    return "openai"


def error_body(err: GatewayError, fmt: ErrorFormat) -> dict[str, Any]:
    """``err`` as a JSON body in ``fmt`` (see :meth:`GatewayError.body`)."""
    return err.body(fmt)


def error_response(
    err: GatewayError, fmt: ErrorFormat, headers: dict[str, str] | None = None
) -> Response:
    """``err`` as a response in ``fmt``: the bytes are exactly what the exchange committed."""
    h = dict(headers or {})
    if err.status == 401 and fmt == "openai":
        h.setdefault("www-authenticate", "Bearer")
    return RawJSONResponse(err.render(fmt), status_code=err.status, headers=h)


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
    """The request body as JSON, or a 400 that says what is wrong with it.

    Refused: invalid UTF-8 or JSON, NaN/Infinity, numbers a float cannot hold
    or an int has too many digits for, nesting deeper than
    :data:`~hybridgate.jsonlimits.MAX_DEPTH`.
    """
    if not raw:
        raise InvalidRequest("request body is empty; expected a JSON object")
    value = fastjson.try_loads(raw, MAX_DEPTH)
    if value is fastjson.TOO_DEEP:
        raise InvalidRequest(f"request body is nested more than {MAX_DEPTH} levels deep")
    if value is not fastjson.UNSURE:
        return value
    # The standard library decides, and says what is wrong.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_no_constants, parse_float=finite_float)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"request body is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    except JSONLimitError as exc:
        raise InvalidRequest(f"request body is out of range: {exc}") from None
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits()
        raise InvalidRequest("request body holds a number with too many digits") from None
    if text.count("[") + text.count("{") > MAX_DEPTH and deeper_than(value):
        raise InvalidRequest(f"request body is nested more than {MAX_DEPTH} levels deep")
    return value


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


def make_authenticator(keys: KeyStore) -> Authenticate:
    """The app's one authenticator: every endpoint that needs a key uses it."""

    async def authenticate(request: Request) -> KeyInfo:
        return keys.authenticate(presented_key(request))

    return authenticate


def require_admin(key: KeyInfo) -> None:
    """A valid key that is not the admin key is authenticated but not permitted: 403."""
    if not key.is_admin:
        raise PermissionDenied("this endpoint needs the admin key")


KeyedHandler = Callable[[Request, KeyInfo], Awaitable[Response]]


def guarded(
    authenticate: Authenticate, handler: KeyedHandler, *, admin: bool
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that authenticates (and for ``admin`` requires the admin key) first.
    Errors propagate to the app's exception handlers."""

    async def endpoint(request: Request) -> Response:
        key = await authenticate(request)
        if admin:
            require_admin(key)
        return await handler(request, key)

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
    return fastjson.dumps(obj)


def sse_event(event: dict[str, Any]) -> bytes:
    """One named server-sent event (``event: <type>``), as Messages and Responses stream."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + json_bytes(event) + b"\n\n"


class RawJSONResponse(Response):
    """A JSON response from bytes we already encoded (they also feed the commitment)."""

    media_type = "application/json"
