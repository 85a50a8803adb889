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
    sse_event,
)
from hybridgate.errors import ClientDisconnected, ErrorFormat, GatewayError, ServiceUnavailable
from hybridgate.outcome import response_headers
from hybridgate.pipeline import Exchange, Pipeline

log = logging.getLogger("hybridgate.api")


class StreamFramer(Protocol):
    """Turns a stream's chunks (or events) into one wire format's SSE bytes.

    ``frames`` may hold a terminal event back; ``end`` returns the terminal
    frames (or raises :class:`GatewayError` when the stream lacked its final
    event); ``error`` is the error event in the client's format.
    """

    def frames(self, chunk: dict[str, Any]) -> list[bytes]: ...
    def end(self) -> list[bytes]: ...
    def error(self, err: GatewayError) -> bytes: ...


class HeldFinalFramer:
    """Named SSE events (``event: <type>``) whose final event is held back: ``end``
    returns it once the stream is over, or refuses a stream that lacked it."""

    #: The event types that end a stream.
    final: frozenset[str] = frozenset()
    #: Why a stream without a final event failed.
    missing = "upstream stream ended without a final event"

    def __init__(self) -> None:
        self._final: dict[str, Any] | None = None

    def frames(self, event: dict[str, Any]) -> list[bytes]:
        if event.get("type") in self.final:
            self._final = event
            return []
        return [sse_event(event)]

    def end(self) -> list[bytes]:
        if self._final is None:
            raise GatewayError(self.missing)
        return [sse_event(self._final)]

    def error(self, err: GatewayError) -> bytes:
        raise NotImplementedError


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

    async def open(
        self, stack: contextlib.AsyncExitStack, request: Request, api: str, errors: ErrorFormat
    ) -> Exchange:
        """Authenticate, open the exchange on ``stack`` and read the body into it.

        An unauthenticated refusal gets no receipt (anyone could grow the audit
        log); everything after authentication belongs to the exchange.
        """
        try:
            key = await self.authenticate(request)
        except GatewayError as err:
            err.headers = gateway_headers("req_unauthenticated", None)
            raise
        ex = await stack.enter_async_context(self.pipeline.exchange(api, key, errors=errors))
        ex.raw_body = await _read(request, self.max_body_bytes)
        return ex

    async def run(self, request: Request, wire: WireFormat) -> Response:
        async with contextlib.AsyncExitStack() as stack:
            ex = await self.open(stack, request, wire.api, wire.errors)
            ex.task_header = request.headers.get("x-hybridgate-task")
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
                    return stream_response(stack, ex, chunks, first, wire.framer(body))
                data = json_bytes(wire.from_internal(await self.pipeline.complete(ex, prepared)))
            ex.sent(data)
        return answer(ex, data)


def answer(ex: Exchange, data: bytes) -> Response:
    """The JSON answer of a closed exchange (its receipt is durable; ``data`` committed)."""
    assert ex.result is not None
    return RawJSONResponse(data, headers=response_headers(ex.result))


def stream_response(
    stack: contextlib.AsyncExitStack,
    ex: Exchange,
    chunks: AsyncIterator[dict[str, Any]],
    first: dict[str, Any] | None,
    framer: StreamFramer,
) -> Response:
    """Hand the exchange open on ``stack`` to a streaming response, which closes it.

    ``chunks`` (after ``first``, already pulled so that failover and pre-stream
    errors still got a proper HTTP status) are framed by ``framer``; the
    terminal frames it returns from ``end`` (or its ``error`` frame) are
    committed, the exchange closes, and only then are they sent.
    """
    ex.mark_streaming()
    owned = stack.pop_all()  # the stream closes the exchange now
    return ExchangeStream(
        _frames(owned, ex, chunks, first, framer),
        owned,
        media_type="text/event-stream",
        headers={**ex.headers(), "cache-control": "no-cache"},
    )


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
                tail = framer.end()  # may refuse a stream that ended without its final event
            except GatewayError as err:
                failure = err
            except Exception:
                log.exception("stream failed in %s", ex.api)
                failure = GatewayError("internal error while streaming")
            # The terminal frame is committed now and sent only once the exchange closed.
            if failure is not None:
                tail = [framer.error(failure)]
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
