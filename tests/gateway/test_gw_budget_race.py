"""Budgets are exact under concurrency: reserve before sending, settle after.

In-process through ``httpx.ASGITransport`` with an in-memory provider: the
race is between requests inside the gateway, which the transport drives
concurrently on one event loop just as a server would.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from asgi_harness import asgi_gateway
from hybridgate.testing.memory import MemoryUpstream

# Output tokens cost $0.001 each, input is free: max_tokens=10 reserves $0.01,
# so a $1.00 budget admits at most 100 requests in flight or done.
PRICE: dict[str, float] = {"input_per_mtok": 0, "output_per_mtok": 1000}


async def test_200_concurrent_requests_never_overspend_a_budget_for_100(tmp_path: Path) -> None:
    budgets = [{"scope": "team", "name": "race", "usd_per_day": 1.0}]
    routes = [
        {"name": "llama-onprem", "provider": "memory", "model": "m", "location": "on_prem"}
        | {"price": PRICE, "timeout_s": 30}
    ]
    up = MemoryUpstream(latency_s=0.05)  # keep requests in flight together
    async with asgi_gateway(
        tmp_path, up, budgets=budgets, routes=routes, models={"auto": {"routes": ["llama-onprem"]}}
    ) as h:
        key = h.gw.keys.create("race")
        body = {
            "model": "llama-onprem",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": "go"}],
        }
        rs = await asyncio.gather(
            *(
                h.client.post("/v1/chat/completions", json=body, headers=h.auth(key))
                for _ in range(200)
            )
        )
        codes = [r.status_code for r in rs]
        ok, refused = codes.count(200), codes.count(429)
        assert ok + refused == 200, codes
        assert 1 <= ok <= 100
        spent = h.gw.usage.summary()
        total = Decimal(str(spent["cost_usd"]))
        assert total <= Decimal("1.00"), total
