"""The Anthropic Messages surface: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Same-family pass-through to Anthropic routes, translation to Chat Completions
for the others, streaming included: see :mod:`hybridgate.api.messages`.
"""

from __future__ import annotations

from starlette.routing import Route

from hybridgate.api.exchange import ExchangeRunner
from hybridgate.api.messages import MessagesAPI


def anthropic_routes(runner: ExchangeRunner) -> list[Route]:
    """Messages with same-family pass-through (see :mod:`hybridgate.api.messages`)."""
    api = MessagesAPI(runner)
    return [
        Route("/v1/messages", api.create, methods=["POST"]),
        Route("/v1/messages/count_tokens", api.count_tokens, methods=["POST"]),
    ]
