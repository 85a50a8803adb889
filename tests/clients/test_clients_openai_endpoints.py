"""Legacy completions, models.retrieve, model aliases, token-id embeddings and the
access log, driven by the official SDKs."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import openai
import pytest

from gateway_harness import Harness, running_gateway

ALIASES = {"claude-*": "claude", "gpt-*": "frontier", "o*": "frontier"}


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw"), aliases=ALIASES) as harness:
        yield harness


@pytest.fixture(autouse=True)
def _clean(h: Harness) -> Iterator[None]:
    for up in (h.external, h.claude, h.onprem):
        up.clear()
    yield


@pytest.mark.parametrize("model", ["llama-onprem", "claude"])
def test_legacy_completions_plain_and_streamed(h: Harness, model: str) -> None:
    client = h.openai()
    out = client.completions.create(model=model, prompt="say something", max_tokens=20)
    assert out.object == "text_completion"
    assert out.choices[0].text == "echo: say something"
    assert out.usage is not None and out.usage.prompt_tokens > 0
    stream = client.completions.create(
        model=model, prompt="stream this", max_tokens=20, stream=True
    )
    text = "".join(c.choices[0].text for c in stream if c.choices)
    assert text == "echo: stream this"
    with pytest.raises(openai.BadRequestError, match="suffix"):
        client.completions.create(model=model, prompt="x", suffix="y")


def test_models_retrieve(h: Harness) -> None:
    client = h.openai()
    assert client.models.retrieve("auto").id == "auto"
    assert client.models.retrieve("claude-sonnet-4-5").id == "claude-sonnet-4-5"  # alias
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_aliases_route_builtin_model_names(h: Harness) -> None:
    client = h.anthropic()
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4-5-20250929",
        max_tokens=20,
        messages=[{"role": "user", "content": "hello"}],
    )
    assert raw.headers["x-hybridgate-route"] == "claude"
    raw2 = h.openai().chat.completions.with_raw_response.create(
        model="gpt-5-codex", messages=[{"role": "user", "content": "hello"}]
    )
    assert raw2.headers["x-hybridgate-route"] == "gpt-4o"
    with pytest.raises(openai.NotFoundError):
        h.openai().chat.completions.create(
            model="mistral-large", messages=[{"role": "user", "content": "x"}]
        )


def test_token_id_embeddings_are_confined(h: Harness) -> None:
    client = h.openai()
    raw = client.embeddings.with_raw_response.create(model="auto", input=[[1, 2, 3], [4, 5]])
    assert raw.headers["x-hybridgate-route"] == "llama-onprem"
    assert raw.headers["x-hybridgate-action"] == "on_prem_only"
    assert len(raw.parse().data) == 2
    assert h.external.requests == []


def test_access_log_line_per_request(h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="hybridgate.access"):
        raw = h.openai().chat.completions.with_raw_response.create(
            model="llama-onprem", messages=[{"role": "user", "content": "log me"}]
        )
        with pytest.raises(openai.NotFoundError):
            h.openai().models.retrieve("nope")
    lines = [r.getMessage() for r in caplog.records if r.name == "hybridgate.access"]
    rid = raw.headers["x-hybridgate-request-id"]
    ok = [line for line in lines if rid in line]
    assert len(ok) == 1
    assert ok[0].startswith("POST /v1/chat/completions status=200 ")
    assert "route=llama-onprem" in ok[0]
    assert any(line.startswith("GET /v1/models/nope status=404") for line in lines)
    joined = "\n".join(lines)
    assert h.key not in joined and "log me" not in joined
