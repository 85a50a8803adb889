"""The Responses API driven by the official ``openai`` SDK: native on OpenAI routes,
translated on Chat Completions and Anthropic routes, plain and streamed, tools,
stored conversations and what each upstream actually received."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from gateway_harness import Harness, running_gateway
from hybridgate.conversations import StoredTurn

TOOLS: list[Any] = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    }
]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _clean(h: Harness) -> Iterator[None]:
    for up in (h.external, h.claude, h.onprem):
        up.clear()
    yield
    for up in (h.external, h.claude, h.onprem):
        up.reset()


def test_native_on_openai_route_keeps_every_field(h: Harness) -> None:
    raw = h.openai().responses.with_raw_response.create(
        model="gpt-4o",
        instructions="Answer briefly.",
        input="hello native",
        reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"],
        prompt_cache_key="cache-1",
        parallel_tool_calls=False,
        metadata={"app": "t"},
        store=False,
    )
    resp = raw.parse()
    assert resp.output_text == "echo: hello native"
    assert resp.model == "gpt-4o"
    assert resp.id.startswith("resp_") and "loop" not in resp.id
    assert raw.headers["x-hybridgate-route"] == "gpt-4o"
    sent = h.external.requests[-1]
    assert sent.path == "/v1/responses"
    body = sent.body
    assert body["model"] == "gpt-4o"
    assert body["instructions"] == "Answer briefly."
    assert body["reasoning"] == {"effort": "low", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["prompt_cache_key"] == "cache-1"
    assert body["parallel_tool_calls"] is False
    assert body["metadata"] == {"app": "t"}
    assert body["store"] is False  # the gateway keeps conversation state itself
    # encrypted reasoning passes through untouched on the native route
    kinds = [o.type for o in resp.output]
    assert kinds[0] == "reasoning"
    reasoning = resp.output[0]
    assert reasoning.type == "reasoning"
    assert reasoning.encrypted_content == "enc_loop" + str(len(h.external.requests))


@pytest.mark.parametrize(
    ("model", "upstream", "path"),
    [("llama-onprem", "onprem", "/v1/chat/completions"), ("claude", "claude", "/v1/messages")],
)
def test_translated_routes_plain(h: Harness, model: str, upstream: str, path: str) -> None:
    resp = h.openai().responses.create(
        model=model, instructions="Be brief.", input="hello translated", max_output_tokens=50
    )
    assert resp.output_text == "echo: hello translated"
    assert resp.status == "completed"
    assert resp.usage is not None and resp.usage.input_tokens > 0
    sent = getattr(h, upstream).requests[-1]
    assert sent.path == path
    if upstream == "onprem":
        assert sent.body["messages"][0] == {"role": "system", "content": "Be brief."}
        assert sent.body["max_completion_tokens"] == 50
    else:
        assert sent.body["system"] == "Be brief."
        assert sent.body["max_tokens"] == 50


@pytest.mark.parametrize("model", ["gpt-4o", "llama-onprem", "claude"])
def test_streaming_event_sequence(h: Harness, model: str) -> None:
    seen: list[str] = []
    seqs: list[int] = []
    with h.openai().responses.stream(model=model, input="stream me please") as stream:
        for ev in stream:
            seen.append(ev.type)
            seqs.append(ev.sequence_number)
        final = stream.get_final_response()
    assert final.output_text == "echo: stream me please"
    assert seen[:2] == ["response.created", "response.in_progress"]
    assert seen[-1] == "response.completed"
    for required in (
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
    ):
        assert required in seen, (model, required)
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


@pytest.mark.parametrize("model", ["gpt-4o", "llama-onprem", "claude"])
@pytest.mark.parametrize("stream", [False, True])
def test_function_tools_round_trip(h: Harness, model: str, stream: bool) -> None:
    for up in (h.external, h.claude, h.onprem):
        up.use_tools(True, {"city": "Paris"})
    client = h.openai()
    first: Any
    if stream:
        with client.responses.stream(model=model, input="weather?", tools=TOOLS) as s:
            for _ in s:
                pass
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input="weather?", tools=TOOLS)
    calls = [o for o in first.output if o.type == "function_call"]
    assert len(calls) == 1
    call = calls[0]
    assert call.name == "get_weather"
    assert json.loads(call.arguments) == {"city": "Paris"}
    for up in (h.external, h.claude, h.onprem):
        up.use_tools(False)
    second = client.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}],
        tools=TOOLS,
    )
    assert second.previous_response_id == first.id
    assert second.output_text.startswith("echo:")
    ups: dict[str, Any] = {"gpt-4o": h.external, "claude": h.claude, "llama-onprem": h.onprem}
    body = ups[model].requests[-1].body
    text = json.dumps(body)
    # the whole history reached the upstream: question, call and its output
    assert "weather?" in text and "sunny" in text and call.call_id in text


def test_stored_response_retrieve_items_delete(h: Harness) -> None:
    client = h.openai()
    resp = client.responses.create(model="llama-onprem", input="remember me")
    got = client.responses.retrieve(resp.id)
    assert got.id == resp.id and got.output_text == "echo: remember me"
    items = client.responses.input_items.list(resp.id)
    assert [i.type for i in items.data] == ["message"]
    cancel = client.responses.with_raw_response  # cancel is refused: nothing runs in background
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(resp.id)
    del cancel
    client.responses.delete(resp.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)
    with pytest.raises(openai.BadRequestError, match="not found"):
        client.responses.create(model="llama-onprem", input="x", previous_response_id=resp.id)


def test_other_team_cannot_read_or_continue(h: Harness) -> None:
    resp = h.openai().responses.create(model="llama-onprem", input="team secret")
    other = h.openai(key=h.new_key(team="other-team"))
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(resp.id)
    with pytest.raises(openai.BadRequestError):
        other.responses.create(model="llama-onprem", input="x", previous_response_id=resp.id)


def test_store_false_is_not_kept(h: Harness) -> None:
    client = h.openai()
    resp = client.responses.create(model="llama-onprem", input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(resp.id)


def test_untranslatable_fields_are_refused_by_name(h: Harness) -> None:
    client = h.openai()
    with pytest.raises(openai.BadRequestError, match="web_search"):
        client.responses.create(
            model="llama-onprem",
            input="x",
            tools=[{"type": "web_search"}],
        )
    with pytest.raises(openai.BadRequestError, match="background"):
        client.responses.create(model="claude", input="x", background=True)
    assert h.onprem.requests == [] and h.claude.requests == []


def test_conversation_moves_on_prem_once_it_carries_an_ssn(h: Harness) -> None:
    client = h.openai()
    r1 = client.responses.with_raw_response.create(model="any", input="Plan a trip to Rome.")
    t1 = r1.parse()
    assert r1.headers["x-hybridgate-route"] == "gpt-4o"
    conv = r1.headers["x-hybridgate-conversation"]
    assert conv == t1.id
    r2 = client.responses.with_raw_response.create(
        model="any", previous_response_id=t1.id, input="My SSN is 536-22-1234, book it."
    )
    assert r2.headers["x-hybridgate-route"] == "llama-onprem"
    assert r2.headers["x-hybridgate-conversation"] == conv
    t2 = r2.parse()
    h.external.clear()
    h.claude.clear()
    r3 = client.responses.with_raw_response.create(
        model="any", previous_response_id=t2.id, input="What else should I pack?"
    )
    assert r3.headers["x-hybridgate-route"] == "llama-onprem"
    assert r3.headers["x-hybridgate-action"] == "on_prem_only"
    assert h.external.requests == [] and h.claude.requests == []
    # the on-prem model got the whole history, turn 1 included
    sent = json.dumps(h.onprem.requests[-1].body)
    assert "Plan a trip to Rome." in sent and "536-22-1234" in sent
    assert "536-22-1234" not in h.external_text()
    # every turn's receipt names the conversation
    for raw in (r1, r2, r3):
        receipt = h.gw.ledger.get_receipt(raw.headers["x-hybridgate-receipt"])
        assert receipt is not None
        assert receipt["receipt"]["conversation_id"] == conv


async def _put_confined(h: Harness, rid: str) -> None:
    now = time.time_ns()
    await h.gw.conversations.put(
        StoredTurn(
            response_id=rid,
            team="default",
            key_id="k",
            previous_id=None,
            conversation_id=rid,
            created_ns=now,
            expires_ns=now + 10**12,
            confined=True,
            input=[{"type": "message", "role": "user", "content": "harmless"}],
            output=[],
            response={"id": rid},
        )
    )


def test_confinement_sticks_even_when_history_looks_clean(h: Harness) -> None:
    """A turn stored as confined keeps later turns on-prem, whatever the history holds."""
    rid = "resp_confinedturn0001"
    asyncio.run(_put_confined(h, rid))
    raw = h.openai().responses.with_raw_response.create(
        model="any", previous_response_id=rid, input="hello"
    )
    assert raw.headers["x-hybridgate-route"] == "llama-onprem"
    assert raw.headers["x-hybridgate-action"] == "on_prem_only"
    assert h.external.requests == []


def test_masked_values_keep_their_placeholders_across_turns(h: Harness) -> None:
    client = h.openai()
    t1 = client.responses.create(model="gpt-4o", input="Write to jane.doe@example.com today.")
    assert "jane.doe@example.com" in t1.output_text  # restored for the client
    first = json.dumps(h.external.requests[-1].body)
    t2 = client.responses.create(
        model="gpt-4o", previous_response_id=t1.id, input="Copy bob.roe@example.org too."
    )
    assert "bob.roe@example.org" in t2.output_text
    second = json.dumps(h.external.requests[-1].body)
    for text in (first, second):
        assert "jane.doe@example.com" not in text and "bob.roe@example.org" not in text
    jane_1 = re.findall(r"<[A-Z_]+_\d+>", first)
    assert jane_1, first
    # the value masked in turn 1 has the same placeholder when turn 2 replays it
    assert second.count(jane_1[0]) >= 2  # turn 1's input and its (echoed) answer
    others = set(re.findall(r"<[A-Z_]+_\d+>", second)) - {jane_1[0]}
    assert others  # bob got a placeholder of his own
