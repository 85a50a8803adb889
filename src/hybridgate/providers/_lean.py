"""A lean HTTP/1.1 client for one job: a non-streaming JSON POST to a plain-HTTP upstream.

Why: on a short request to a nearby upstream (a vLLM, llama.cpp or Ollama server
on the same network), aiohttp's client was over a quarter of the gateway's
GIL-held time per request (py-spy under wrk): a request, a response, a
payload, a stream reader, a URL, timer handles and cookie filtering per call,
most of it generic machinery this call does not use. Here a request is one
prebuilt head plus the body in one write on a pooled keep-alive connection, and
the answer is parsed by httptools (llhttp, the parser uvicorn already uses).

It does only what that call needs and hands everything else back to aiohttp
(:class:`Unsupported`, raised before anything was sent): HTTPS, header values it
would have to encode, header names that change framing. What a caller sees
stays aiohttp's: the same request headers (aiohttp's ``User-Agent``,
``Accept-Encoding: gzip, deflate``), gzip and deflate answers decoded, and the
same exception types for the same failures (:class:`aiohttp.ClientConnectorError`
for a refused connection, :class:`aiohttp.ServerDisconnectedError` for a
connection closed before the answer, :class:`aiohttp.ClientPayloadError` for one
closed inside the body), so the provider maps them to the same errors. A
redirect or a cookie is left to aiohttp too: the caller repeats the request
through aiohttp for a redirect and stops using this client for an upstream that
sets cookies (its session keeps and sends them, as before).

A pooled connection is only reused in step: bytes that arrive outside an exchange
(after its answer, or while it waits in the pool) mean the upstream sent something
nobody asked for, and the connection is closed rather than let the next request
read it as its own answer.
"""

from __future__ import annotations

import asyncio
import collections
import time
import zlib
from dataclasses import dataclass
from typing import cast

import aiohttp
import httptools
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http import SERVER_SOFTWARE
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

#: Idle keep-alive connections are dropped after this long (aiohttp's connector: 30 s).
KEEPALIVE_S = 30.0
#: Statuses aiohttp follows (the caller repeats the request through aiohttp).
REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Request headers whose meaning the head built here would have to take over.
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "expect"})


class Unsupported(Exception):
    """This request is for aiohttp (nothing was sent)."""


class TooLarge(Exception):
    """The answer passed the caller's size bound."""


class _OutOfStep(Exception):
    """A second message began after the answer (the connection is closed already)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    #: The upstream set a cookie, or answered with a redirect: the caller's aiohttp
    #: session takes over (cookies are kept in its jar).
    set_cookies: tuple[str, ...]
    location: bool


def request_head(url: str, headers: dict[str, str]) -> tuple[bytes, str, int]:
    """The request line and headers (up to the body's length) for a POST of JSON to
    ``url``, with aiohttp's default headers; the host and port to connect to.
    :class:`Unsupported` for anything but plain HTTP with encodable headers."""
    u = URL(url)
    if u.scheme != "http" or not u.host or u.user or u.password:
        raise Unsupported(url)
    merged = {
        "host": u.host if u.port == 80 else f"{u.host}:{u.port}",
        "accept": "*/*",
        "accept-encoding": "gzip, deflate",
        "user-agent": SERVER_SOFTWARE,
    }
    names = {"host": "Host", "accept": "Accept", "accept-encoding": "Accept-Encoding"}
    names["user-agent"] = "User-Agent"
    for k, v in headers.items():
        low = k.lower()
        if low in _FRAMING:
            raise Unsupported(k)
        merged[low] = v
        names[low] = k
    merged.setdefault("content-type", "application/json")
    names.setdefault("content-type", "Content-Type")
    lines = [f"POST {u.raw_path_qs} HTTP/1.1"]
    for low, v in merged.items():
        line = f"{names[low]}: {v}"
        if "\r" in line or "\n" in line or not line.isascii():
            raise Unsupported(low)
        lines.append(line)
    lines.append("Content-Length: ")
    return "\r\n".join(lines).encode("ascii"), u.host, u.port or 80


class _Conn(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._reset()

    def _reset(self) -> None:
        self._complete = False
        self._body = bytearray()
        self._encoding = b""
        self._cookies: list[str] = []
        self._location = False
        self._headers_done = False
        self._framed = False

    # -- asyncio.Protocol ----------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for: after its answer, or while idle in the pool. An
            # upstream that sends them is out of step (a second answer, a smuggled one);
            # reused, the connection would hand them to the next request as its answer.
            self._fail(aiohttp.ServerDisconnectedError("data outside an exchange"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:  # a callback's error is its context
            if isinstance(exc.__context__, _OutOfStep):
                return  # failed (and closed) in the callback
            if isinstance(exc.__context__, TooLarge):
                self._fail(exc.__context__)
            else:
                self._fail(aiohttp.ClientResponseError(_INFO, (), message=f"bad answer: {exc}"))

    def eof_received(self) -> bool:
        return False  # close

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        w = self._waiter
        if w is None or w.done():
            return
        if self._headers_done and not self._framed:  # a body read until the close
            self._finish()
        elif self._headers_done:
            w.set_exception(aiohttp.ClientPayloadError("connection closed inside the answer"))
        else:
            w.set_exception(aiohttp.ServerDisconnectedError())

    # -- httptools callbacks -------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        low = name.lower()
        if low == b"content-encoding":
            self._encoding = value.strip().lower()
        elif low == b"set-cookie":
            self._cookies.append(value.decode("latin-1"))
        elif low == b"location":
            self._location = True
        elif low in (b"content-length", b"transfer-encoding"):
            self._framed = True
            if low == b"content-length" and value.strip().isdigit() and int(value) > self.limit:
                raise TooLarge

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body += body
        if len(self._body) > self.limit:
            raise TooLarge

    def on_message_complete(self) -> None:
        if self._parser.get_status_code() < 200:  # an interim answer; the real one follows
            self._reset()
            return
        self._finish()
        # Whatever follows in the same read is a message nobody asked for (see
        # ``data_received``): stop parsing, and never reuse the connection.
        if not self.closed:
            self._complete = True

    def on_message_begin(self) -> None:
        if self._complete:
            self._fail(aiohttp.ServerDisconnectedError("data outside an exchange"))
            raise _OutOfStep

    # -- the request ---------------------------------------------------------
    def _finish(self) -> None:
        w = self._waiter
        if w is None or w.done():
            return
        try:
            body = _decode(bytes(self._body), self._encoding, self.limit)
        except (zlib.error, TooLarge) as exc:
            w.set_exception(
                exc if isinstance(exc, TooLarge) else aiohttp.ClientPayloadError(str(exc))
            )
            return
        status = self._parser.get_status_code()
        if not self._parser.should_keep_alive() or not self._framed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()
        w.set_result(Answer(status, body, tuple(self._cookies), self._location))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def exchange(self, data: bytes) -> Answer:
        assert self.transport is not None
        self._reset()
        waiter: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(data)
        try:
            return await waiter
        finally:
            self._waiter = None


#: What aiohttp's response errors carry about their request (nothing of it is shown).
_INFO = aiohttp.RequestInfo(URL(), "POST", CIMultiDictProxy(CIMultiDict()), URL())


def _decode(body: bytes, encoding: bytes, limit: int) -> bytes:
    """gzip and deflate (zlib-wrapped or raw) as aiohttp decodes them; anything else as is."""
    if encoding == b"gzip":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == b"deflate":
        d = zlib.decompressobj(zlib.MAX_WBITS if body[:1] == b"\x78" else -zlib.MAX_WBITS)
    else:
        return body
    out = d.decompress(body, limit + 1)
    if len(out) > limit:
        raise TooLarge
    return out + d.flush()


class LeanPool:
    """Keep-alive connections to the upstreams of one route, at most ``limit`` open
    (aiohttp's connector held 256); idle ones are reused newest first."""

    def __init__(self, limit: int = 256) -> None:
        self._idle: dict[tuple[str, int], collections.deque[_Conn]] = {}
        self._slots = asyncio.Semaphore(limit)
        self._loop = asyncio.get_running_loop()

    async def post(
        self, head: bytes, host: str, port: int, body: bytes, connect_s: float, max_bytes: int
    ) -> Answer:
        """POST ``body`` after ``head`` (from :func:`request_head`)."""
        data = head + str(len(body)).encode() + b"\r\n\r\n" + body
        async with self._slots:
            conn = self._take(host, port)
            if conn is None:
                conn = await self._connect(host, port, connect_s, max_bytes)
            try:
                answer = await conn.exchange(data)
            except BaseException:
                if conn.transport is not None:
                    conn.transport.close()
                raise
            if not conn.closed:
                conn.idle_since = time.monotonic()
                self._idle.setdefault((host, port), collections.deque()).append(conn)
            return answer

    def _take(self, host: str, port: int) -> _Conn | None:
        idle = self._idle.get((host, port))
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_S:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    async def _connect(self, host: str, port: int, connect_s: float, max_bytes: int) -> _Conn:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_s):
                transport, conn = await loop.create_connection(lambda: _Conn(max_bytes), host, port)
        except OSError as exc:
            key = ConnectionKey(host, port, False, True, None, None, None, None)
            raise aiohttp.ClientConnectorError(key, exc) from exc
        conn.transport = transport  # uvloop calls connection_made only on the next iteration
        return conn

    def close(self) -> None:
        """Close the idle connections (those of a loop that closed are gone already)."""
        if self._loop.is_closed():
            self._idle.clear()
            return
        for idle in self._idle.values():
            for conn in idle:
                if conn.transport is not None:
                    conn.transport.close()
        self._idle.clear()
