"""Finished answers between Anthropic ``message`` and OpenAI ``chat.completion``."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from hybridgate.errors import UpstreamError

STOP_TO_FINISH: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "pause_turn": "stop",
    "refusal": "content_filter",
    "model_context_window_exceeded": "length",
}
FINISH_TO_STOP: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
_ID_SAFE = re.compile(r"[^A-Za-z0-9_-]")


def finish_reason(stop_reason: Any) -> str:
    return STOP_TO_FINISH.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def stop_reason(finish: Any) -> str:
    return FINISH_TO_STOP.get(finish, "end_turn") if isinstance(finish, str) else "end_turn"


def message_id(openai_id: Any) -> str:
    """An Anthropic-style ``msg_...`` id derived from an OpenAI completion id."""
    raw = _ID_SAFE.sub("", str(openai_id or ""))[:64]
    if raw.startswith("chatcmpl-"):
        raw = raw[len("chatcmpl-") :]
    if raw.startswith("msg_"):
        return raw
    return "msg_" + (raw or format(time.time_ns(), "x"))


def parse_tool_input(arguments: Any) -> dict[str, Any]:
    """Tool-call arguments as an object; a model's broken JSON is kept, not lost."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    if isinstance(arguments, str):
        try:
            parsed = json.loads(arguments)
        except ValueError:
            return {"_raw_arguments": arguments}
        return parsed if isinstance(parsed, dict) else {"_raw_arguments": arguments}
    return {"_raw_arguments": str(arguments)}


def _count(v: Any) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _anthropic_usage(usage: Any) -> tuple[int, int]:
    if not isinstance(usage, dict):
        return 0, 0
    total_in = 0
    for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        v = usage.get(key)
        if isinstance(v, int) and not isinstance(v, bool):
            total_in += v
    out = usage.get("output_tokens")
    return total_in, out if isinstance(out, int) and not isinstance(out, bool) else 0


def anthropic_response_to_openai(message: dict[str, Any]) -> dict[str, Any]:
    """Anthropic ``message`` -> OpenAI ``chat.completion`` (cached input counts as prompt)."""
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise UpstreamError(
            "upstream answer is not an Anthropic message", code="upstream_protocol_error"
        )
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in message["content"]:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif block.get("type") == "tool_use":
            calls.append(
                {
                    "id": str(block.get("id", "")),
                    "type": "function",
                    "function": {
                        "name": str(block.get("name", "")),
                        "arguments": json.dumps(block.get("input") or {}),
                    },
                }
            )
    msg: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts or not calls else None,
        "refusal": None,
    }
    if calls:
        msg["tool_calls"] = calls
    prompt, completion = _anthropic_usage(message.get("usage"))
    return {
        "id": "chatcmpl-" + _ID_SAFE.sub("", str(message.get("id") or "anthropic"))[:64],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(message.get("model") or ""),
        "choices": [
            {
                "index": 0,
                "message": msg,
                "finish_reason": finish_reason(message.get("stop_reason")),
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def openai_response_to_anthropic(body: dict[str, Any]) -> dict[str, Any]:
    """OpenAI ``chat.completion`` -> Anthropic ``message`` (for the /v1/messages endpoint)."""
    choices = body.get("choices") if isinstance(body, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else {}
    msg = choice.get("message") if isinstance(choice, dict) else None
    msg = msg if isinstance(msg, dict) else {}
    content: list[dict[str, Any]] = []
    text = msg.get("content")
    if isinstance(text, list):
        text = "".join(
            p.get("text", "") for p in text if isinstance(p, dict) and p.get("type") == "text"
        )
    if not text and isinstance(msg.get("refusal"), str):
        text = msg["refusal"]
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text, "citations": None})
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        content.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": str(fn.get("name") or ""),
                "input": parse_tool_input(fn.get("arguments")),
            }
        )
    usage = body.get("usage") if isinstance(body, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    fr = choice.get("finish_reason") if isinstance(choice, dict) else None
    return {
        "id": message_id(body.get("id") if isinstance(body, dict) else None),
        "type": "message",
        "role": "assistant",
        "model": str(body.get("model") or "") if isinstance(body, dict) else "",
        "content": content,
        "stop_reason": stop_reason(fr),
        "stop_sequence": None,
        "usage": {
            "input_tokens": _count(usage.get("prompt_tokens")),
            "output_tokens": _count(usage.get("completion_tokens")),
        },
    }
