"""Runs one exchange through the pipeline for any wire format.

The OpenAI and Anthropic endpoints differ only in how they translate bodies
and frame streams; both pass a :class:`WireFormat` to :class:`ExchangeRunner`.
The exchange itself is opened and closed by ``pipeline.exchange`` (the only
place a receipt is appended); this module adds what HTTP needs on top:

* the answer leaves only after the exchange closed (the JSON body), or the
  stream's terminal frame is held back until it closed, so a client never sees
  the end of an answer whose receipt is not durable;
* a stream keeps its exchange open while it runs (the exit stack moves into
  the response), and a stream that breaks after it started ends with an error
  event in the client's own format, never with a clean finish;
* errors propagate as :class:`GatewayError` to the app's exception handlers,
  which render them in the API's format with the exchange's headers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from hybridgate.api.common import (
    Authenticate,
    RawJSONResponse,
    gateway_headers,
    json_bytes,
    parse_json,
    read_body,
)
from hybridgate.errors import ClientDisconnected, ErrorFormat, GatewayError, ServiceUnavailable
from hybridgate.outcome import response_headers
from hybridgate.pipeline import Exchange, Pipeline

log = logging.getLogger("hybridgate.api")


class StreamFramer(Protocol):
    """Turns internal (OpenAI) chunks into one wire format's SSE bytes."""

    def frames(self, chunk: dict[str, Any]) -> list[bytes]: ...
    def end(self) -> list[bytes]: ...
    def error(self, err: GatewayError) -> bytes: ...


@dataclass(frozen=True)
class WireFormat:
    api: str
    errors: ErrorFormat
    to_internal: Callable[[Any], Any]
    from_internal: Callable[[dict[str, Any]], dict[str, Any]]
    framer: Callable[[dict[str, Any]], StreamFramer]  # built from the internal request
    kind: str = "chat"  # or "embeddings"


@dataclass(frozen=True)
class ExchangeRunner:
    """What an API endpoint needs to run exchanges: the pipeline, the authenticator,
    and the body limit."""

    pipeline: Pipeline
    authenticate: Authenticate
    max_body_bytes: int

    async def run(self, request: Request, wire: WireFormat) -> Response:
        try:
            key = await self.authenticate(request)
        except GatewayError as err:
            # Unauthenticated refusals get no receipt: anyone could grow the audit log.
            err.headers = gateway_headers("req_unauthenticated", None)
            raise
        async with contextlib.AsyncExitStack() as stack:
            ex = await stack.enter_async_context(
                self.pipeline.exchange(wire.api, key, errors=wire.errors)
            )
            ex.task_header = request.headers.get("x-hybridgate-task")
            ex.raw_body = await _read(request, self.max_body_bytes)
            body = wire.to_internal(parse_json(ex.raw_body))
            if wire.kind == "embeddings":
                prepared = await self.pipeline.prepare_embeddings(ex, body)
                data = json_bytes(wire.from_internal(await self.pipeline.embed(ex, prepared)))
            else:
                prepared = await self.pipeline.prepare_chat(ex, body)
                if body.get("stream") is True:
                    chunks = self.pipeline.stream(ex, prepared)
                    # Pull the first chunk before answering: failover and pre-stream
                    # errors still get a proper HTTP status, and the route is known.
                    first = await anext(chunks, None)
                    framer = wire.framer(body)
                    ex.mark_streaming()
                    owned = stack.pop_all()  # the stream closes the exchange now
                    return ExchangeStream(
                        _frames(owned, ex, chunks, first, framer),
                        owned,
                        media_type="text/event-stream",
                        headers={**ex.headers(), "cache-control": "no-cache"},
                    )
                data = json_bytes(wire.from_internal(await self.pipeline.complete(ex, prepared)))
            ex.sent(data)
        assert ex.result is not None  # closed: the receipt is durable
        return RawJSONResponse(data, headers=response_headers(ex.result))


async def _read(request: Request, limit: int) -> bytes:
    try:
        return await read_body(request, limit)
    except ClientDisconnect:
        raise ClientDisconnected("the client disconnected while sending the body") from None


class ExchangeStream(StreamingResponse):
    """A streaming answer that owns its exchange: however the response ends (done,
    client gone, never started), the exchange is closed exactly once."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        owned: contextlib.AsyncExitStack,
        **kw: Any,
    ) -> None:
        super().__init__(content, **kw)
        self._content = content
        self._owned = owned

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            pass  # the client is gone; the exchange below is receipted as such
        finally:
            aclose = getattr(self._content, "aclose", None)
            if aclose is not None:
                await aclose()
            # A no-op when the stream closed its exchange; otherwise it never ran.
            gone = ClientDisconnected("the client went away before the stream ran")
            with contextlib.suppress(ClientDisconnected):
                await self._owned.__aexit__(type(gone), gone, None)


async def _frames(
    owned: contextlib.AsyncExitStack,
    ex: Exchange,
    chunks: AsyncIterator[dict[str, Any]],
    first: dict[str, Any] | None,
    framer: StreamFramer,
) -> AsyncIterator[bytes]:
    tail: list[bytes] = []
    failure: GatewayError | None = None
    try:
        async with owned:
            try:
                pending = [first] if first is not None else []
                for chunk in pending:
                    for f in framer.frames(chunk):
                        ex.sent(f)
                        yield f
                async for chunk in chunks:
                    for f in framer.frames(chunk):
                        ex.sent(f)
                        yield f
            except GatewayError as err:
                failure = err
            except Exception:
                log.exception("stream failed in %s", ex.api)
                failure = GatewayError("internal error while streaming")
            # The terminal frame is committed now and sent only once the exchange closed.
            tail = [framer.error(failure)] if failure is not None else framer.end()
            for f in tail:
                ex.sent(f)
            if failure is not None:
                raise failure
    except GatewayError as err:
        if err is not failure:  # the receipt could not be made durable
            log.error("receipt for %s not written; ending the stream with an error", ex.request_id)
            yield framer.error(ServiceUnavailable(err.message, code="receipt_unavailable"))
            return
    for f in tail:
        yield f
