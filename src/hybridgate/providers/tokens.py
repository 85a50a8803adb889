"""Offline token estimates for when an upstream does not report usage.

No tokenizer is downloaded: the gateway must work air-gapped, and a budget
check has to be cheap enough to run before every request. The estimate is the
widely used ~4 characters per token rule for English text with BPE
vocabularies (cl100k/o200k land between 3.5 and 4.5 on prose; code and
non-Latin scripts run denser, so estimates err low there). Chat framing adds a
few tokens per message, as OpenAI documents for its own counting.

Counted usage is always marked ``reported=False`` so accounting can tell a
measured figure from an estimate.
"""

from __future__ import annotations

from typing import Any

from hybridgate import fastjson

#: Average characters per token on English prose for modern BPE vocabularies.
CHARS_PER_TOKEN = 4
#: Per-message framing (role, separators) in chat formats.
TOKENS_PER_MESSAGE = 4
#: Tokens that prime the assistant's reply.
REPLY_PRIMING_TOKENS = 3
#: Flat cost charged for one image part (the low-detail price OpenAI publishes).
TOKENS_PER_IMAGE = 85


def estimate_tokens(text: str) -> int:
    """Tokens in ``text`` by the ~4 chars/token heuristic; 0 only for the empty string."""
    return _tokens_of_length(len(text))


def _tokens_of_length(chars: int) -> int:
    """Tokens in a text of ``chars`` characters (what :func:`estimate_tokens` counts)."""
    return (chars + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


def _chars(data: bytes) -> int:
    """Characters of compact UTF-8 JSON (what ``json.dumps(ensure_ascii=False)`` holds)."""
    return len(data) if data.isascii() else len(data.decode("utf-8", "replace"))


def _content_tokens(content: Any) -> int:
    if isinstance(content, str):
        return estimate_tokens(content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if isinstance(part, str):
                total += estimate_tokens(part)
            elif isinstance(part, dict):
                ptype = part.get("type")
                if ptype in ("image_url", "image", "input_image"):
                    total += TOKENS_PER_IMAGE
                elif isinstance(part.get("text"), str):
                    total += estimate_tokens(part["text"])
        return total
    return 0


def _message_tokens(message: Any) -> int:
    if not isinstance(message, dict):
        return 0
    total = TOKENS_PER_MESSAGE + _content_tokens(message.get("content"))
    calls = message.get("tool_calls")
    if isinstance(calls, list):
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict):
                total += estimate_tokens(str(fn.get("name") or ""))
                total += estimate_tokens(str(fn.get("arguments") or ""))
    return total


def estimate_request_tokens(request: dict[str, Any]) -> int:
    """Prompt tokens of an OpenAI chat (``messages``) or embeddings (``input``) body.

    Tool definitions count as their compact JSON, which is roughly how
    providers inject them into the prompt (serialized by orjson: a tenth of
    :mod:`json`'s time on an agent's tool list).
    """
    total = 0
    messages = request.get("messages")
    if isinstance(messages, list):
        total += REPLY_PRIMING_TOKENS
        total += sum(_message_tokens(m) for m in messages)
    tools = request.get("tools")
    if isinstance(tools, list) and tools:
        total += _tokens_of_length(_chars(fastjson.dumps(tools)))
    inp = request.get("input")
    if isinstance(inp, str):
        total += estimate_tokens(inp)
    elif isinstance(inp, list):
        for item in inp:
            if isinstance(item, str):
                total += estimate_tokens(item)
            elif isinstance(item, list):  # pre-tokenized input: one id per token
                total += len(item)
            elif isinstance(item, int):
                total += 1
    return total


def estimate_completion_tokens(message: dict[str, Any]) -> int:
    """Tokens in an assistant message (text and tool-call arguments), without framing."""
    return max(0, _message_tokens(message) - TOKENS_PER_MESSAGE)
