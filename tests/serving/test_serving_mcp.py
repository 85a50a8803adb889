"""Adapters as tools: the official MCP SDK client and OpenAI-style tools, against a real
gateway on loopback. Every call is scanned, decided, budgeted and receipted."""

from __future__ import annotations

import json
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from hybridgate.adapters import remove
from serving.serving_kit import Env, TinyKit, add

pytest.importorskip("torch")

TRIAGE_SCHEMA = {
    "type": "object",
    "properties": {"ticket": {"type": "string"}, "priority": {"type": "integer"}},
    "required": ["ticket"],
    "additionalProperties": False,
}


def receipt(env: Env, rid: str) -> dict[str, Any]:
    signed = env.gw.ledger.get_receipt(rid)
    assert signed is not None, rid
    body: dict[str, Any] = signed["receipt"]
    return body


async def test_mcp_client_lists_and_calls_adapter_tools(env: Env, tiny_kit: TinyKit) -> None:
    summarize = add(env, tiny_kit, "summarize", task="Summarize a support ticket.")
    triage = add(env, tiny_kit, "triage", task="Triage a ticket.", input_schema=TRIAGE_SCHEMA)
    headers = {"Authorization": f"Bearer {env.key}"}
    async with (
        httpx2.AsyncClient(headers=headers) as http,
        streamable_http_client(env.server.base_url + "/mcp", http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        listed = (await session.list_tools()).tools
        tools = {t.name: t for t in listed}
        assert set(tools) == {"summarize", "triage"}
        assert tools["summarize"].description == "Summarize a support ticket."
        assert tools["summarize"].input_schema["required"] == ["input"]
        assert tools["triage"].input_schema == TRIAGE_SCHEMA

        ok = await session.call_tool("summarize", {"input": "ticket refund urgent billing"})
        assert not ok.is_error and ok.content[0].text  # type: ignore[union-attr]
        assert ok.meta is not None
        r = receipt(env, ok.meta["hybridgate/receipt"])
        assert r["api"] == "mcp.tools_call" and r["outcome"] == "ok"
        assert r["adapter"] == "summarize" and r["adapter_sha256"] == summarize.sha256
        assert r["route"] == "tiny" and r["tokens_out"] >= 1

        structured = await session.call_tool("triage", {"ticket": "login error", "priority": 2})
        assert not structured.is_error and structured.meta is not None
        r = receipt(env, structured.meta["hybridgate/receipt"])
        assert r["adapter_sha256"] == triage.sha256

        # arguments that break the schema: an error result, and a receipt for the refusal
        bad = await session.call_tool("triage", {"priority": "high"})
        assert bad.is_error and bad.meta is not None
        r = receipt(env, bad.meta["hybridgate/receipt"])
        assert r["status"] == 400 and r["outcome"] == "error" and r["route"] is None

        # a secret in the arguments is blocked by the policy: nothing is generated
        leak = await session.call_tool("summarize", {"input": "key AKIAZ7QX4MN2PL8RT5VW"})
        assert leak.is_error and leak.meta is not None
        r = receipt(env, leak.meta["hybridgate/receipt"])
        assert r["outcome"] == "blocked" and r["action"] == "block" and r["route"] is None
        assert "secret" in " ".join(r["data_classes"])

        unknown = await session.call_tool("nope", {"input": "x"})
        assert unknown.is_error and "no tool" in unknown.content[0].text  # type: ignore[union-attr]

        # removed while the gateway runs: gone from the list at once
        remove(env.cfg, "triage")
        assert [t.name for t in (await session.list_tools()).tools] == ["summarize"]


def test_mcp_refuses_unauthenticated(env: Env) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    for headers in ({}, {"Authorization": "Bearer hg-nope-nope"}):
        r = httpx.post(env.server.base_url + "/mcp", json=init, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"


def test_openai_function_tools_and_call(env: Env, tiny_kit: TinyKit) -> None:
    a = add(env, tiny_kit, "triage", task="Triage a ticket.", input_schema=TRIAGE_SCHEMA)
    auth = {"Authorization": f"Bearer {env.key}"}
    listed = httpx.get(env.server.base_url + "/v1/tools", headers=auth).json()["data"]
    assert listed == [
        {
            "type": "function",
            "function": {
                "name": "triage",
                "description": "Triage a ticket.",
                "parameters": TRIAGE_SCHEMA,
            },
            "x-hybridgate": {"model": "tiny:triage", "adapter_sha256": a.sha256},
        }
    ]
    # an OpenAI function call carries its arguments as a JSON string
    call = {"name": "triage", "arguments": json.dumps({"ticket": "refund please"})}
    r = httpx.post(env.server.base_url + "/v1/tools/call", json=call, headers=auth)
    out = r.json()
    assert r.status_code == 200 and not out["is_error"] and out["content"]
    assert out["adapter_sha256"] == a.sha256 and out["route"] == "tiny"
    assert r.headers["x-hybridgate-receipt"] == out["receipt_id"]
    assert receipt(env, out["receipt_id"])["api"] == "openai.tools_call"
    for bad in (b"{", b"[]", json.dumps({"name": 3}).encode()):
        r = httpx.post(env.server.base_url + "/v1/tools/call", content=bad, headers=auth)
        assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(env.server.base_url + "/v1/tools").status_code == 401
