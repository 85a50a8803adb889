"""A loopback OpenAI API: chat completions and responses (plain and SSE), embeddings, models."""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
from typing import Any

from aiohttp import web

from hybridgate.testing._behaviour import apply_stops, split_words, word_count
from hybridgate.testing._server import Call, Handler, LoopbackUpstream, write_events
from hybridgate.testing.responses_wire import build_response, response_events, sse_frames

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "not_found"}
_ERROR_CODES = {401: "invalid_api_key", 429: "rate_limit_exceeded"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def last_user_text(messages: Any) -> str:
    """Text of the last ``user`` message (string content or its text parts)."""
    if not isinstance(messages, list):
        return ""
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(
                    p["text"]
                    for p in c
                    if isinstance(p, dict)
                    and p.get("type") == "text"
                    and isinstance(p.get("text"), str)
                )
    return ""


def embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit vector for ``text`` (same text, same vector; nothing learned)."""
    raw = b""
    counter = 0
    while len(raw) < dim * 4:
        raw += hashlib.sha256(f"{counter}:{text}".encode()).digest()
        counter += 1
    vals = [((v % 2001) - 1000) / 1000.0 for v in struct.unpack(f"<{dim}I", raw[: dim * 4])]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [v / norm for v in vals]


class OpenAIUpstream(LoopbackUpstream):
    """Speaks the OpenAI REST API on 127.0.0.1; ``base_url`` ends with ``/v1``."""

    _base_path = "/v1"

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/chat/completions", self._chat),
            ("POST", "/embeddings", self._embeddings),
            ("GET", "/models", self._models),
            ("POST", "/responses", self._responses),
        ]

    def _error(self, status: int, message: str) -> web.Response:
        etype = _ERROR_TYPES.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        if status == 429:
            etype = "rate_limit_error"
        body = {
            "error": {
                "message": message,
                "type": etype,
                "param": None,
                "code": _ERROR_CODES.get(status),
            }
        }
        return web.Response(body=_dumps(body), status=status, content_type="application/json")

    def _authorized(self, request: web.Request, key: str) -> bool:
        return request.headers.get("authorization") == f"Bearer {key}"

    async def _models(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = {
            "object": "list",
            "data": [{"id": "loopback", "object": "model", "created": 0, "owned_by": "hybridgate"}],
        }
        return web.Response(body=_dumps(body), content_type="application/json")

    async def _embeddings(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body
        inp = body.get("input") if isinstance(body, dict) else None
        items = (
            [inp]
            if isinstance(inp, (str, int))
            or (isinstance(inp, list) and inp and isinstance(inp[0], int))
            else inp
        )
        if not isinstance(items, list) or not items:
            return self._error(400, "'input' must be a string or a non-empty list")
        dim = call.behaviour.embedding_dim
        data = [
            {"object": "embedding", "index": i, "embedding": embedding(json.dumps(x), dim)}
            for i, x in enumerate(items)
        ]
        tokens = sum(word_count(x) if not isinstance(x, list) else len(x) for x in items)
        out: dict[str, Any] = {
            "object": "list",
            "data": data,
            "model": str(body.get("model") or ""),
        }
        if call.behaviour.report_usage:
            out["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return web.Response(body=_dumps(out), content_type="application/json")

    async def _responses(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("input"), (str, list)):
            return self._error(400, "'input' is required")
        final = build_response(body, call.behaviour, call.n)
        if body.get("stream") is True:
            frames = sse_frames(response_events(final))
            return await write_events(
                request, frames, call.behaviour.cut_after, call.behaviour.chunk_interval_s
            )
        return web.Response(body=_dumps(final), content_type="application/json")

    async def _chat(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "'messages' is required")
        beh = call.behaviour
        model = str(body.get("model") or "loopback")
        messages = body["messages"]
        prompt_tokens = word_count(messages) + word_count(body.get("tools"))
        tool = _pick_tool(body) if beh.tool_calls else None
        finish = "stop"
        if beh.respond is not None:
            text = beh.respond(last_user_text(messages))
        else:
            text = beh.reply if beh.reply is not None else "echo: " + last_user_text(messages)
        args = ""
        if tool is not None:
            arguments = beh.tool_arguments
            if arguments is None:
                arguments = {"text": last_user_text(messages)}
            args = json.dumps(arguments)
            finish = "tool_calls"
            completion_tokens = word_count(arguments) + 1
        else:
            stops = body.get("stop")
            stop_list = (
                [stops]
                if isinstance(stops, str)
                else [s for s in stops or () if isinstance(s, str)]
            )
            text, _ = apply_stops(text, stop_list)
            limit = body.get("max_completion_tokens", body.get("max_tokens"))
            words = split_words(text)
            if isinstance(limit, int) and 0 < limit < len(words):
                text = "".join(words[:limit])
                finish = "length"
            completion_tokens = len(text.split())
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        cid = f"chatcmpl-loop{call.n}"
        created = int(time.time())
        if body.get("stream") is True:
            opts = body.get("stream_options")
            with_usage = isinstance(opts, dict) and opts.get("include_usage") is True
            frames = self._stream_frames(
                cid,
                created,
                model,
                text,
                tool,
                args,
                finish,
                usage if with_usage and beh.report_usage else None,
                call.n,
                with_usage,
            )
            return await write_events(request, frames, beh.cut_after, beh.chunk_interval_s)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if tool else text,
            "refusal": None,
        }
        if tool is not None:
            message["tool_calls"] = [
                {
                    "id": f"call_loop{call.n}",
                    "type": "function",
                    "function": {"name": tool, "arguments": args},
                }
            ]
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
            ],
            "system_fingerprint": None,
        }
        if beh.report_usage:
            out["usage"] = usage
        return web.Response(body=_dumps(out), content_type="application/json")

    @staticmethod
    def _stream_frames(
        cid: str,
        created: int,
        model: str,
        text: str,
        tool: str | None,
        args: str,
        finish: str,
        usage: dict[str, int] | None,
        n: int,
        with_usage: bool,
    ) -> list[bytes]:
        def chunk(delta: dict[str, Any], fin: str | None = None) -> bytes:
            c: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": fin}],
            }
            if with_usage:
                c["usage"] = None
            return b"data: " + _dumps(c) + b"\n\n"

        frames = [
            chunk({"role": "assistant", "content": "" if tool is None else None, "refusal": None})
        ]
        if tool is not None:
            frames.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": f"call_loop{n}",
                                "type": "function",
                                "function": {"name": tool, "arguments": ""},
                            }
                        ]
                    }
                )
            )
            half = len(args) // 2
            for piece in (args[:half], args[half:]):
                frames.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
                )
        else:
            frames.extend(chunk({"content": w}) for w in split_words(text))
        frames.append(chunk({}, finish))
        if usage is not None:
            u: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
            frames.append(b"data: " + _dumps(u) + b"\n\n")
        frames.append(b"data: [DONE]\n\n")
        return frames


def _pick_tool(body: dict[str, Any]) -> str | None:
    """The tool to call: the forced one, else the first offered; None when no tools or 'none'."""
    tools = body.get("tools")
    if not isinstance(tools, list) or not tools:
        return None
    choice = body.get("tool_choice")
    if choice == "none":
        return None
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if isinstance(name, str):
            return name
    fn = tools[0].get("function") if isinstance(tools[0], dict) else None
    name = fn.get("name") if isinstance(fn, dict) else None
    return name if isinstance(name, str) else None
