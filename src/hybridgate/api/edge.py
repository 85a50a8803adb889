"""The gateway's one ASGI middleware, around every HTTP request.

It does three jobs that each used to be a middleware of its own (three wrappers
around every ``send`` and ``receive`` of every request; one wrapper does them all):

* **id headers**: every response carries ``x-hybridgate-request-id`` and
  ``x-hybridgate-route``; endpoints set them with real values, and this fills
  them in for the responses that never reach an endpoint (404, 405);
* **body deadline**: a request body must arrive within ``body_timeout_s`` of
  its start, or the app's body read raises :class:`RequestTimeout` (408 in the
  API's format, receipted when a key was presented); a client that trickles
  its body a byte at a time would otherwise hold a connection and a task
  forever. Once the body is complete, ``receive`` is passed through untouched
  (streams wait on it for the client's disconnect);
* **access log**: one line per request for operators (logger
  ``hybridgate.access``): the method, the path (never the query string), the
  status, the latency until the last body byte left (streams included), the
  route and the request id, taken from the response's own ``x-hybridgate-*``
  headers (after the ids were filled in). Keys, bodies and other headers are
  never logged. The line is written before the last bytes go, so a client that
  saw the end of its answer finds the line.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hybridgate.errors import RequestTimeout

log = logging.getLogger("hybridgate.access")

_REQUEST_ID = b"x-hybridgate-request-id"
_ROUTE = b"x-hybridgate-route"


class EdgeMiddleware:
    def __init__(self, app: ASGIApp, body_timeout_s: float) -> None:
        self.app = app
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        timeout_s = self.body_timeout_s
        deadline: float | None = None
        body_done = False
        status = "-"
        route = "-"
        request_id = "-"
        logged = False

        def emit() -> None:
            nonlocal logged
            logged = True
            log.info(
                "%s %s status=%s latency_ms=%.1f route=%s request_id=%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                status,
                (time.perf_counter() - t0) * 1000.0,
                route,
                request_id,
            )

        async def bounded_receive() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + timeout_s
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise RequestTimeout(
                    f"the request body did not arrive within {timeout_s:g} s"
                ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def edge_send(message: Message) -> None:
            nonlocal status, route, request_id
            kind = message["type"]
            if kind == "http.response.start":
                headers = list(message.get("headers", []))
                rid: bytes | None = None
                rname: bytes | None = None
                for k, v in headers:
                    name = k.lower()
                    if name == _ROUTE:
                        rname = v
                    elif name == _REQUEST_ID:
                        rid = v
                if rid is None:
                    rid = b"req_" + secrets.token_hex(12).encode()
                    headers.append((_REQUEST_ID, rid))
                if rname is None:
                    rname = b"none"
                    headers.append((_ROUTE, rname))
                message["headers"] = headers
                status = str(message.get("status", "-"))
                route = rname.decode("latin-1")[:128]
                request_id = rid.decode("latin-1")[:64]
            elif kind == "http.response.body" and not logged and not message.get("more_body"):
                emit()  # before the last bytes go: a client that saw the end finds the line
            await send(message)

        try:
            await self.app(scope, bounded_receive, edge_send)
        finally:
            if not logged:
                if status == "-":
                    status = "disconnected"
                emit()
