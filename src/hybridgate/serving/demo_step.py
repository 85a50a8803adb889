"""The demo's adapters-as-tools step: a frontier agent calls small task adapters over MCP.

It runs without torch: the small model is a loopback vLLM stand-in serving
registered adapters (``hybridgate.testing.lora_engines``), next to a loopback
"frontier API". An agent stand-in discovers the adapters as MCP tools on the
gateway, calls them, and the savings against sending the same calls to the
frontier route are read back from the usage log. Every figure is measured.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import httpx
import openai
from rich.console import Console
from rich.table import Table

from hybridgate.adapters import register
from hybridgate.app import create_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import OpenAIUpstream
from hybridgate.testing.lora_engines import VLLMUpstream

TICKETS = [
    "Customer cannot log in after the password reset, error 403 on every attempt.",
    "Refund request for order 88213: item arrived broken, photos attached.",
    "Billing page shows the wrong plan since the upgrade yesterday.",
    "How do I export my data to CSV before closing the account?",
    "The mobile app crashes when opening the order history.",
]
TASKS = {
    "triage": "Classify a support ticket as billing, login, order or other.",
    "extract": "Extract the order number from a support ticket, or 'none'.",
}


def _fake_adapter(root: Path, name: str) -> Path:
    """A PEFT-shaped adapter directory (the stand-in engine does not run its weights)."""
    root.mkdir(parents=True)
    (root / "adapter_config.json").write_text('{"peft_type": "LORA", "r": 8}')
    (root / "adapter_model.safetensors").write_bytes(name.encode() * 4096)
    return root


def _config(home: Path, frontier: OpenAIUpstream, small: VLLMUpstream) -> GatewayConfig:
    return parse_config(
        {
            "home": str(home),
            "ledger": {"checkpoint_interval_s": 3600},
            "routes": [
                {
                    "name": "frontier-api",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "base_url": frontier.base_url,
                    "location": "external",
                    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10},
                },
                {
                    "name": "small",
                    "provider": "vllm",
                    "model": "base-model",
                    "base_url": small.base_url,
                    "location": "on_prem",
                    "adapters": ["*"],
                    "lora_slots": 2,
                    "price": {"input_per_mtok": 0.05, "output_per_mtok": 0.1},
                },
            ],
        }
    )


async def _agent(url: str, key: str) -> tuple[list[str], list[tuple[str, bool, str]]]:
    """The frontier agent stand-in: discover the tools over MCP, call each on every ticket."""
    import httpx2
    from mcp.client.session import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    calls: list[tuple[str, bool, str]] = []
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        streamable_http_client(url + "/mcp", http_client=http) as streams,
        ClientSession(*streams) as session,
    ):
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        for ticket in TICKETS:
            for tool in tools:
                res = await session.call_tool(tool, {"input": ticket})
                receipt = (res.meta or {}).get("hybridgate/receipt", "")
                calls.append((tool, bool(res.is_error), str(receipt)))
    return tools, calls


def run_adapter_tools_step(console: Console, failures: list[str]) -> None:
    """Print the step; append to ``failures`` when a check does not hold."""
    console.rule("[bold]Adapters as tools: a frontier agent calls small task models over MCP")
    home = Path(tempfile.mkdtemp(prefix="hybridgate-demo-adapters-"))
    with (
        OpenAIUpstream(latency_s=0.12) as frontier,
        VLLMUpstream(base_model="base-model", max_loras=2, latency_s=0.03) as small,
    ):
        config = _config(home, frontier, small)
        for name, task in TASKS.items():
            register(
                config,
                name,
                _fake_adapter(home / "train" / name, name),
                base="base-model",
                task=task,
                replaces="frontier-api",
            )
        app = create_app(config)
        gw: Gateway = app.state.gateway
        with ServerThread(app) as server:
            key = gw.keys.create("agents", name="frontier-agent")
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
            for ticket in TICKETS[
                :2
            ]:  # the agent's own frontier calls: their latency is the baseline
                client.chat.completions.create(
                    model="frontier-api", messages=[{"role": "user", "content": ticket}]
                )
            tools, calls = asyncio.run(_agent(server.base_url, key))
            gw.store.write_sync(lambda c: None)  # flush deferred usage rows
            rows = {r["group"]: r for r in gw.usage.report(by="adapter")}
            verified = sum(
                1
                for _, err, rid in calls
                if rid
                and httpx.get(
                    server.base_url + f"/v1/receipts/{rid}",
                    headers={"authorization": f"Bearer {key}"},
                ).status_code
                == 200
            )
    console.print(
        f"the agent found {len(tools)} tools on /mcp ({', '.join(tools)}) and made "
        f"{len(calls)} calls; {verified} receipts fetched "
        "(stand-in engine: vLLM API with LoRA slots, answers '\\[adapter NAME] ok')"
    )
    t = Table(
        "adapter",
        "calls",
        "tokens",
        "cost",
        "same calls on frontier-api",
        "saved",
        "avg ms",
        "frontier avg ms",
    )
    saved_total = 0.0
    for name in TASKS:
        r = rows.get(name)
        if r is None:
            failures.append(f"no usage rows for adapter {name}")
            continue
        saved_total += float(r["saved_usd"])
        t.add_row(
            name,
            str(r["requests"]),
            str(r["total_tokens"]),
            f"${r['cost_usd']}",
            f"${r['baseline_cost_usd']}",
            f"${r['saved_usd']} ({r['saved_pct']}%)",
            str(r["latency_ms_avg"]),
            str(r["baseline_latency_ms_avg"]),
        )
    console.print(t)
    console.print(
        f"saved ${saved_total:.9f} on {len(calls)} tool calls against sending them to the "
        "frontier route (prices from the config; latency from this run's stand-ins)"
    )
    if any(err for _, err, _ in calls):
        failures.append("an adapter tool call failed")
    if verified != len(calls):
        failures.append("a tool call has no receipt")
    if saved_total <= 0:
        failures.append("adapter tool calls saved nothing")
