"""Hostile and malformed input: always a clear 4xx in the API's own format, never a 500.

Driven in-process (``httpx.ASGITransport``, in-memory providers): what is
checked is the HTTP layer and the pipeline, not the wire.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from asgi_harness import AsgiHarness, asgi_gateway


async def _post(h: AsgiHarness, path: str, content: bytes, **headers: str) -> httpx.Response:
    hdrs = {"authorization": f"Bearer {h.key}", "content-type": "application/json", **headers}
    return await h.client.post(path, content=content, headers=hdrs)


BAD_BODIES = [
    (b"{not json", "not valid JSON"),
    (b"", "empty"),
    (b"[1, 2]", "JSON object"),
    (b'{"model": 5, "messages": []}', "model"),
    (b'{"model": "auto"}', "messages"),
    (b'{"model": "auto", "messages": []}', "messages"),
    (b'{"model": "auto", "messages": ["hi"]}', "messages[0]"),
    (b'{"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}', "role"),
    (b'{"model": "auto", "messages": [{"role": "user", "content": 7}]}', "content"),
    (
        b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}',
        "stream",
    ),
    (
        b'{"model": "auto", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        "max_tokens",
    ),
    (b"\xff\xfe{}", "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "nested"),
]


@pytest.mark.parametrize(("body", "needle"), BAD_BODIES)
async def test_bad_openai_bodies_are_400(tmp_path: Path, body: bytes, needle: str) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await _post(h, "/v1/chat/completions", body)
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["type"] == "invalid_request_error"
        assert needle.lower() in err["message"].lower()
        assert r.headers["x-hybridgate-receipt"]  # refused, and still receipted


@pytest.mark.parametrize(("body", "needle"), BAD_BODIES[:3] + BAD_BODIES[-2:])
async def test_bad_anthropic_bodies_are_400(tmp_path: Path, body: bytes, needle: str) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await _post(h, "/v1/messages", body)
        assert r.status_code == 400, r.text
        j = r.json()
        assert j["type"] == "error" and j["error"]["type"] == "invalid_request_error"


LONG_MODEL = [
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/embeddings", {"input": "hi"}),
    ("/v1/responses", {"input": "hi"}),
    ("/v1/messages", {"max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
]


@pytest.mark.parametrize(("path", "rest"), LONG_MODEL)
async def test_a_model_name_over_256_characters_is_400_in_each_api(
    tmp_path: Path, path: str, rest: dict[str, Any]
) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await _post(h, path, json.dumps({"model": "m" * 257, **rest}).encode())
        assert r.status_code == 400, r.text
        j = r.json()
        assert j["error"]["type"] == "invalid_request_error"
        assert "at most 256 characters" in j["error"]["message"]
        if path == "/v1/messages":
            assert j["type"] == "error"
        else:
            assert j["error"]["param"] == "model"
        assert not h.upstream.received
        # 256 is still a name: unknown here, so not found rather than too long
        r = await _post(h, path, json.dumps({"model": "m" * 256, **rest}).encode())
        assert r.status_code == 404, r.text


async def test_body_over_limit_is_413_both_apis(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        big = (
            b'{"model": "auto", "messages": [{"role": "user", "content": "'
            + b"a" * 300_000
            + b'"}]}'
        )
        r = await _post(h, "/v1/chat/completions", big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        r = await _post(h, "/v1/messages", big)
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"


async def test_chunked_body_over_limit_is_413(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:

        async def gen() -> AsyncIterator[bytes]:
            yield b'{"model": "auto", "messages": [{"role": "user", "content": "'
            for _ in range(40):
                yield b"b" * 10_000
            yield b'"}]}'

        r = await h.client.post(
            "/v1/chat/completions",
            content=gen(),
            headers={"authorization": f"Bearer {h.key}"},
        )
        assert r.status_code == 413


async def test_missing_key_401_both_formats(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.post("/v1/chat/completions", content=b"{}")
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = await h.client.post("/v1/messages", content=b"{}")
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


async def test_admin_endpoints_need_admin_key(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        r = await h.client.get("/v1/admin/keys")
        assert r.status_code == 401
        # A valid key that is not the admin key: authenticated, not permitted.
        r = await h.client.get("/v1/admin/keys", headers={"authorization": f"Bearer {h.key}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "permission_denied"


async def test_lone_surrogates_do_not_crash_and_fail_closed(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        # Valid JSON escapes for an unpaired surrogate: cannot be scanned reliably → fail closed.
        body = b'{"model": "ext", "messages": [{"role": "user", "content": "x \\ud800 y"}]}'
        r = await _post(h, "/v1/chat/completions", body)
        assert r.status_code in (200, 503), r.text
        # an unscannable request never reaches an external route
        assert not [route for route, _ in h.upstream.received if route == "ext"]


async def test_bad_query_params_on_log_endpoints(tmp_path: Path) -> None:
    async with asgi_gateway(tmp_path) as h:
        hdr = {"authorization": f"Bearer {h.key}"}
        r = await h.client.get("/v1/log/consistency?first=abc&second=1", headers=hdr)
        assert r.status_code == 400
        r = await h.client.get("/v1/log/consistency?first=5&second=1", headers=hdr)
        assert r.status_code == 400
