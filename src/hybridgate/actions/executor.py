"""Forwarding an allowed action to the executor behind the gate.

A seam of its own so the service never knows about HTTP clients, and tests
or embedders can hand in another transport. Only the gate calls it, and only
after the receipt's nonce is durably marked used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp

from hybridgate.errors import UpstreamError, UpstreamTimeout

MAX_EXECUTOR_RESPONSE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ForwardResult:
    status: int
    body: Any


class Forwarder(Protocol):
    async def __call__(self, url: str, payload: dict[str, Any]) -> ForwardResult: ...


class AiohttpForwarder:
    """POSTs the action as JSON; any non-2xx answer or transport failure is an error."""

    def __init__(self, timeout_s: float = 30.0) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def __call__(self, url: str, payload: dict[str, Any]) -> ForwardResult:
        try:
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(url, json=payload, allow_redirects=False) as resp,
            ):
                raw = await resp.content.read(MAX_EXECUTOR_RESPONSE_BYTES + 1)
                status = resp.status
        except TimeoutError:
            raise UpstreamTimeout("executor did not answer in time") from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"executor unreachable: {type(exc).__name__}") from None
        if len(raw) > MAX_EXECUTOR_RESPONSE_BYTES:
            raise UpstreamError("executor response too large", upstream_status=status)
        if not 200 <= status < 300:
            raise UpstreamError(f"executor answered HTTP {status}", upstream_status=status)
        try:
            body: Any = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            body = None
        return ForwardResult(status, body)
