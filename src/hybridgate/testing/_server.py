"""A real HTTP server on 127.0.0.1 in a background thread, with fault injection.

The upstreams run their own event loop in a daemon thread so they serve
synchronous code (the official SDKs, CLI checks) and async tests alike.
Faults are real at the socket level: *refuse* closes the listening socket
and drops kept-alive connections, *cut* closes a stream's connection without
a final event, *stall* holds the request past the client's timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self

from aiohttp import web

from hybridgate.testing._behaviour import Behaviour, Controller, RecordedRequest, safe_headers
from hybridgate.testing._behaviour import strings as _strings

#: bodies larger than this are refused with 413 (tests never need more)
MAX_BODY_BYTES = 64 * 1024 * 1024

Handler = Callable[[web.Request, "Call"], Awaitable[web.StreamResponse]]


class Call:
    """One admitted request: its number, parsed body, and the knobs in force for it."""

    __slots__ = ("behaviour", "body", "n")

    def __init__(self, n: int, body: Any, behaviour: Behaviour) -> None:
        self.n = n
        self.body = body
        self.behaviour = behaviour


class LoopbackUpstream:
    """Base of :class:`OpenAIUpstream` and :class:`AnthropicUpstream`."""

    _base_path = ""

    def __init__(self, *, port: int = 0, **behaviour: Any) -> None:
        """``port=0`` picks a free port; ``behaviour`` sets :class:`Behaviour` fields."""
        if not 0 <= port <= 65535:
            raise ValueError("port must be in 0..65535")
        self._ctl = Controller()
        if behaviour:
            self._ctl.configure(**behaviour)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self._port = port
        self._refusing = False
        self._unstall: asyncio.Event | None = None

    # -- wire-format hooks ---------------------------------------------------

    def _routes(self) -> list[tuple[str, str, Handler]]:
        raise NotImplementedError

    def _error(self, status: int, message: str) -> web.Response:
        raise NotImplementedError

    def _authorized(self, request: web.Request, key: str) -> bool:
        raise NotImplementedError

    # -- lifecycle -------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return self.origin + self._base_path

    def start(self) -> Self:
        if self._thread is not None:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # reported to start() below
                errors.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=run, name=type(self).__name__, daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise RuntimeError(f"loopback upstream failed to start: {errors[0]!r}")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        self._thread = self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def _serve(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        for method, path, handler in self._routes():
            app.router.add_route(method, self._base_path + path, self._wrap(handler))
        self._unstall = asyncio.Event()
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.5
        )
        await self._runner.setup()
        await self._listen()

    async def _listen(self) -> None:
        assert self._runner is not None
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        self._port = sock.getsockname()[1]
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()

    async def _shutdown(self) -> None:
        if self._unstall is not None:
            self._unstall.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _run(self, coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("upstream is not running; call start() first")
        asyncio.run_coroutine_threadsafe(coro(), loop).result(10)

    # -- fault injection and recording -------------------------------------------

    def configure(self, **changes: Any) -> Behaviour:
        """Change knobs of :class:`Behaviour` (thread-safe); returns the new behaviour."""
        beh = self._ctl.configure(**changes)
        if beh.stall_s <= 0 and self._loop is not None and self._unstall is not None:
            self._loop.call_soon_threadsafe(self._unstall.set)
        return beh

    def set_reply(self, text: str | None) -> None:
        """Fixed reply text; ``None`` restores the echo of the last user message."""
        self.configure(reply=text)

    def set_latency(self, seconds: float) -> None:
        self.configure(latency_s=seconds)

    def stall(self, seconds: float = 30.0) -> None:
        """Hold each request ``seconds`` before answering; ``0`` releases held ones now."""
        self.configure(stall_s=seconds)

    def cut_stream_after(self, events: int | None) -> None:
        """Close streams after ``events`` events, with no final event; ``None`` disables."""
        self.configure(cut_after=events)

    def use_tools(self, on: bool = True, arguments: dict[str, Any] | None = None) -> None:
        """Answer requests that offer tools with a call to the first (or forced) tool."""
        self.configure(tool_calls=on, tool_arguments=arguments)

    @property
    def behaviour(self) -> Behaviour:
        return self._ctl.behaviour

    def reset(self) -> None:
        """Back to the default behaviour, no pending failures, accepting connections."""
        self._ctl.reset()
        if self._refusing:
            self.accept_connections()

    def fail_next(self, n: int = 1, status: int = 500, message: str = "injected failure") -> None:
        """Answer the next ``n`` requests with ``status`` in the API's own error format."""
        self._ctl.fail_next(n, status, message)

    def refuse_connections(self) -> None:
        """Stop listening (new connections are refused) and drop kept-alive ones."""
        self._refusing = True

        async def close() -> None:
            if self._site is not None:
                await self._site.stop()
                self._site = None

        self._run(close)

    def accept_connections(self) -> None:
        """Listen again on the same port."""
        self._refusing = False

        async def reopen() -> None:
            if self._site is None:
                await self._listen()

        self._run(reopen)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy), oldest first."""
        return self._ctl.requests

    def clear(self) -> None:
        self._ctl.clear()

    def all_text(self) -> str:
        """Every string in every received body, newline-joined: what a leak test searches."""
        return "\n".join(s for r in self.requests for s in _strings(r.body))

    # -- request plumbing ------------------------------------------------------------

    def _wrap(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if self._refusing:  # a kept-alive connection from before refuse_connections()
                if request.transport is not None:
                    request.transport.abort()
                return web.Response(status=503)  # never delivered: the socket is gone
            raw = await request.read()
            body: Any
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                body = None
            n, beh, fail = self._ctl.admit(
                request.method, request.path, safe_headers(iter(request.headers.items())), body
            )
            if beh.stall_s > 0 and self._unstall is not None:
                self._unstall.clear()
                # Timing out here is the point: the request stalled for the whole window.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._unstall.wait(), beh.stall_s)
            if beh.latency_s > 0:
                await asyncio.sleep(beh.latency_s)
            if beh.api_key is not None and not self._authorized(request, beh.api_key):
                return self._error(401, "invalid api key")
            if fail is not None:
                return self._error(fail[0], fail[1])
            if raw and body is None:
                return self._error(400, "body is not valid JSON")
            return await handler(request, Call(n, body, beh))

        return wrapped


async def write_events(
    request: web.Request, frames: list[bytes], cut_after: int | None, interval_s: float = 0.0
) -> web.StreamResponse:
    """Send SSE frames; with ``cut_after`` close the connection early, mid-stream;
    with ``interval_s`` pause that long between frames."""
    resp = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
    )
    await resp.prepare(request)
    if cut_after is None and interval_s <= 0:
        # One write: events stay separate on the wire, the upstream stays cheap to run.
        await resp.write(b"".join(frames))
        await resp.write_eof()
        return resp
    for i, frame in enumerate(frames[:cut_after]):
        if i and interval_s > 0:
            await asyncio.sleep(interval_s)
        await resp.write(frame)
    if cut_after is None:
        await resp.write_eof()
        return resp
    if request.transport is not None:
        request.transport.close()
    return resp
