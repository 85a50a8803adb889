"""Streams between Anthropic Messages events and OpenAI ``chat.completion.chunk``.

Both translators are small state machines fed one item at a time, so they
work on any transport and are tested without sockets. The OpenAI -> Anthropic
direction produces the exact order the official ``anthropic`` SDK's stream
accumulator requires: ``message_start`` first; each content block opened with
``content_block_start``, filled with deltas, closed with
``content_block_stop`` before the next opens; then ``message_delta`` (stop
reason and cumulative usage) and ``message_stop``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hybridgate.errors import ANTHROPIC_ERROR_TYPES, UpstreamError, anthropic_error_type
from hybridgate.providers.tokens import estimate_tokens
from hybridgate.translate.anthropic_response import finish_reason, message_id, stop_reason

#: Re-exported: the gateway's one Anthropic error-type table lives in ``errors``.
ERROR_TYPES = ANTHROPIC_ERROR_TYPES


def anthropic_error_event(message: str, status: int = 500) -> dict[str, Any]:
    """An Anthropic ``error`` stream event (also the shape of an error response body)."""
    return {
        "type": "error",
        "error": {"type": anthropic_error_type(status), "message": message},
    }


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


class OpenAIToAnthropicStream:
    """Feed OpenAI chunks, collect Anthropic events; call :meth:`finish` at the end."""

    def __init__(self, model: str, *, input_tokens: int = 0) -> None:
        self.model = model
        self._input_tokens = input_tokens
        self._output_tokens: int | None = None
        self._started = False
        self._finished = False
        self._next_index = 0
        self._open: int | None = None  # Anthropic index of the open block
        self._open_kind: str | None = None
        self._tools: dict[int, int] = {}  # OpenAI tool_call index -> Anthropic block index
        self._finish: str | None = None
        self._text_chars = 0
        self._id = ""

    def _start(self, chunk: dict[str, Any] | None) -> list[dict[str, Any]]:
        self._started = True
        self._id = message_id(chunk.get("id") if chunk else None)
        return [
            {
                "type": "message_start",
                "message": {
                    "id": self._id,
                    "type": "message",
                    "role": "assistant",
                    "model": self.model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
                },
            }
        ]

    def _close(self) -> list[dict[str, Any]]:
        if self._open is None:
            return []
        ev = {"type": "content_block_stop", "index": self._open}
        self._open = self._open_kind = None
        return [ev]

    def _open_block(self, kind: str, block: dict[str, Any]) -> list[dict[str, Any]]:
        events = self._close()
        index = self._next_index
        self._next_index += 1
        self._open, self._open_kind = index, kind
        events.append({"type": "content_block_start", "index": index, "content_block": block})
        return events

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if self._finished:
            return []
        events: list[dict[str, Any]] = [] if self._started else self._start(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            pt, ct = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(pt, int) and not isinstance(pt, bool):
                self._input_tokens = pt
            if isinstance(ct, int) and not isinstance(ct, bool):
                self._output_tokens = ct
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            if isinstance(delta, dict):
                events.extend(self._delta(delta))
            if choice.get("finish_reason"):
                self._finish = str(choice["finish_reason"])
                events.extend(self._close())
        return events

    def _delta(self, delta: dict[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        text = delta.get("content")
        if not text and isinstance(delta.get("refusal"), str):
            text = delta["refusal"]
        if isinstance(text, str) and text:
            if self._open_kind != "text":
                events.extend(self._open_block("text", {"type": "text", "text": ""}))
            assert self._open is not None
            self._text_chars += len(text)
            events.append(
                {
                    "type": "content_block_delta",
                    "index": self._open,
                    "delta": {"type": "text_delta", "text": text},
                }
            )
        for call in delta.get("tool_calls") or ():
            if not isinstance(call, dict):
                continue
            oi = call.get("index", 0)
            oi = oi if isinstance(oi, int) else 0
            fn = _obj(call.get("function"))
            if oi not in self._tools:
                block = {
                    "type": "tool_use",
                    "id": str(call.get("id") or f"toolu_{self._id[4:]}_{oi}"),
                    "name": str(fn.get("name") or ""),
                    "input": {},
                }
                events.extend(self._open_block(f"tool{oi}", block))
                assert self._open is not None
                self._tools[oi] = self._open
            args = fn.get("arguments")
            if isinstance(args, str) and args:
                self._text_chars += len(args)
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": self._tools[oi],
                        "delta": {"type": "input_json_delta", "partial_json": args},
                    }
                )
        return events

    def finish(self) -> list[dict[str, Any]]:
        """Close the message: last block, ``message_delta`` with usage, ``message_stop``."""
        if self._finished:
            return []
        events = [] if self._started else self._start(None)
        events.extend(self._close())
        self._finished = True
        out_tokens = self._output_tokens
        if out_tokens is None:
            out_tokens = (self._text_chars + 3) // 4
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason(self._finish), "stop_sequence": None},
                "usage": {"input_tokens": self._input_tokens, "output_tokens": out_tokens},
            }
        )
        events.append({"type": "message_stop"})
        return events


class AnthropicToOpenAIStream:
    """Feed Anthropic stream events (decoded ``data`` objects), collect OpenAI chunks.

    ``done`` turns true at ``message_stop``; an ``error`` event raises
    :class:`UpstreamError` (``overloaded_error`` and ``api_error`` retryable).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.done = False
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self._id = "chatcmpl-anthropic"
        self._created = int(time.time())
        self._stop: str | None = None
        self._tool_index: dict[int, int] = {}  # Anthropic block index -> OpenAI tool index
        self._text: list[str] = []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        etype = event.get("type")
        if etype == "message_start":
            msg = _obj(event.get("message"))
            self._id = "chatcmpl-" + str(msg.get("id") or "anthropic")[:64]
            if isinstance(msg.get("model"), str) and msg["model"]:
                self.model = msg["model"]
            self._usage(msg.get("usage"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if etype == "content_block_start":
            return self._block_start(event)
        if etype == "content_block_delta":
            return self._block_delta(event)
        if etype == "message_delta":
            delta = _obj(event.get("delta"))
            if isinstance(delta.get("stop_reason"), str):
                self._stop = delta["stop_reason"]
            self._usage(event.get("usage"))
            return []
        if etype == "message_stop":
            self.done = True
            return [self._chunk({}, finish_reason(self._stop)), self.usage_chunk()]
        if etype == "error":
            err = _obj(event.get("error"))
            etype_ = str(err.get("type") or "api_error")
            raise UpstreamError(
                f"upstream stream error: {etype_}",
                retryable=etype_ in ("overloaded_error", "api_error", "rate_limit_error"),
                upstream_status=529 if etype_ == "overloaded_error" else None,
            )
        return []  # ping, content_block_stop, unknown future events

    def _block_start(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        block = event.get("content_block")
        if not isinstance(block, dict):
            return []
        if block.get("type") == "text" and isinstance(block.get("text"), str) and block["text"]:
            self._text.append(block["text"])
            return [self._chunk({"content": block["text"]})]
        if block.get("type") == "tool_use":
            idx = event.get("index")
            oi = len(self._tool_index)
            self._tool_index[idx if isinstance(idx, int) else -1 - oi] = oi
            call: dict[str, Any] = {
                "index": oi,
                "id": str(block.get("id") or ""),
                "type": "function",
                "function": {"name": str(block.get("name") or ""), "arguments": ""},
            }
            initial = block.get("input")
            if isinstance(initial, dict) and initial:
                call["function"]["arguments"] = json.dumps(initial)
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _block_delta(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        delta = event.get("delta")
        if not isinstance(delta, dict):
            return []
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            self._text.append(delta["text"])
            return [self._chunk({"content": delta["text"]})]
        if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            oi = self._tool_index.get(event.get("index"))  # type: ignore[arg-type]
            if oi is None:
                return []
            self._text.append(delta["partial_json"])
            call = {"index": oi, "function": {"arguments": delta["partial_json"]}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        total_in: int | None = None
        for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
            v = usage.get(key)
            if isinstance(v, int) and not isinstance(v, bool):
                total_in = (total_in or 0) + v
        if total_in is not None:
            self.input_tokens = total_in
        out = usage.get("output_tokens")
        if isinstance(out, int) and not isinstance(out, bool):
            self.output_tokens = out

    def usage_chunk(self) -> dict[str, Any]:
        """The final ``choices: []`` chunk carrying usage (estimated where unreported)."""
        pt = self.input_tokens or 0
        ct = self.output_tokens
        estimated = ct is None
        if ct is None:
            ct = estimate_tokens("".join(self._text))
        usage: dict[str, Any] = {
            "prompt_tokens": pt,
            "completion_tokens": ct,
            "total_tokens": pt + ct,
        }
        if estimated:
            usage["estimated"] = True
        chunk = self._chunk({})
        chunk["choices"] = []
        chunk["usage"] = usage
        return chunk
