"""Adapters served through a real gateway on loopback, called with the OpenAI SDK.

``tiny:<adapter>`` reaches the in-process engine through the whole pipeline;
receipts carry the adapter's content id; the registry is read live.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from hybridgate.adapters import register, remove
from serving.serving_kit import Env, TinyKit, add

pytest.importorskip("torch")


def test_adapter_model_answers_with_a_receipt_naming_its_weights(
    env: Env, tiny_kit: TinyKit
) -> None:
    a = add(env, tiny_kit, "summarize", task="Summarize a ticket.", replaces="gpt-4o")
    raw = env.ask("tiny:summarize", "ticket refund urgent billing")
    body = raw.parse()
    assert body.model == "tiny:summarize"
    assert body.usage is not None and body.usage.completion_tokens >= 1
    assert raw.headers["x-hybridgate-route"] == "tiny"
    signed = env.gw.ledger.get_receipt(raw.headers["x-hybridgate-receipt"])
    assert signed is not None
    receipt = signed["receipt"]
    assert receipt["adapter"] == "summarize" and receipt["adapter_sha256"] == a.sha256
    assert receipt["route"] == "tiny" and receipt["location"] == "on_prem"
    # the same request without the adapter is a different model, with no adapter in its receipt
    plain = env.ask("tiny", "ticket refund urgent billing")
    r2 = env.gw.ledger.get_receipt(plain.headers["x-hybridgate-receipt"])
    assert r2 is not None and "adapter_sha256" not in r2["receipt"]


def test_stream_equals_whole_answer(env: Env, tiny_kit: TinyKit) -> None:
    add(env, tiny_kit, "classify")
    whole = env.ask("tiny:classify", "who is the customer").parse()
    stream = env.client.chat.completions.create(
        model="tiny:classify",
        messages=[{"role": "user", "content": "who is the customer"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    assert text == whole.choices[0].message.content
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_registry_changes_are_live(env: Env, tiny_kit: TinyKit) -> None:
    with pytest.raises(openai.NotFoundError):
        env.ask("tiny:extract", "hello")
    add(env, tiny_kit, "extract")  # through the database, as the CLI would
    assert env.ask("tiny:extract", "hello").parse().choices
    remove(env.cfg, "extract")
    with pytest.raises(openai.NotFoundError) as ei:
        env.ask("tiny:extract", "hello")
    assert ei.value.body["code"] == "model_not_found"  # type: ignore[index]


@pytest.mark.parametrize(
    "model",
    ["plain:summarize", "gpt-4o:summarize", "tiny:nope", "tiny:Bad", "nope:summarize"],
)
def test_routes_serve_only_declared_adapters_of_their_base(
    env: Env, tiny_kit: TinyKit, model: str
) -> None:
    add(env, tiny_kit, "summarize")
    with pytest.raises(openai.NotFoundError):
        env.ask(model, "hello")


def test_adapter_on_another_base_is_not_served(env: Env, tiny_kit: TinyKit) -> None:
    register(env.cfg, "triage", tiny_kit.adapters["triage"], base="other-model")
    with pytest.raises(openai.NotFoundError):
        env.ask("tiny:triage", "hello")


async def test_concurrent_mixed_adapters_match_sequential(env: Env, tiny_kit: TinyKit) -> None:
    names = ["summarize", "classify", "extract", "triage"]
    for n in names:
        add(env, tiny_kit, n)
    prompts = ["say one two three", "login error please", "the order status is open"]
    jobs = [(f"tiny:{n}", p) for n in names for p in prompts]
    sequential = [env.ask(m, p).parse().choices[0].message.content for m, p in jobs]
    async with openai.AsyncOpenAI(
        base_url=env.server.base_url + "/v1", api_key=env.key, max_retries=0
    ) as client:  # its connections closed in this test's loop

        async def one(model: str, text: str) -> str | None:
            r = await client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": text}]
            )
            return r.choices[0].message.content

        together = await asyncio.gather(*(one(m, p) for m, p in jobs))
    assert list(together) == sequential
    engine = env.gw.providers["tiny"].engine  # type: ignore[attr-defined]
    assert engine.max_rows_seen > 1  # concurrent requests shared decode steps


def test_usage_and_metrics_by_adapter(env: Env, tiny_kit: TinyKit) -> None:
    add(env, tiny_kit, "summarize", replaces="gpt-4o")
    for _ in range(3):
        env.ask("tiny:summarize", "ticket refund urgent billing")
    env.ask("tiny", "hello")
    env.gw.store.write_sync(lambda c: None)  # flush deferred usage rows
    rows = {r["group"]: r for r in env.gw.usage.report(by="adapter")}
    s = rows["summarize"]
    assert s["ok"] == 3 and s["cost_usd"] == "0"
    assert float(s["baseline_cost_usd"]) > 0 and s["saved_usd"] == s["baseline_cost_usd"]
    assert rows[None]["ok"] == 1
    text = httpx.get(env.server.base_url + "/metrics").text
    assert 'hybridgate_adapter_requests_total{adapter="summarize",finish=' in text
    assert 'hybridgate_adapter_loads_total{adapter="summarize",route="tiny"} 1.0' in text


def test_usage_report_by_adapter_against_the_replaced_route(env: Env, tiny_kit: TinyKit) -> None:
    from typer.testing import CliRunner

    from hybridgate.cli.main import app

    add(env, tiny_kit, "summarize", replaces="gpt-4o")
    add(env, tiny_kit, "classify")
    for _ in range(2):
        env.ask("tiny:summarize", "ticket refund urgent billing")
        env.ask("gpt-4o", "ticket refund urgent billing")  # the frontier route, observed
    env.ask("tiny:classify", "hello")
    env.gw.store.write_sync(lambda c: None)  # flush deferred usage rows
    r = CliRunner().invoke(
        app,
        ["usage", "report", "--by", "adapter", "--format", "json", "--home", env.cfg.home],
    )
    assert r.exit_code == 0, r.output
    rows = {row["group"]: row for row in json.loads(r.output)["rows"]}
    s = rows["summarize"]
    assert s["requests"] == 2 and s["completion_tokens"] >= 2
    assert s["cost_usd"] == "0" and float(s["baseline_cost_usd"]) > 0
    assert s["baseline_latency_ms_avg"] is not None and s["time_saved_ms"] is not None
    assert rows["classify"]["baseline_cost_usd"] == "0"  # replaces nothing: no claimed savings
    assert rows[None]["requests"] == 2  # the frontier calls themselves
    table = CliRunner().invoke(app, ["usage", "report", "--by", "adapter", "--home", env.cfg.home])
    assert table.exit_code == 0 and "summarize" in table.output
