"""A spend-capped key's request that bounds no output gets a cap sent upstream.

Without a client limit the upstream may write as long an answer as it likes; the
budget reservation is then only an estimate, and concurrent requests can
overspend. The gateway therefore sends the cap it reserved for (the route's
``max_output_tokens``, else a default), in the field each API reads, and only
for keys whose budget or token limits make the bound matter.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from asgi_harness import asgi_gateway
from gateway_harness import running_gateway
from hybridgate.pipeline.budget import UNBOUNDED_OUTPUT_CAP
from hybridgate.providers.base import Usage
from hybridgate.testing.memory import MemoryUpstream

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "write at length"}]}
PRICE = {"input_per_mtok": 10, "output_per_mtok": 10}


def _writes_to_the_limit(request: dict[str, Any]) -> Usage:
    """An upstream that always writes until the limit it was sent, or 100,000 tokens."""
    limit = request.get("max_completion_tokens") or request.get("max_tokens") or 100_000
    return Usage(50, int(limit))


def _routes(max_output_tokens: int | None = None) -> list[dict[str, Any]]:
    r: dict[str, Any] = {"name": "onprem", "provider": "memory", "model": "m"}
    r |= {"location": "on_prem", "price": PRICE}
    if max_output_tokens is not None:
        r["max_output_tokens"] = max_output_tokens
    return [r]


def _limits(request: dict[str, Any]) -> dict[str, Any]:
    names = ("max_completion_tokens", "max_tokens", "max_output_tokens")
    return {k: request[k] for k in names if k in request}


@pytest.mark.parametrize(
    ("budgets", "route_cap", "body", "expected"),
    [
        # a team budget, no client limit, no route cap: the default cap goes out
        (
            [{"scope": "team", "name": "t", "usd_per_day": 5.0}],
            None,
            {},
            {"max_completion_tokens": UNBOUNDED_OUTPUT_CAP},
        ),
        # a token limit counts too; the route's own cap is the one sent
        (
            [{"scope": "team", "name": "t", "tokens_per_day": 10**9}],
            256,
            {},
            {"max_completion_tokens": 256},
        ),
        # the client's limit is kept as sent
        (
            [{"scope": "team", "name": "t", "usd_per_day": 5.0}],
            256,
            {"max_tokens": 9},
            {"max_tokens": 9},
        ),
        # no spend limit: the request goes as asked, unbounded
        ([], None, {}, {}),
        # a request-count limit only does not depend on the answer's length
        ([{"scope": "team", "name": "t", "requests_per_minute": 1000}], None, {}, {}),
    ],
)
def test_cap_sent_only_where_a_spend_limit_needs_it(
    tmp_path: Path,
    budgets: list[dict[str, Any]],
    route_cap: int | None,
    body: dict[str, Any],
    expected: dict[str, Any],
) -> None:
    up = MemoryUpstream()

    async def run() -> None:
        async with asgi_gateway(
            tmp_path,
            up,
            budgets=budgets,
            routes=_routes(route_cap),
            models={"auto": {"routes": ["onprem"]}},
        ) as h:
            key = h.gw.keys.create("t")
            r = await h.client.post(
                "/v1/chat/completions", json={**CHAT, **body}, headers=h.auth(key)
            )
            assert r.status_code == 200, r.text

    asyncio.run(run())
    assert _limits(up.received[-1][1]) == expected


def test_key_budget_caps_output_on_the_responses_api(tmp_path: Path) -> None:
    up = MemoryUpstream()

    async def run() -> None:
        async with asgi_gateway(
            tmp_path, up, routes=_routes(), models={"auto": {"routes": ["onprem"]}}
        ) as h:
            key = h.gw.keys.create("t", budget_usd=Decimal("5"))
            r = await h.client.post(
                "/v1/responses",
                json={"model": "auto", "input": "write at length"},
                headers=h.auth(key),
            )
            assert r.status_code == 200, r.text

    asyncio.run(run())
    # translated to chat for this route: the Responses cap arrives as the chat field
    assert _limits(up.received[-1][1]) == {"max_completion_tokens": UNBOUNDED_OUTPUT_CAP}


def test_unbounded_requests_never_overspend_a_team_budget(tmp_path: Path) -> None:
    """200 concurrent requests with no max_tokens to an upstream that writes to any limit."""
    budget = Decimal("0.20")
    up = MemoryUpstream(usage_for=_writes_to_the_limit, latency_s=0.02)

    async def run() -> tuple[list[int], Decimal]:
        async with asgi_gateway(
            tmp_path,
            up,
            budgets=[{"scope": "team", "name": "race", "usd_per_day": float(budget)}],
            routes=_routes(),
            models={"auto": {"routes": ["onprem"]}},
        ) as h:
            key = h.gw.keys.create("race")
            rs = await asyncio.gather(
                *(
                    h.client.post("/v1/chat/completions", json=CHAT, headers=h.auth(key))
                    for _ in range(200)
                )
            )
            return [r.status_code for r in rs], Decimal(str(h.gw.usage.summary()["cost_usd"]))

    codes, spent = asyncio.run(run())
    assert set(codes) <= {200, 429}, codes
    assert codes.count(200) >= 1 and codes.count(429) >= 1
    assert spent <= budget, spent
    assert all(
        _limits(req) == {"max_completion_tokens": UNBOUNDED_OUTPUT_CAP} for _, req in up.received
    )


def test_official_sdks_get_the_cap_in_each_wire_field(tmp_path: Path) -> None:
    """Over real sockets: each upstream receives the cap in the field its API reads."""
    with running_gateway(tmp_path) as h:
        key = h.new_key(budget_usd="5")
        client = h.openai(key)
        client.responses.create(model="frontier", input="hello")  # native on gpt-4o
        native = h.external.requests[-1]
        assert native.path == "/v1/responses"
        assert native.body["max_output_tokens"] == UNBOUNDED_OUTPUT_CAP

        client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hello"}]
        )  # least cost: the self-hosted openai_compat route
        compat = h.onprem.requests[-1].body
        assert compat["max_completion_tokens"] == compat["max_tokens"] == UNBOUNDED_OUTPUT_CAP

        client.embeddings.create(model="auto", input="hello")
        emb = h.onprem.requests[-1]
        assert emb.path == "/v1/embeddings"
        assert not {"max_tokens", "max_completion_tokens", "max_output_tokens"} & set(emb.body)

        # a key without limits: the request goes upstream as the client sent it
        free = h.openai(h.new_key())
        free.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
        assert "max_tokens" not in h.onprem.requests[-1].body
        assert "max_completion_tokens" not in h.onprem.requests[-1].body
