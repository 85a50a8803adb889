"""Upstream failures: fallbacks inside the permitted set, breakers, mapped errors,
and a stream cut mid-way that never ends cleanly. Keys never reach logs or errors."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway_harness import Harness, running_gateway


@pytest.fixture
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


MSG: Any = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_retryable_status_falls_back_to_next_permitted_route(h: Harness, status: int) -> None:
    h.external.fail_next(1, status=status)
    raw = h.openai().chat.completions.with_raw_response.create(model="frontier", messages=MSG)
    assert raw.headers["x-hybridgate-route"] == "claude"
    rid = raw.headers["x-hybridgate-receipt"]
    receipt = h.gw.ledger.get_receipt(rid)
    assert receipt is not None and receipt["receipt"]["attempts"] == ["gpt-4o", "claude"]


def test_timeout_falls_back(h: Harness) -> None:
    h.external.stall(5)  # route timeout is 2 s
    raw = h.openai().chat.completions.with_raw_response.create(model="frontier", messages=MSG)
    assert raw.headers["x-hybridgate-route"] == "claude"


def test_refused_connection_falls_back(h: Harness) -> None:
    h.external.refuse_connections()
    raw = h.openai().chat.completions.with_raw_response.create(model="frontier", messages=MSG)
    assert raw.headers["x-hybridgate-route"] == "claude"


def test_stream_failing_before_first_token_falls_back(h: Harness) -> None:
    h.external.fail_next(1, status=503)
    with h.openai().chat.completions.with_streaming_response.create(
        model="frontier", messages=MSG, stream=True
    ) as resp:
        assert resp.headers["x-hybridgate-route"] == "claude"
        text = "".join(resp.iter_lines())
    assert "[DONE]" in text


def test_client_error_is_not_retried(h: Harness) -> None:
    h.external.fail_next(1, status=400, message="bad parameter foo")
    h.claude.clear()
    with pytest.raises(openai.BadRequestError) as e:
        h.openai().chat.completions.create(model="frontier", messages=MSG)
    assert "bad parameter foo" in str(e.value.body)
    assert not h.claude.requests  # a 4xx is the request's fault: no fallback


def test_all_routes_failing_is_503_naming_each(h: Harness) -> None:
    h.external.fail_next(1, status=500)
    h.claude.fail_next(1, status=529)
    with pytest.raises(openai.APIStatusError) as e:
        h.openai().chat.completions.create(model="frontier", messages=MSG)
    assert e.value.status_code == 503
    msg = str(e.value.body)
    assert "gpt-4o" in msg and "claude" in msg


def test_single_route_timeout_maps_to_503(h: Harness) -> None:
    h.external.stall(5)
    with pytest.raises(openai.APIStatusError) as e:
        h.openai().chat.completions.create(model="gpt-4o", messages=MSG)
    assert e.value.status_code == 503 and "timeout" in str(e.value.body)


def test_breaker_opens_and_skips_a_failing_route(h: Harness) -> None:
    h.external.refuse_connections()
    for _ in range(3):
        h.openai().chat.completions.create(model="frontier", messages=MSG)
    h.external.clear()
    h.external.accept_connections()
    raw = h.openai().chat.completions.with_raw_response.create(model="frontier", messages=MSG)
    # The breaker is open: the gateway goes straight to claude during the cool-down.
    assert raw.headers["x-hybridgate-route"] == "claude"
    assert not h.external.requests


def test_stream_cut_mid_way_ends_with_an_error_event(h: Harness) -> None:
    h.external.cut_stream_after(3)
    with h.openai().chat.completions.with_streaming_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "a long answer please"}], stream=True
    ) as resp:
        lines = [ln for ln in resp.iter_lines() if ln]
    assert lines[-1].startswith("data: {") and '"error"' in lines[-1]
    assert "data: [DONE]" not in lines
    # The official SDK raises instead of finishing cleanly.
    h.external.cut_stream_after(3)
    with pytest.raises(openai.APIError):
        for _ in h.openai().chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
            pass


def test_anthropic_stream_cut_ends_with_error_event(h: Harness) -> None:
    h.claude.cut_stream_after(4)
    r = httpx.post(
        h.url + "/v1/messages",
        headers={"x-api-key": h.key},
        json={"model": "claude", "max_tokens": 32, "stream": True, "messages": MSG},
        timeout=10,
    )
    events = [ln for ln in r.text.splitlines() if ln.startswith("event: ")]
    assert events[-1] == "event: error" and "event: message_stop" not in events


def test_keys_never_reach_logs_or_errors(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    h.external.fail_next(1, status=500, message="upstream says sk-upstream-secret-openai leaked")
    h.claude.fail_next(1, status=401)
    with pytest.raises(openai.APIStatusError) as e:
        h.openai().chat.completions.create(model="frontier", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        h.openai(key=h.key + "x").chat.completions.create(model="frontier", messages=MSG)
    text = caplog.text + str(e.value.body)
    for secret in ("sk-upstream-secret-openai", "sk-ant-upstream-secret", h.key):
        assert secret not in text
