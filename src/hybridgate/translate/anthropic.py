"""OpenAI <-> Anthropic translation: requests, answers and streams, both ways.

One import point for the API layer and the Anthropic provider; the work is
split by concern into :mod:`.anthropic_request`, :mod:`.anthropic_response`
and :mod:`.anthropic_stream`.
"""

from __future__ import annotations

from hybridgate.translate.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    anthropic_request_to_openai,
    openai_request_to_anthropic,
)
from hybridgate.translate.anthropic_response import (
    FINISH_TO_STOP,
    STOP_TO_FINISH,
    anthropic_response_to_openai,
    finish_reason,
    message_id,
    openai_response_to_anthropic,
    parse_tool_input,
    stop_reason,
)
from hybridgate.translate.anthropic_stream import (
    ERROR_TYPES,
    AnthropicToOpenAIStream,
    OpenAIToAnthropicStream,
    anthropic_error_event,
)

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "ERROR_TYPES",
    "FINISH_TO_STOP",
    "STOP_TO_FINISH",
    "AnthropicToOpenAIStream",
    "OpenAIToAnthropicStream",
    "anthropic_error_event",
    "anthropic_request_to_openai",
    "anthropic_response_to_openai",
    "finish_reason",
    "message_id",
    "openai_request_to_anthropic",
    "openai_response_to_anthropic",
    "parse_tool_input",
    "stop_reason",
]
