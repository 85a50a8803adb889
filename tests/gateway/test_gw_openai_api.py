"""The OpenAI surface driven by the official SDK, sync and async, streaming and not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway_harness import Harness, running_gateway
from hybridgate.ledger import VerifierKey, verify_bundle


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


def test_chat_non_streaming_reaches_cheapest_route(h: Harness) -> None:
    h.onprem.clear()
    raw = h.openai().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    resp = raw.parse()
    assert resp.choices[0].message.content
    assert resp.model == "auto"
    assert resp.usage is not None and resp.usage.prompt_tokens > 0
    assert raw.headers["x-hybridgate-route"] == "llama-onprem"
    assert raw.headers["x-hybridgate-request-id"].startswith("req_")
    assert raw.headers["x-hybridgate-receipt"]
    sent = h.onprem.requests[-1]
    assert sent.body["model"] == "llama-3.1-8b"  # the route's model id, not the virtual name
    assert sent.body["messages"][0]["content"] == "What is 2+2?"


def test_upstream_key_is_sent_and_virtual_key_is_not(h: Harness) -> None:
    h.external.clear()
    h.openai().chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    # The stand-in demands the provider key, so an answer proves it was sent.
    rec = h.external.requests[-1]
    assert rec.headers["authorization"] == "<redacted>"
    assert h.key not in json.dumps(rec.body) and h.key not in json.dumps(rec.headers)


def test_streaming_with_usage(h: Harness) -> None:
    stream = h.openai().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "count to three"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text
    assert usage is not None and usage.completion_tokens > 0


def test_streaming_without_usage_sends_no_usage_chunk(h: Harness) -> None:
    chunks = list(
        h.openai().chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True
        )
    )
    assert chunks and all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)


async def test_async_client_streaming_and_not(h: Harness) -> None:
    client = h.async_openai()
    resp = await client.chat.completions.create(
        model="frontier", messages=[{"role": "user", "content": "async hello"}]
    )
    assert resp.choices[0].message.content
    parts = []
    async for chunk in await client.chat.completions.create(
        model="frontier", messages=[{"role": "user", "content": "async stream"}], stream=True
    ):
        if chunk.choices:
            parts.append(chunk.choices[0].delta.content or "")
    assert "".join(parts)
    await client.close()


def test_tools_and_response_format_pass_through(h: Harness) -> None:
    h.external.clear()
    h.external.use_tools(True)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    resp = h.openai().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "weather in Paris?"}],
        tools=tools,
        response_format={"type": "json_object"},
    )
    sent = h.external.requests[-1].body
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["response_format"] == {"type": "json_object"}
    h.external.use_tools(False)
    calls: Any = resp.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert resp.choices[0].finish_reason == "tool_calls"


def test_tool_call_through_anthropic_route(h: Harness) -> None:
    h.claude.use_tools(True)
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
            },
        }
    ]
    resp = h.openai().chat.completions.create(
        model="claude",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "look it up"},
        ],
        tools=tools,
    )
    sent = h.claude.requests[-1].body
    assert sent["system"] in ("You are terse.", [{"type": "text", "text": "You are terse."}])
    assert sent["tools"][0]["name"] == "lookup"
    h.claude.use_tools(False)
    calls: Any = resp.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "lookup"
    json.loads(calls[0].function.arguments)


def test_models_lists_virtual_models_and_routes(h: Harness) -> None:
    ids = {m.id for m in h.openai().models.list()}
    assert {"auto", "frontier", "gpt-4o", "llama-onprem"} <= ids


def test_embeddings(h: Harness) -> None:
    resp = h.openai().embeddings.create(model="llama-onprem", input=["alpha", "beta"])
    assert len(resp.data) == 2 and len(resp.data[0].embedding) > 0


def test_health_ready_metrics(h: Harness) -> None:
    with httpx.Client(base_url=h.url) as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["status"] == "ready"
        metrics = c.get("/metrics").text
    assert "hybridgate_requests_total" in metrics
    assert h.key not in metrics and "sk-upstream-secret-openai" not in metrics


def _scrape(h: Harness) -> dict[str, float]:
    text = httpx.get(h.url + "/metrics").text
    out = {}
    for line in text.splitlines():
        if line.startswith("hybridgate_scan"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_scan_metrics_say_where_scans_ran_and_how_the_cache_did(h: Harness) -> None:
    before = _scrape(h)
    for _ in range(2):
        h.openai().chat.completions.create(
            model="llama-onprem", messages=[{"role": "user", "content": "a metrics probe"}]
        )
    after = _scrape(h)

    def grew(name: str) -> float:
        return after[name] - before.get(name, 0.0)

    assert grew('hybridgate_scans_total{where="inline"}') == 2  # short bodies scan inline
    assert grew('hybridgate_scan_cache_lookups_total{result="hit"}') > 0  # the second one
    assert grew('hybridgate_scan_cache_lookups_total{result="miss"}') >= 0
    assert after["hybridgate_scan_cache_entries"] > 0 and after["hybridgate_scan_cache_bytes"] > 0
    assert "hybridgate_scan_cache_evictions_total" in after


def test_unknown_path_still_carries_gateway_headers(h: Harness) -> None:
    r = httpx.get(h.url + "/v1/nope")
    assert r.status_code == 404
    assert r.headers["x-hybridgate-request-id"] and r.headers["x-hybridgate-route"] == "none"


def test_wrong_key_is_401_in_openai_format(h: Harness) -> None:
    with pytest.raises(openai.AuthenticationError) as e:
        h.openai(key="hg-bad-key").chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "x"}]
        )
    assert e.value.status_code == 401
    body = e.value.body
    assert isinstance(body, dict) and body.get("code") == "invalid_api_key"


def test_unknown_model_is_404(h: Harness) -> None:
    with pytest.raises(openai.NotFoundError):
        h.openai().chat.completions.create(
            model="nope", messages=[{"role": "user", "content": "x"}]
        )


def test_receipt_bundle_for_own_key_only(h: Harness, tmp_path: Path) -> None:
    raw = h.openai().chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "receipt me"}]
    )
    rid = raw.headers["x-hybridgate-receipt"]
    own = httpx.get(f"{h.url}/v1/receipts/{rid}", headers={"authorization": f"Bearer {h.key}"})
    assert own.status_code == 200
    bundle = own.json()
    receipt = bundle["receipt"]
    assert receipt["route"] == "llama-onprem" and receipt["location"] == "on_prem"
    assert receipt["key_id"] == h.key.split("-")[1] and h.key not in json.dumps(bundle)
    assert "receipt me" not in json.dumps(bundle)  # commitments, never prompts
    pub = httpx.get(f"{h.url}/v1/log/public-key", headers={"authorization": f"Bearer {h.key}"})
    keys = [VerifierKey.parse(k) for k in pub.json()["keys"]]
    assert verify_bundle(bundle, keys) is None
    bundle["receipt"]["tokens_out"] += 1
    assert verify_bundle(bundle, keys) is not None
    other = h.new_key("other")
    denied = httpx.get(f"{h.url}/v1/receipts/{rid}", headers={"authorization": f"Bearer {other}"})
    assert denied.status_code == 404
