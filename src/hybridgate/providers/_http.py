"""The HTTP seam shared by the remote providers: session, timeouts, error mapping.

Every transport failure is translated here into the gateway's exception tree,
so provider modules only deal with their own wire format. Error text coming
back from an upstream is treated as hostile: it is truncated, stripped of
control characters and scrubbed of the route's API key and key-shaped tokens
before it can reach a client or a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncGenerator, Callable
from http.cookies import CookieError, SimpleCookie
from typing import Any

import aiohttp
from yarl import URL

from hybridgate import fastjson
from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError, UpstreamTimeout
from hybridgate.providers._lean import REDIRECTS, LeanPool, TooLarge, Unsupported, request_head

#: A non-streaming answer larger than this is refused (a model reply is far smaller).
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_MAX_ERROR_CHARS = 400
_KEYLIKE = re.compile(r"\b(?:sk|pk|rk|key|sess)-[A-Za-z0-9_\-]{6,}|\bBearer\s+[^\s\"']{6,}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def sanitize_message(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Upstream error text made safe to show: no keys, no control chars, bounded."""
    text = text[: _MAX_ERROR_CHARS * 4]
    for s in secrets:
        if s:
            text = text.replace(s, "***")
    text = _KEYLIKE.sub("***", text)
    text = _CONTROL.sub(" ", text).strip()
    if len(text) > _MAX_ERROR_CHARS:
        text = text[:_MAX_ERROR_CHARS] + "…"
    return text


def status_error(
    route: RouteConfig, status: int, message: str, *, retryable: bool | None = None
) -> UpstreamError:
    """An HTTP error status as an UpstreamError: 5xx and 429 may be retried, 4xx may not."""
    if retryable is None:
        retryable = status >= 500 or status in (408, 409, 429)
    clean = sanitize_message(message, (route.api_key or "",)) or "no message"
    code = "upstream_rate_limited" if status == 429 else "upstream_error"
    return UpstreamError(
        f"route {route.name}: upstream answered HTTP {status}: {clean}",
        upstream_status=status,
        retryable=retryable,
        code=code,
    )


def transport_error(route: RouteConfig, exc: BaseException) -> UpstreamError:
    """Map an aiohttp / asyncio failure to UpstreamTimeout or a retryable UpstreamError."""
    if isinstance(exc, UpstreamError):
        return exc
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(f"route {route.name}: upstream timed out", retryable=True)
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(
            f"route {route.name}: upstream closed the connection mid-response",
            retryable=True,
            code="upstream_stream_cut",
        )
    if isinstance(exc, (aiohttp.ClientConnectionError, ConnectionError, OSError)):
        return UpstreamError(
            f"route {route.name}: upstream unreachable ({type(exc).__name__})",
            retryable=True,
            code="upstream_unreachable",
        )
    return UpstreamError(
        f"route {route.name}: upstream request failed ({type(exc).__name__})",
        retryable=True,
    )


def error_message_from_body(raw: bytes) -> str:
    """The ``message`` of an OpenAI or Anthropic error body, else the body's start."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:_MAX_ERROR_CHARS].decode("utf-8", "replace")
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
    return raw[:_MAX_ERROR_CHARS].decode("utf-8", "replace")


class HTTPClient:
    """A keep-alive aiohttp session, created lazily inside the running loop.

    Sessions belong to one event loop; if the provider is used from another
    loop (tests create one per test) a fresh session is made for it.

    A non-streaming POST to a plain-HTTP upstream, without per-call headers,
    goes through the lean client of :mod:`hybridgate.providers._lean` instead
    (the same request and the same errors at a fraction of the CPU); it hands
    back to aiohttp whatever it does not do (see there).
    """

    def __init__(self, route: RouteConfig, headers: dict[str, str]) -> None:
        self.route = route
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lean: LeanPool | None = None
        #: Request heads per URL; None: that URL is aiohttp's (see ``_lean_head``).
        self._heads: dict[str, tuple[bytes, str, int] | None] = {}
        #: The upstream set a cookie: aiohttp's session (its jar) does every request now.
        self._cookies = False
        # Built once per route, not per request.
        self._timeouts = {
            # a long answer may stream for minutes; bound the gaps instead
            True: aiohttp.ClientTimeout(
                total=None, connect=route.connect_timeout_s, sock_read=route.timeout_s
            ),
            False: aiohttp.ClientTimeout(
                total=route.timeout_s, connect=route.connect_timeout_s, sock_read=route.timeout_s
            ),
        }

    def session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30.0)
            self._session = aiohttp.ClientSession(
                connector=connector, headers=self._headers, auto_decompress=True
            )
            if self._lean is not None:
                self._lean.close()  # its connections belong to the loop that was
            self._lean = LeanPool()
            self._loop = loop
        return self._session

    def _lean_head(self, url: str) -> tuple[bytes, str, int] | None:
        try:
            return self._heads[url]
        except KeyError:
            pass
        try:
            head: tuple[bytes, str, int] | None = request_head(url, self._headers)
        except Unsupported:
            head = None
        if len(self._heads) < 64:  # a route posts to a few URLs of its own
            self._heads[url] = head
        return head

    async def _post_lean(
        self, url: str, target: tuple[bytes, str, int], data: bytes
    ) -> tuple[int, bytes] | None:
        """(status, body) through the lean client; None: aiohttp repeats it (a redirect)."""
        self.session()  # the pool of this loop
        assert self._lean is not None
        head, host, port = target
        try:
            async with asyncio.timeout(self.route.timeout_s):
                answer = await self._lean.post(
                    head, host, port, data, self.route.connect_timeout_s, MAX_RESPONSE_BYTES
                )
        except TooLarge:
            raise UpstreamError(
                "upstream response too large", code="upstream_protocol_error"
            ) from None
        if answer.set_cookies:  # kept in the session's jar and sent by aiohttp from now on
            self._cookies = True
            jar = self.session().cookie_jar
            for header in answer.set_cookies:
                cookie: SimpleCookie = SimpleCookie()
                with contextlib.suppress(CookieError):
                    cookie.load(header)
                    jar.update_cookies(cookie, URL(url))
        if answer.location and answer.status in REDIRECTS:
            return None
        return answer.status, answer.body

    def timeout(self, *, stream: bool) -> aiohttp.ClientTimeout:
        return self._timeouts[stream]

    async def post_json(
        self,
        url: str,
        body: dict[str, Any],
        on_error: Callable[[int, bytes], UpstreamError],
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """POST and return the decoded JSON object; errors arrive as UpstreamError."""
        try:
            target = None if headers or self._cookies else self._lean_head(url)
            answer = None
            if target is not None:
                answer = await self._post_lean(url, target, fastjson.dumps(body))
            if answer is None:
                session = self.session()
                async with session.post(
                    url, data=_encode(body), timeout=self._timeouts[False], headers=headers
                ) as resp:
                    answer = resp.status, await _read_bounded(resp)
                self._cookies = self._cookies or len(session.cookie_jar) > 0
            status, raw = answer
            if status >= 400:
                raise on_error(status, raw)
        except UpstreamError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(self.route, exc) from None
        try:
            data = fastjson.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                f"route {self.route.name}: upstream sent a body that is not JSON",
                code="upstream_protocol_error",
            ) from None
        if not isinstance(data, dict):
            raise UpstreamError(
                f"route {self.route.name}: upstream sent JSON that is not an object",
                code="upstream_protocol_error",
            )
        return data

    async def post_stream(
        self,
        url: str,
        body: dict[str, Any],
        on_error: Callable[[int, bytes], UpstreamError],
        headers: dict[str, str] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """POST and yield raw body chunks; a broken transfer raises mid-iteration."""
        try:
            async with self.session().post(
                url, data=_encode(body), timeout=self._timeouts[True], headers=headers
            ) as resp:
                if resp.status >= 400:
                    raise on_error(resp.status, await _read_bounded(resp))
                async for chunk in resp.content.iter_any():
                    yield chunk
        except UpstreamError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(self.route, exc) from None

    async def aclose(self) -> None:
        if self._lean is not None:
            self._lean.close()
            self._lean = None
        if self._session is not None and not self._session.closed:
            # A session bound to a loop that already closed has nothing left to free.
            with contextlib.suppress(RuntimeError):
                await self._session.close()
        self._session = None


def _encode(body: dict[str, Any]) -> aiohttp.BytesPayload:
    """The JSON body as bytes (orjson); aiohttp's ``json=`` would use the stdlib encoder."""
    return aiohttp.BytesPayload(fastjson.dumps(body), content_type="application/json")


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > MAX_RESPONSE_BYTES:
        raise UpstreamError("upstream response too large", code="upstream_protocol_error")
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(65536):
        buf += chunk
        if len(buf) > MAX_RESPONSE_BYTES:
            raise UpstreamError("upstream response too large", code="upstream_protocol_error")
    return bytes(buf)
