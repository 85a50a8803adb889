"""Running the app: in the foreground for ``serve``, or on a background thread
for tests, the demo and benchmarks (real sockets on loopback, port 0)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
from types import TracebackType
from typing import Any

import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: Seconds a client has to send a request line and headers (slowloris defence).
DEFAULT_HEADER_TIMEOUT_S = 10.0


class HeadWithBody:
    """A response's transport that sends its status line and headers with the first body
    bytes, in one write (one ``send`` system call instead of two).

    uvicorn writes the head as soon as the app sends ``http.response.start`` and the body
    on the next message; a JSON answer sends both in the same step of its task, so the
    head is held and joined to the body. A head whose body does not follow in that step
    (a stream still waiting for its first event) goes out on its own at the loop's next
    iteration, so nothing is held longer than the step that wrote it. Only the first
    write of a response is held; a close sends what is held first.
    """

    __slots__ = ("_first", "_held", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._first = True

    def write(self, data: bytes) -> None:
        if self._first:
            self._first = False
            self._held = data
            self._loop.call_soon(self._flush)
            return
        held, self._held = self._held, None
        self._transport.write(held + data if held is not None else data)

    def _flush(self) -> None:
        held, self._held = self._held, None
        if held is not None and not self._transport.is_closing():
            self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools HTTP protocol with a header read deadline.

    uvicorn closes idle keep-alive connections but never one that trickles its
    request line and headers a byte at a time, so a few hundred such clients
    hold every connection slot. The deadline is armed when a connection opens
    and after each response, and disarmed once a request's headers are complete;
    a body is the app's to bound (the body deadline of ``api/edge.py``).

    The deadline is the ``header_timeout_s`` attribute of uvicorn's config
    (:func:`uvicorn_config` sets it). A module-level class configured that way,
    rather than a class made per value, is what ``serve --workers`` needs: the
    config travels to each worker process by pickling, and a class travels by name.
    """

    _header_timer: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        self._disarm()
        timeout = getattr(self.config, "header_timeout_s", DEFAULT_HEADER_TIMEOUT_S)
        self._header_timer = self.loop.call_later(timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            return  # a request is being served: its headers arrived
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._disarm()
        previous = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not previous:  # a new request (not an upgrade)
            cycle.transport = HeadWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()


def uvicorn_config(
    app: ASGIApp | str,
    host: str,
    port: int,
    log_level: str,
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    **extra: Any,
) -> uvicorn.Config:
    """The one uvicorn configuration of every way the gateway is served (``extra``:
    ``workers`` and ``factory`` for ``serve --workers``)."""
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        loop="auto",
        http=HeaderDeadlineProtocol,
        lifespan="on",
        timeout_graceful_shutdown=5,
        **extra,
    )
    config.header_timeout_s = header_timeout_s  # type: ignore[attr-defined]
    return config


def short_gil_switch() -> None:
    """A 0.5 ms GIL switch interval for a serving process (each worker's too).

    The store's writer thread (and, on PostgreSQL, the budget batch threads) do
    Python work beside the event loop. With the default 5 ms interval the loop
    can wait a whole interval for the GIL after handing over a write; 0.5 ms
    measured ~1.4 ms less added latency per request (see benchmarks/overhead.py).
    """
    sys.setswitchinterval(0.0005)


#: Young-generation threshold of a serving process (CPython's default is 700).
GC_YOUNG_THRESHOLD = 5000


def tune_gc() -> None:
    """Collect once, freeze what exists, and collect the young generation less often.

    Called once the app is built, before it serves. Frozen objects (the app, its
    scanner's automata, the policy, every module) are never traversed again, so a
    full collection walks only what serving created; a request's objects mostly die
    before a young collection at 5,000 allocations instead of being traversed and
    promoted at 700. On agent conversations growing to 100 KB this cut the gateway's
    CPU per request by 15-20 % (4.47 → 3.68 and 5.26 → 4.21 ms,
    ``benchmarks/overhead_ab.py --growing-kb 100``); on short chats the difference
    was within the run-to-run noise.
    """
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def serve_forever(
    app: ASGIApp,
    host: str,
    port: int,
    log_level: str = "info",
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
) -> None:
    short_gil_switch()
    tune_gc()
    uvicorn.Server(uvicorn_config(app, host, port, log_level, header_timeout_s)).run()


class ServerThread:
    """Serve an ASGI app on a background thread; ``base_url`` is known once started."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S,
    ) -> None:
        self.server = uvicorn.Server(uvicorn_config(app, host, port, "warning", header_timeout_s))
        # uvicorn installs signal handlers only on the main thread, never here.
        self._thread = threading.Thread(target=self._run, name="hybridgate-server", daemon=True)
        self.host = host
        self.port = port
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            asyncio.run(self.server.serve())
        except BaseException as exc:  # reported to the starting thread
            self.error = exc

    def start(self, timeout: float = 30.0) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server failed to start: {self.error!r}")
            if time.monotonic() > deadline:
                raise TimeoutError("server did not start in time")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        self.port = sock.getsockname()[1]
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=15)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
