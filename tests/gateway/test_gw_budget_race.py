"""Budgets are exact under concurrency: reserve before sending, settle after."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import httpx

from gateway_harness import running_gateway

# Output tokens cost $0.001 each, input is free: max_tokens=10 reserves $0.01,
# so a $1.00 budget admits at most 100 requests in flight or done.
PRICE: dict[str, float] = {"input_per_mtok": 0, "output_per_mtok": 1000}


def test_200_concurrent_requests_never_overspend_a_budget_for_100(tmp_path: Path) -> None:
    budgets = [{"scope": "team", "name": "race", "usd_per_day": 1.0}]
    # A 200-request burst on a busy machine can wait longer than a route's usual 2 s:
    # a timeout would move requests to another route and prove nothing about budgets.
    with running_gateway(
        tmp_path, budgets=budgets, route_prices={"llama-onprem": PRICE}, route_timeout_s=30
    ) as h:
        key = h.new_key("race")
        h.onprem.set_latency(0.05)  # keep requests in flight together

        async def one(client: httpx.AsyncClient) -> int:
            r = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "llama-onprem",
                    "max_tokens": 10,
                    "messages": [{"role": "user", "content": "go"}],
                },
            )
            return r.status_code

        async def burst() -> list[int]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(
                base_url=h.url,
                headers={"authorization": f"Bearer {key}"},
                limits=limits,
                timeout=30,
            ) as client:
                return await asyncio.gather(*(one(client) for _ in range(200)))

        codes = asyncio.run(burst())
        ok, refused = codes.count(200), codes.count(429)
        assert ok + refused == 200, codes
        assert 1 <= ok <= 100
        spent = h.gw.usage.summary()
        total = Decimal(str(spent["cost_usd"]))
        assert total <= Decimal("1.00"), total
