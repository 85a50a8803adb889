"""Runs one exchange through the pipeline for any wire format.

The OpenAI and Anthropic endpoints differ only in how they translate bodies
and frame streams; both pass a :class:`WireFormat` here. This module owns the
two guarantees the HTTP layer adds:

* every authenticated exchange gets its receipt before the client sees the
  end of the answer (the JSON body, or a stream's terminal frame);
* a stream that breaks after it started ends with an error event in the
  client's own format, never with a clean finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from hybridgate.api.common import (
    ErrorFormat,
    RawJSONResponse,
    error_body,
    error_response,
    gateway_headers,
    json_bytes,
    make_authenticator,
    parse_json,
    read_body,
)
from hybridgate.errors import GatewayError, ServiceUnavailable
from hybridgate.pipeline import Exchange, Pipeline, Prepared

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


def _headers(ex: Exchange) -> dict[str, str]:
    d = ex.decision
    return gateway_headers(
        ex.request_id,
        ex.route.name if ex.route else None,
        ex.receipt_id,
        action=d.action.value if d else None,
        location=ex.route.location if ex.route else None,
        data_classes=",".join(d.data_classes) if d and d.data_classes else None,
        masked=str(ex.masked) if ex.masked else None,
    )


async def run_exchange(request: Request, pipeline: Pipeline, wire: WireFormat) -> Response:
    gw = pipeline.gw
    try:
        key = await make_authenticator(gw)(request)
    except GatewayError as err:
        # Unauthenticated refusals get no receipt: anyone could grow the audit log.
        return error_response(err, wire.errors, gateway_headers("req_unauthenticated", None))
    ex = pipeline.begin(wire.api, key, b"")
    ex.task_header = request.headers.get("x-hybridgate-task")
    try:
        ex.raw_body = await read_body(request, gw.config.server.max_body_bytes)
        body = wire.to_internal(parse_json(ex.raw_body))
        if wire.kind == "embeddings":
            prepared = pipeline.prepare_embeddings(ex, body)
            out = await pipeline.embed(ex, prepared)
            return await _answer(pipeline, ex, wire.from_internal(out))
        prepared = pipeline.prepare_chat(ex, body)
        if body.get("stream") is True:
            return await _start_stream(pipeline, ex, prepared, wire, body)
        out = await pipeline.complete(ex, prepared)
        return await _answer(pipeline, ex, wire.from_internal(out))
    except GatewayError as err:
        return await _refuse(pipeline, ex, wire, err)
    except Exception:  # never a traceback to the client; the receipt still records it
        log.exception("unhandled error in %s", wire.api)
        return await _refuse(pipeline, ex, wire, GatewayError("internal error"))


async def _answer(pipeline: Pipeline, ex: Exchange, out: dict[str, Any]) -> Response:
    data = json_bytes(out)
    ex.sent(data)
    await pipeline.finish(ex)  # durable receipt before the answer leaves
    return RawJSONResponse(data, headers=_headers(ex))


async def _refuse(
    pipeline: Pipeline, ex: Exchange, wire: WireFormat, err: GatewayError
) -> Response:
    if not ex.finished:
        ex.fail(err)
        ex.sent(json_bytes(error_body(err, wire.errors)))
        try:
            await pipeline.finish(ex)
        except GatewayError as receipt_err:
            log.error("receipt for refused request %s not written: %s", ex.request_id, receipt_err)
    return error_response(err, wire.errors, _headers(ex))


async def _start_stream(
    pipeline: Pipeline, ex: Exchange, prepared: Prepared, wire: WireFormat, body: dict[str, Any]
) -> Response:
    chunks = pipeline.stream(ex, prepared)
    # Pull the first chunk before answering: failover and pre-stream errors still
    # get a proper HTTP status, and the route header is known.
    try:
        first: dict[str, Any] | None = await chunks.__anext__()
    except StopAsyncIteration:
        first = None
    framer = wire.framer(body)
    return StreamingResponse(
        _frames(pipeline, ex, chunks, first, framer),
        media_type="text/event-stream",
        headers={**_headers(ex), "cache-control": "no-cache"},
    )


async def _frames(
    pipeline: Pipeline,
    ex: Exchange,
    chunks: AsyncIterator[dict[str, Any]],
    first: dict[str, Any] | None,
    framer: StreamFramer,
) -> AsyncIterator[bytes]:
    def out(frames: list[bytes]) -> list[bytes]:
        for f in frames:
            ex.sent(f)
        return frames

    try:
        if first is not None:
            for f in out(framer.frames(first)):
                yield f
        async for chunk in chunks:
            for f in out(framer.frames(chunk)):
                yield f
    except GatewayError as err:
        ex.fail(err)
        ex.outcome = "stream_failed"
        yield out([framer.error(err)])[0]
        await _finish_quietly(pipeline, ex)
        return
    except asyncio.CancelledError:
        ex.outcome = "client_disconnected"
        ex.status = 499
        # The client is gone; the receipt is still owed.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(_finish_quietly(pipeline, ex))
        raise
    except Exception:
        log.exception("stream failed in %s", ex.api)
        internal = GatewayError("internal error while streaming")
        ex.fail(internal)
        ex.outcome = "stream_failed"
        yield out([framer.error(internal)])[0]
        await _finish_quietly(pipeline, ex)
        return
    # Hold the terminal frame back until the receipt is durable.
    try:
        await pipeline.finish(ex)
    except GatewayError as err:
        log.error("receipt for %s not written; ending the stream with an error", ex.request_id)
        yield framer.error(ServiceUnavailable(err.message, code="receipt_unavailable"))
        return
    for f in framer.end():
        yield f


async def _finish_quietly(pipeline: Pipeline, ex: Exchange) -> None:
    try:
        await pipeline.finish(ex)
    except GatewayError as err:
        log.error("receipt for %s not written: %s", ex.request_id, err)
