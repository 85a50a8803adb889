"""A loopback Anthropic Messages API: ``POST /v1/messages``, plain and streamed."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from hybridgate.errors import ANTHROPIC_ERROR_TYPES
from hybridgate.testing._behaviour import apply_stops, split_words, word_count
from hybridgate.testing._server import Call, Handler, LoopbackUpstream, write_events


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def last_user_text(messages: Any) -> str:
    """Text of the last ``user`` message: text blocks and tool_result contents."""
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if not isinstance(m, dict) or m.get("role") != "user":
            continue
        c = m.get("content")
        if isinstance(c, str):
            return c
        texts: list[str] = []
        for b in c if isinstance(c, list) else ():
            if not isinstance(b, dict):
                continue
            if b.get("type") == "text" and isinstance(b.get("text"), str):
                texts.append(b["text"])
            elif b.get("type") == "tool_result":
                inner = b.get("content")
                if isinstance(inner, str):
                    texts.append(inner)
                elif isinstance(inner, list):
                    texts.extend(
                        x["text"]
                        for x in inner
                        if isinstance(x, dict) and isinstance(x.get("text"), str)
                    )
        return " ".join(texts)
    return ""


class AnthropicUpstream(LoopbackUpstream):
    """Speaks the Anthropic Messages API on 127.0.0.1; ``base_url`` is the bare origin."""

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/messages", self._messages),
            ("POST", "/v1/messages/count_tokens", self._count_tokens),
        ]

    def _error(self, status: int, message: str) -> web.Response:
        etype = ANTHROPIC_ERROR_TYPES.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        body = {"type": "error", "error": {"type": etype, "message": message}}
        return web.Response(body=_dumps(body), status=status, content_type="application/json")

    def _authorized(self, request: web.Request, key: str) -> bool:
        # The API takes x-api-key; recent official SDKs send the key as a Bearer token.
        return (
            request.headers.get("x-api-key") == key
            or request.headers.get("authorization") == f"Bearer {key}"
        )

    async def _count_tokens(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "messages: Field required")
        n = word_count(body["messages"]) + word_count(body.get("system"))
        n += word_count(body.get("tools"))
        return web.Response(body=_dumps({"input_tokens": n}), content_type="application/json")

    async def _messages(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "messages: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            return self._error(400, "max_tokens: Field required")
        beh = call.behaviour
        model = str(body.get("model") or "loopback")
        messages = body["messages"]
        input_tokens = word_count(messages) + word_count(body.get("system"))
        input_tokens += word_count(body.get("tools"))
        user_text = last_user_text(messages)
        tool = _pick_tool(body) if beh.tool_calls else None
        stop_reason = "end_turn"
        stop_sequence: str | None = None
        content: list[dict[str, Any]]
        if tool is not None:
            arguments = (
                beh.tool_arguments if beh.tool_arguments is not None else {"text": user_text}
            )
            content = [
                {"type": "tool_use", "id": f"toolu_loop{call.n}", "name": tool, "input": arguments}
            ]
            stop_reason = "tool_use"
            output_tokens = word_count(arguments) + 1
        else:
            if beh.respond is not None:
                text = beh.respond(user_text)
            else:
                text = beh.reply if beh.reply is not None else "echo: " + user_text
            stops = body.get("stop_sequences")
            text, stop_sequence = apply_stops(
                text, [s for s in stops if isinstance(s, str)] if isinstance(stops, list) else []
            )
            if stop_sequence is not None:
                stop_reason = "stop_sequence"
            words = split_words(text)
            if max_tokens < len(words):
                text = "".join(words[:max_tokens])
                stop_reason = "max_tokens"
            content = [{"type": "text", "text": text}]
            output_tokens = len(text.split())
        usage = {"input_tokens": input_tokens, "output_tokens": output_tokens}
        if not beh.report_usage:
            usage = {"input_tokens": 0, "output_tokens": 0}
        msg: dict[str, Any] = {
            "id": f"msg_loop{call.n}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
            "usage": usage,
        }
        if body.get("stream") is True:
            return await write_events(
                request, _stream_frames(msg), beh.cut_after, beh.chunk_interval_s
            )
        return web.Response(body=_dumps(msg), content_type="application/json")


def _stream_frames(msg: dict[str, Any]) -> list[bytes]:
    """The documented Messages event sequence for ``msg``."""
    start = dict(msg, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = {"input_tokens": msg["usage"]["input_tokens"], "output_tokens": 1}
    frames = [_event("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(msg["content"]):
        if block["type"] == "text":
            first: dict[str, Any] = {"type": "text", "text": ""}
            frames.append(_event("content_block_start", _cbs(index, first)))
            if index == 0:
                frames.append(_event("ping", {"type": "ping"}))
            for piece in split_words(block["text"]):
                delta: dict[str, Any] = {"type": "text_delta", "text": piece}
                frames.append(_event("content_block_delta", _cbd(index, delta)))
        else:
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            frames.append(_event("content_block_start", _cbs(index, first)))
            args = json.dumps(block["input"])
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                delta = {"type": "input_json_delta", "partial_json": piece}
                frames.append(_event("content_block_delta", _cbd(index, delta)))
        stop = {"type": "content_block_stop", "index": index}
        frames.append(_event("content_block_stop", stop))
    end: dict[str, Any] = {
        "type": "message_delta",
        "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": msg["stop_sequence"]},
        "usage": {"output_tokens": msg["usage"]["output_tokens"]},
    }
    frames.append(_event("message_delta", end))
    frames.append(_event("message_stop", {"type": "message_stop"}))
    return frames


def _cbs(index: int, block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_start", "index": index, "content_block": block}


def _cbd(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _pick_tool(body: dict[str, Any]) -> str | None:
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        if choice.get("type") == "none":
            return None
        if choice.get("type") == "tool" and isinstance(choice.get("name"), str):
            return str(choice["name"])
    name = tools[0].get("name") if isinstance(tools[0], dict) else None
    return name if isinstance(name, str) else None
