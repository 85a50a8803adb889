"""Hostile bodies on the new endpoints: a 4xx in the API's own error format, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway_harness import Harness, running_gateway

BAD_RESPONSES: list[Any] = [
    [],
    "x",
    {"model": "gpt-4o"},
    {"model": 3, "input": "x"},
    {"model": "gpt-4o", "input": 5},
    {"model": "gpt-4o", "input": [None, 3]},
    {"model": "llama-onprem", "input": [{"type": "function_call"}]},
    {"model": "llama-onprem", "input": [{"role": "tool", "content": "x"}]},
    {"model": "llama-onprem", "input": "x", "tools": "nope"},
    {"model": "llama-onprem", "input": "x", "text": {"format": {"type": "grammar"}}},
    {"model": "gpt-4o", "input": "x", "stream": "yes"},
    {"model": "gpt-4o", "input": "x", "previous_response_id": 7},
    {"model": "gpt-4o", "input": "x", "previous_response_id": "resp_nope"},
    {"model": "no-such-model", "input": "x"},
]
BAD_MESSAGES: list[Any] = [
    {"model": "claude", "max_tokens": 5},
    {"model": "claude", "max_tokens": 5, "messages": [{"role": "tool", "content": "x"}]},
    {"model": "claude", "max_tokens": 5, "messages": [{"role": "user", "content": 5}]},
    {"model": "llama-onprem", "max_tokens": 5, "messages": [{"role": "user", "content": [{}]}]},
    {"model": "llama-onprem", "max_tokens": 5, "messages": [{"role": "user"}], "top_k": 1},
]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


@pytest.mark.parametrize("body", BAD_RESPONSES)
def test_bad_responses_bodies(h: Harness, body: Any) -> None:
    r = httpx.post(
        h.url + "/v1/responses",
        content=json.dumps(body),
        headers={"authorization": f"Bearer {h.key}", "content-type": "application/json"},
        timeout=10,
    )
    assert 400 <= r.status_code < 500, r.text
    assert isinstance(r.json()["error"]["message"], str)


def test_max_tokens_checked_on_messages(h: Harness) -> None:
    body = {"model": "claude", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}
    r = httpx.post(h.url + "/v1/messages", json=body, headers={"x-api-key": h.key}, timeout=10)
    assert r.status_code == 400 and r.json()["type"] == "error"


@pytest.mark.parametrize("body", BAD_MESSAGES)
def test_bad_messages_bodies(h: Harness, body: Any) -> None:
    for path in ("/v1/messages", "/v1/messages/count_tokens"):
        r = httpx.post(
            h.url + path,
            content=json.dumps(body),
            headers={"x-api-key": h.key, "content-type": "application/json"},
            timeout=10,
        )
        assert 400 <= r.status_code < 500, (path, r.text)
        assert r.json()["type"] == "error"


def test_stored_endpoints_need_a_key(h: Harness) -> None:
    for method, path in (
        ("GET", "/v1/responses/resp_x"),
        ("DELETE", "/v1/responses/resp_x"),
        ("GET", "/v1/responses/resp_x/input_items"),
        ("POST", "/v1/responses/resp_x/cancel"),
    ):
        r = httpx.request(method, h.url + path, timeout=10)
        assert r.status_code == 401, (method, path)
        r = httpx.request(
            method, h.url + path, headers={"authorization": f"Bearer {h.key}"}, timeout=10
        )
        assert r.status_code == 404, (method, path, r.text)
