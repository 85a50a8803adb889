"""One access-log line per HTTP request, for operators: why did a client fail?

Plain ASGI middleware. The line holds the method, the path (never the query
string), the status, the latency until the last body byte left (streams
included), the route and the request id, taken from the response's own
``x-hybridgate-*`` headers. Keys, bodies and headers other than those two are
never logged.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("hybridgate.access")


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        facts: dict[str, str] = {"status": "-", "route": "-", "request_id": "-"}
        logged = False

        def emit() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            log.info(
                "%s %s status=%s latency_ms=%.1f route=%s request_id=%s",
                scope.get("method", "-"),
                scope.get("path", "-"),
                facts["status"],
                (time.perf_counter() - t0) * 1000.0,
                facts["route"],
                facts["request_id"],
            )

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                facts["status"] = str(message.get("status", "-"))
                for k, v in message.get("headers", []):
                    name = k.decode("latin-1").lower()
                    if name == "x-hybridgate-route":
                        facts["route"] = v.decode("latin-1")[:128]
                    elif name == "x-hybridgate-request-id":
                        facts["request_id"] = v.decode("latin-1")[:64]
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                emit()  # before the last bytes go: a client that saw the end finds the line
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            if not logged:
                if facts["status"] == "-":
                    facts["status"] = "disconnected"
                emit()
