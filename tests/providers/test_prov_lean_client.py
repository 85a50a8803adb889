"""The lean client for non-streaming POSTs: the same request and the same errors as aiohttp.

A raw asyncio server in the test's own loop answers with exact bytes (framings,
encodings, interim answers, cuts), and records every request it read and on
which connection.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers import _http
from hybridgate.providers.openai_compat import OpenAICompatProvider

REQ: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}
ANSWER = json.dumps(
    {
        "id": "c",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


def ok(body: bytes = ANSWER, extra: str = "") -> bytes:
    head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n{extra}"
    return head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class Seen:
    connection: int
    head: dict[str, str]
    path: str
    body: bytes


@dataclass
class Raw:
    """Answers each request with ``answer(seen)``: bytes, and whether to close after."""

    answer: Callable[[Seen], tuple[bytes, bool]] = lambda _: (ok(), False)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0


async def _read_request(reader: asyncio.StreamReader, conn: int) -> Seen | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    lines = head.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        if line:
            k, _, v = line.partition(":")
            fields[k.strip().lower()] = v.strip()
    body = await reader.readexactly(int(fields.get("content-length", "0")))
    return Seen(conn, fields, lines[0].split(" ")[1], body)


@pytest.fixture
async def raw() -> AsyncIterator[Raw]:
    state = Raw()
    conns = iter(range(1_000_000))

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(conns)
        try:
            while (seen := await _read_request(reader, conn)) is not None:
                state.seen.append(seen)
                data, close = state.answer(seen)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    yield state
    server.close()
    await server.wait_closed()


def provider(port: int, host: str = "127.0.0.1", **route: Any) -> OpenAICompatProvider:
    return OpenAICompatProvider(
        RouteConfig(
            name="r",
            provider="openai_compat",
            model="m",
            base_url=f"http://{host}:{port}/v1",
            location="on_prem",
            **route,
        )
    )


async def chat(p: OpenAICompatProvider) -> dict[str, Any]:
    return (await p.chat(REQ)).body


async def chats(p: OpenAICompatProvider, n: int) -> list[dict[str, Any]]:
    """``n`` chats one after another through ``p``, which is closed after them."""
    try:
        return [await chat(p) for _ in range(n)]
    finally:
        await p.aclose()


def hello(answer: dict[str, Any]) -> bool:
    return bool(answer["choices"][0]["message"]["content"] == "hello")


async def test_sends_what_aiohttp_sends_and_keeps_the_connection(raw: Raw) -> None:
    p = provider(raw.port, api_key="sk-test", headers={"x-team": "t1"})
    try:
        assert (await chat(p))["choices"][0]["message"]["content"] == "hello"
        assert (await chat(p))["choices"]
        # the same body through aiohttp's session, as every request went before
        url = f"http://127.0.0.1:{raw.port}/v1/chat/completions"
        async with p._http.session().post(url, data=_http._encode({"a": 1})) as resp:
            await resp.read()
    finally:
        await p.aclose()
    lean, again, via_aiohttp = raw.seen
    assert lean.connection == again.connection  # kept alive and reused
    assert lean.path == via_aiohttp.path == "/v1/chat/completions"
    assert set(lean.head) == set(via_aiohttp.head)
    for name in lean.head.keys() - {"content-length"}:
        assert lean.head[name] == via_aiohttp.head[name], name
    assert lean.head["authorization"] == "Bearer sk-test" and lean.head["x-team"] == "t1"
    assert json.loads(lean.body)["model"] == "m"


@pytest.mark.parametrize(
    "answer",
    [
        ok(gzip.compress(ANSWER), "content-encoding: gzip\r\n"),
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        + b"".join(
            b"%x\r\n%s\r\n" % (len(ANSWER[i : i + 7]), ANSWER[i : i + 7])
            for i in range(0, len(ANSWER), 7)
        )
        + b"0\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(),
    ],
    ids=["gzip", "chunked", "interim-100"],
)
async def test_framings_and_encodings(raw: Raw, answer: bytes) -> None:
    raw.answer = lambda _: (answer, False)
    assert all(map(hello, await chats(provider(raw.port), 2)))
    assert raw.seen[0].connection == raw.seen[1].connection


async def test_a_body_read_until_the_close(raw: Raw) -> None:
    raw.answer = lambda _: (b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n" + ANSWER, True)
    assert all(a["choices"] for a in await chats(provider(raw.port), 2))
    assert raw.seen[0].connection != raw.seen[1].connection  # not reused after a close


async def test_failures_map_to_the_same_errors(raw: Raw) -> None:
    cases: list[tuple[bytes, bool, str]] = [
        (
            b"HTTP/1.1 200 OK\r\ncontent-length: 500\r\n\r\n" + ANSWER[:20],
            True,
            "upstream_stream_cut",
        ),
        (b"", True, "upstream_unreachable"),  # closed without an answer
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]", False, "upstream_protocol_error"),
        (b"NOT HTTP AT ALL\r\n\r\n", True, "upstream_error"),
    ]
    for data, close, code in cases:
        raw.answer = lambda _, d=data, c=close: (d, c)  # type: ignore[misc]
        p = provider(raw.port)
        try:
            with pytest.raises(UpstreamError) as ei:
                await chat(p)
        finally:
            await p.aclose()
        assert ei.value.code == code, data


async def test_refused_connection_and_error_status(raw: Raw) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    p = provider(closed_port)
    with pytest.raises(UpstreamError) as ei:
        await chat(p)
    await p.aclose()
    assert ei.value.code == "upstream_unreachable" and ei.value.retryable

    err = json.dumps({"error": {"message": "overloaded"}}).encode()
    raw.answer = lambda _: (ok(err).replace(b"200 OK", b"503 Service Unavailable"), False)
    p = provider(raw.port)
    with pytest.raises(UpstreamError) as ei:
        await chat(p)
    await p.aclose()
    assert ei.value.upstream_status == 503 and "overloaded" in ei.value.message


async def test_an_answer_past_the_bound_is_refused(
    raw: Raw, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_http, "MAX_RESPONSE_BYTES", 64)
    for answer in (ok(), ok(gzip.compress(ANSWER), "content-encoding: gzip\r\n")):
        raw.answer = lambda _, a=answer: (a, False)  # type: ignore[misc]
        p = provider(raw.port)
        with pytest.raises(UpstreamError, match="too large"):
            await chat(p)
        await p.aclose()


async def test_redirects_and_cookies_are_left_to_aiohttp(raw: Raw) -> None:
    def answer(seen: Seen) -> tuple[bytes, bool]:
        moved = any(s.path == "/v1/moved" for s in raw.seen)
        if seen.path == "/v1/chat/completions" and not moved:
            return b"HTTP/1.1 307 Moved\r\nlocation: /v1/moved\r\ncontent-length: 0\r\n\r\n", False
        if seen.path == "/v1/moved":
            return ok(extra="set-cookie: lb=node-2; Path=/\r\n"), False
        return ok(), False

    raw.answer = answer
    p = provider(raw.port, host="localhost")  # aiohttp's jar keeps no cookie of an IP address
    try:
        assert (await chat(p))["choices"]  # lean got the 307; aiohttp repeated and followed it
        assert (await chat(p))["choices"]  # the upstream set a cookie: aiohttp sends it
    finally:
        await p.aclose()
    paths = [s.path for s in raw.seen]
    assert paths == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/moved",
        "/v1/chat/completions",
    ]
    assert raw.seen[1].head["user-agent"] == raw.seen[0].head["user-agent"]
    assert raw.seen[-1].head.get("cookie") == "lb=node-2"


async def test_a_cookie_the_lean_client_received_is_sent_from_then_on(raw: Raw) -> None:
    raw.answer = lambda s: (ok(extra="set-cookie: lb=node-1; Path=/\r\n"), False)
    assert all(a["choices"] for a in await chats(provider(raw.port, host="localhost"), 2))
    assert "cookie" not in raw.seen[0].head
    assert raw.seen[1].head.get("cookie") == "lb=node-1"


EVIL = json.dumps(
    {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "an answer nobody asked for"}}
        ],
    }
).encode()


async def test_an_answer_nobody_asked_for_never_reaches_the_next_request(raw: Raw) -> None:
    """An upstream out of step sends a second answer after the first, in the same write
    or later while the connection is idle: the connection is dropped, and the next
    request gets its own answer on a new one, never the stray."""
    calls = 0

    def answer(seen: Seen) -> tuple[bytes, bool]:
        nonlocal calls
        calls += 1
        return (ok() + ok(EVIL) if calls == 1 else ok()), False

    raw.answer = answer
    assert all(map(hello, await chats(provider(raw.port), 3)))
    conns = [s.connection for s in raw.seen]
    assert conns[0] != conns[1]  # the first connection, out of step, was not reused
    assert conns[1] == conns[2]


async def test_bytes_on_an_idle_connection_close_it() -> None:
    """The stray answer arrives after the exchange ended, while the connection waits in
    the pool for the next request."""
    conns: list[int] = []
    stray_sent = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = len(conns)
        conns.append(conn)
        try:
            while (seen := await _read_request(reader, conn)) is not None:
                writer.write(ok())
                await writer.drain()
                if conn == 0:
                    await asyncio.sleep(0.05)  # the client has its answer and is idle
                    writer.write(ok(EVIL)[:40])
                    await writer.drain()
                    await asyncio.sleep(0.05)
                    stray_sent.set()
                    writer.write(ok(EVIL)[40:])
                    await writer.drain()
                    del seen
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    p = provider(server.sockets[0].getsockname()[1])
    try:
        assert (await chat(p))["choices"][0]["message"]["content"] == "hello"
        await asyncio.wait_for(stray_sent.wait(), 5)
        assert (await chat(p))["choices"][0]["message"]["content"] == "hello"
    finally:
        await p.aclose()
        server.close()
        await server.wait_closed()
    assert conns == [0, 1]  # the idle connection that received bytes was dropped
