"""The one boundary where errors become responses.

Endpoints raise :class:`~hybridgate.errors.GatewayError`; these Starlette
exception handlers render it in the API's own format (the one the exchange
committed to, else the one the path implies), with the headers the exchange
attached. Unknown paths and methods, and bugs, get JSON errors too, never
HTML or a traceback. Any Starlette app mounting the gateway's routes installs
them with ``Starlette(..., exception_handlers=exception_handlers())``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.common import error_format_for, error_response
from hybridgate.errors import GatewayError, MethodNotAllowed, NotFound

Handler = Callable[[Request, Exception], Awaitable[Response]]


async def _gateway_error(request: Request, exc: Exception) -> Response:
    """Every :class:`GatewayError` an endpoint raises, in its API's own format."""
    assert isinstance(exc, GatewayError)
    fmt = exc.error_format or error_format_for(request.url.path)
    return error_response(exc, fmt, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods get JSON errors too, in the format the path implies.

    The message never echoes the path or method: both are the client's input.
    """
    assert isinstance(exc, HTTPException)
    err: GatewayError
    if exc.status_code == 405:
        err = MethodNotAllowed("this method is not allowed on this endpoint (see Allow)")
        err.headers = dict(exc.headers or {})
    elif exc.status_code == 404:
        err = NotFound("no such endpoint", code="unknown_url")
    else:
        err = GatewayError(str(exc.detail))
        err.status = exc.status_code
    return error_response(err, error_format_for(request.url.path), err.headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug still answers in the API's format, never with a traceback (it is logged)."""
    return error_response(GatewayError("internal error"), error_format_for(request.url.path))


def exception_handlers() -> Mapping[Any, Handler]:
    return {
        GatewayError: _gateway_error,
        HTTPException: _http_error,
        Exception: _internal_error,
    }
