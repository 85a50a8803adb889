"""Tool calls through a model's own chat template, as pure logic.

Requests carry OpenAI ``tools`` and messages with ``tool_calls`` / ``tool``
roles. The engine hands them to the tokenizer's chat template (which renders
them however the model was trained to see them) and parses the answer back
into OpenAI ``tool_calls``. Two output shapes are recognised, the ones open
chat templates teach their models:

* Hermes / Qwen style: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
  blocks (any number);
* Llama 3.1 style: the whole answer is one JSON object
  ``{"name": ..., "parameters"|"arguments": {...}}``.

A call is accepted only for a tool the request offered; anything else stays
plain text, so a client is never handed a call to a tool it does not have.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from hybridgate.errors import InvalidRequest

_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    content: str | None
    tool_calls: list[dict[str, Any]]


def tool_names(tools: Any) -> set[str]:
    """Names of the function tools offered; a clear error for malformed tools."""
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise InvalidRequest("`tools` must be an array", param="tools")
    names: set[str] = set()
    for i, t in enumerate(tools):
        fn = t.get("function") if isinstance(t, dict) else None
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(fn, dict):
            raise InvalidRequest(f"tools[{i}] must be a function tool", param="tools")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].function.name must be a string", param="tools")
        names.add(name)
    return names


def _call(obj: Any, allowed: set[str]) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    args = obj.get("arguments", obj.get("parameters", {}))
    if not isinstance(name, str) or name not in allowed:
        return None
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return None
    if not isinstance(args, dict):
        return None
    return {
        "id": "call_" + uuid.uuid4().hex[:24],
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)},
    }


def parse_tool_calls(text: str, allowed: set[str]) -> ParsedAnswer:
    """Split a generated answer into plain content and OpenAI tool calls."""
    if not allowed:
        return ParsedAnswer(text, [])
    calls: list[dict[str, Any]] = []
    blocks = list(_BLOCK.finditer(text))
    if blocks:
        for m in blocks:
            try:
                call = _call(json.loads(m.group(1)), allowed)
            except json.JSONDecodeError:
                call = None
            if call is None:
                return ParsedAnswer(text, [])  # one malformed call: hand back text only
            calls.append(call)
        rest = _BLOCK.sub("", text).strip()
        return ParsedAnswer(rest or None, calls)
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        try:
            call = _call(json.loads(stripped), allowed)
        except json.JSONDecodeError:
            call = None
        if call is not None:
            return ParsedAnswer(None, [call])
    return ParsedAnswer(text, [])


def template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat messages as chat templates expect them: tool-call arguments as objects."""
    out: list[dict[str, Any]] = []
    for m in messages:
        m = dict(m)
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            fixed = []
            for c in calls:
                fn = dict(c.get("function") or {}) if isinstance(c, dict) else {}
                args = fn.get("arguments")
                if isinstance(args, str):
                    try:
                        fn["arguments"] = json.loads(args)
                    except json.JSONDecodeError:
                        raise InvalidRequest(
                            "tool call arguments must be a JSON object", param="messages"
                        ) from None
                fixed.append({**c, "function": fn} if isinstance(c, dict) else c)
            m["tool_calls"] = fixed
        out.append(m)
    return out
