"""A response's head goes out with its body in one write, and never waits for a slow body."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from starlette.types import Receive, Scope, Send

from hybridgate.server import HeadWithBody, ServerThread


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_the_head_joins_the_body_written_in_the_same_step() -> None:
    t = Recording()
    w = HeadWithBody(t, asyncio.get_running_loop())
    w.write(b"HEAD")
    w.write(b"BODY")
    w.write(b"MORE")
    await asyncio.sleep(0)
    assert t.writes == [b"HEADBODY", b"MORE"]


async def test_a_head_without_a_body_goes_out_at_the_next_iteration_and_before_a_close() -> None:
    t = Recording()
    w = HeadWithBody(t, asyncio.get_running_loop())
    w.write(b"HEAD")
    assert t.writes == []
    await asyncio.sleep(0)
    assert t.writes == [b"HEAD"]
    t2 = Recording()
    w2 = HeadWithBody(t2, asyncio.get_running_loop())
    w2.write(b"HEAD")
    w2.close()
    assert t2.writes == [b"HEAD"] and t2.closed


def test_a_stream_gets_its_head_before_its_first_event() -> None:
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await release.wait()  # the body comes only once the client saw the head
        await send({"type": "http.response.body", "body": b"done", "more_body": False})

    with (
        ServerThread(app) as server,
        socket.create_connection((server.host, server.port), timeout=30) as sock,
    ):
        sock.sendall(b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        server.server.servers[0].get_loop().call_soon_threadsafe(release.set)
        rest = head.split(b"\r\n\r\n", 1)[1]
        while b"done" not in rest:
            rest += sock.recv(4096)
