"""Agent frameworks on their default (Responses) API: the OpenAI Agents SDK and
LangChain's ChatOpenAI with ``use_responses_api=True``, on native and translated routes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import agents
import langchain_openai
import pytest
from openai import AsyncOpenAI

from gateway_harness import Harness, running_gateway


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    agents.set_tracing_disabled(True)  # no trace export to the internet
    with running_gateway(tmp_path_factory.mktemp("gw")) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _clean(h: Harness) -> Iterator[None]:
    for up in (h.external, h.claude, h.onprem):
        up.clear()
    yield
    for up in (h.external, h.claude, h.onprem):
        up.reset()


def _client(h: Harness) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=h.url + "/v1", api_key=h.key, max_retries=0)


def _run(agent: Any, prompt: str, client: AsyncOpenAI) -> Any:
    """``Runner.run_sync``, with the client's connections closed in the loop that opened them
    (``run_sync``'s own loop is gone when it returns, and its sockets with nobody to close them)."""

    async def go() -> Any:
        try:
            return await agents.Runner.run(agent, prompt)
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.parametrize("model", ["gpt-4o", "claude", "llama-onprem"])
def test_agents_sdk_plain(h: Harness, model: str) -> None:
    agent = agents.Agent(
        name="helper",
        instructions="Answer briefly.",
        model=agents.OpenAIResponsesModel(model=model, openai_client=(client := _client(h))),
    )
    result = _run(agent, "hello agent", client)
    assert result.final_output == "echo: hello agent"


def test_agents_sdk_tool_round_trip(h: Harness) -> None:
    calls: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """Weather for a city."""
        calls.append(city)
        return f"sunny in {city}"

    h.external.use_tools(True, {"city": "Oslo"})
    agent = agents.Agent(
        name="weather",
        instructions="Use the tool.",
        tools=[get_weather],
        model=agents.OpenAIResponsesModel(model="gpt-4o", openai_client=(client := _client(h))),
    )
    result = _run(agent, "weather in Oslo?", client)
    assert calls == ["Oslo"]
    assert result.final_output.startswith("echo:")
    second = h.external.requests[-1].body
    assert second["input"][-1]["type"] == "function_call_output"
    assert "sunny in Oslo" in json.dumps(second["input"])


@pytest.mark.parametrize("model", ["gpt-4o", "claude", "llama-onprem"])
def test_langchain_responses_api(h: Harness, model: str) -> None:
    llm = langchain_openai.ChatOpenAI(
        model=model,
        base_url=h.url + "/v1",
        api_key=h.key,
        use_responses_api=True,
        max_retries=0,
    )
    msg = llm.invoke("hello langchain")
    assert msg.text == "echo: hello langchain"
    streamed = "".join(chunk.text for chunk in llm.stream("stream langchain"))
    assert streamed == "echo: stream langchain"
