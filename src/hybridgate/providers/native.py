"""Same-family pass-through: a request sent upstream in its own wire format.

When the client's API and the route's API are the same (the Responses API to
an OpenAI route, Messages to an Anthropic route) the gateway sends the
already-scanned and masked body as it is, every field intact, and reads the
answer back in the same format. This module turns the upstream's SSE into
event dicts and guards the protocol: a stream that ends without its terminal
event is an error, never a short answer.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from hybridgate import fastjson
from hybridgate.errors import UpstreamError
from hybridgate.providers.sse import SSEDecoder

#: Event types that end a stream of each API.
RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
MESSAGES_TERMINAL = frozenset({"message_stop"})


async def sse_events(
    route_name: str, raw: AsyncGenerator[bytes, None], terminal: frozenset[str]
) -> AsyncIterator[dict[str, Any]]:
    """Decoded event objects until (and including) a terminal event."""
    decoder = SSEDecoder()
    async with contextlib.aclosing(raw):
        async for data in raw:
            for ev in decoder.feed(data):
                payload = ev.data.strip()
                if not payload or payload == "[DONE]":
                    continue
                try:
                    event = fastjson.loads(payload)
                except ValueError:
                    raise UpstreamError(
                        f"route {route_name}: upstream sent a stream event that is not JSON",
                        code="upstream_protocol_error",
                    ) from None
                if not isinstance(event, dict):
                    continue
                if "type" not in event and ev.event:
                    event["type"] = ev.event
                etype = event.get("type")
                if etype == "error":
                    err = event.get("error") if isinstance(event.get("error"), dict) else event
                    assert isinstance(err, dict)
                    raise UpstreamError(
                        f"route {route_name}: upstream reported an error mid-stream: "
                        f"{str(err.get('message') or 'no message')[:200]}",
                        code="upstream_error",
                    )
                yield event
                if etype in terminal:
                    return
    raise UpstreamError(
        f"route {route_name}: upstream stream ended before its final event",
        code="upstream_stream_cut",
    )
