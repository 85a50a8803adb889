"""Loopback upstreams shared by the provider tests; reset between tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hybridgate.testing import AnthropicUpstream, OpenAIUpstream


@pytest.fixture(scope="module")
def _openai_server() -> Iterator[OpenAIUpstream]:
    with OpenAIUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def _anthropic_server() -> Iterator[AnthropicUpstream]:
    with AnthropicUpstream() as up:
        yield up


@pytest.fixture
def openai_up(_openai_server: OpenAIUpstream) -> Iterator[OpenAIUpstream]:
    _openai_server.reset()
    _openai_server.clear()
    yield _openai_server
    _openai_server.reset()


@pytest.fixture
def anthropic_up(_anthropic_server: AnthropicUpstream) -> Iterator[AnthropicUpstream]:
    _anthropic_server.reset()
    _anthropic_server.clear()
    yield _anthropic_server
    _anthropic_server.reset()
