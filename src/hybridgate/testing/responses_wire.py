"""The loopback OpenAI upstream's ``POST /v1/responses``: plain and streamed.

Answers like the real API: a ``response`` object with ``message`` /
``function_call`` output items (and an encrypted ``reasoning`` item when the
request asks for ``reasoning.encrypted_content``), or the full event
sequence with ``sequence_number``s when ``stream`` is true. The reply echoes
the last user text so a test sees what reached the upstream.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hybridgate.testing._behaviour import Behaviour, split_words, word_count


def last_user_input(inp: Any) -> str:
    if isinstance(inp, str):
        return inp
    if not isinstance(inp, list):
        return ""
    for item in reversed(inp):
        if not isinstance(item, dict) or item.get("role") != "user":
            continue
        c = item.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return " ".join(
                str(p.get("text"))
                for p in c
                if isinstance(p, dict) and p.get("type") in ("input_text", "text")
            )
    return ""


def _function_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or body.get("tool_choice") == "none":
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and isinstance(choice.get("name"), str):
        return str(choice["name"])
    for t in tools:
        if isinstance(t, dict) and t.get("type") == "function" and isinstance(t.get("name"), str):
            return str(t["name"])
    return None


def _answered_tool(inp: Any) -> bool:
    """True when the input ends with a tool's output: answer in text, do not loop."""
    return (
        isinstance(inp, list)
        and bool(inp)
        and isinstance(inp[-1], dict)
        and inp[-1].get("type") == "function_call_output"
    )


def build_response(body: dict[str, Any], beh: Behaviour, n: int) -> dict[str, Any]:
    """The finished ``response`` object this upstream answers ``body`` with."""
    inp = body.get("input")
    if beh.respond is not None:
        text = beh.respond(last_user_input(inp))
    else:
        text = beh.reply if beh.reply is not None else "echo: " + last_user_input(inp)
    output: list[dict[str, Any]] = []
    include = body.get("include") if isinstance(body.get("include"), list) else []
    assert isinstance(include, list)
    if isinstance(body.get("reasoning"), dict) and "reasoning.encrypted_content" in include:
        output.append(
            {
                "id": f"rs_loop{n}",
                "type": "reasoning",
                "summary": [],
                "encrypted_content": f"enc_loop{n}",
            }
        )
    tool = _function_tool(body) if beh.tool_calls and not _answered_tool(inp) else None
    if tool is not None:
        args = beh.tool_arguments if beh.tool_arguments is not None else {"text": text}
        output.append(
            {
                "id": f"fc_loop{n}",
                "type": "function_call",
                "status": "completed",
                "call_id": f"call_loop{n}",
                "name": tool,
                "arguments": json.dumps(args),
            }
        )
        completion = word_count(args) + 1
    else:
        status = "completed"
        limit = body.get("max_output_tokens")
        words = split_words(text)
        incomplete = isinstance(limit, int) and 0 < limit < len(words)
        if incomplete:
            text = "".join(words[: int(limit)])  # type: ignore[arg-type]
            status = "incomplete"
        output.append(
            {
                "id": f"msg_loop{n}",
                "type": "message",
                "status": status,
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
        completion = len(text.split())
    prompt = word_count(inp) + word_count(body.get("instructions")) + word_count(body.get("tools"))
    incomplete_now = output[-1].get("status") == "incomplete"
    return {
        "id": f"resp_loop{n}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete_now else "completed",
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete_now else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": str(body.get("model") or "loopback"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": body.get("text") or {"format": {"type": "text"}},
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": body.get("truncation", "disabled"),
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        }
        if beh.report_usage
        else None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }


def response_events(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The event sequence the real API streams for ``final``."""
    seq = 0
    events: list[dict[str, Any]] = []

    def ev(etype: str, **fields: Any) -> None:
        nonlocal seq
        events.append({"type": etype, "sequence_number": seq, **fields})
        seq += 1

    shell = {**final, "status": "in_progress", "output": [], "usage": None}
    ev("response.created", response=shell)
    ev("response.in_progress", response=shell)
    for i, item in enumerate(final["output"]):
        if item["type"] == "message":
            ev("response.output_item.added", output_index=i, item={**item, "content": []})
            part = item["content"][0]
            ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=i,
                content_index=0,
                part={**part, "text": ""},
            )
            for w in split_words(part["text"]):
                ev(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=i,
                    content_index=0,
                    delta=w,
                    logprobs=[],
                )
            ev(
                "response.output_text.done",
                item_id=item["id"],
                output_index=i,
                content_index=0,
                text=part["text"],
                logprobs=[],
            )
            ev(
                "response.content_part.done",
                item_id=item["id"],
                output_index=i,
                content_index=0,
                part=part,
            )
        elif item["type"] == "function_call":
            ev("response.output_item.added", output_index=i, item={**item, "arguments": ""})
            args = item["arguments"]
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                ev(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=i,
                    delta=piece,
                )
            ev(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=i,
                name=item["name"],
                arguments=args,
            )
        else:
            ev("response.output_item.added", output_index=i, item=item)
        ev("response.output_item.done", output_index=i, item=item)
    ev(f"response.{final['status']}", response=final)
    return events


def sse_frames(events: list[dict[str, Any]]) -> list[bytes]:
    return [
        b"event: "
        + str(e["type"]).encode()
        + b"\ndata: "
        + json.dumps(e, separators=(",", ":"), ensure_ascii=False).encode()
        + b"\n\n"
        for e in events
    ]
