"""Chat Completions answers -> Responses API ``response`` objects and stream events.

Pure. A translated route answers in the chat shape; clients of
``POST /v1/responses`` (the ``openai`` SDK, the Agents SDK, Codex) expect a
``response`` object, or when streaming the full event sequence
(``response.created`` ... ``response.completed``) with monotonically
increasing ``sequence_number`` values, every item announced by
``output_item.added`` before its deltas and closed by ``output_item.done``.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def usage_block(
    prompt: int, completion: int, cached: int = 0, reasoning: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def chat_usage_to_responses(u: Any) -> dict[str, Any] | None:
    if not isinstance(u, dict):
        return None
    pt, ct = u.get("prompt_tokens"), u.get("completion_tokens")
    if not isinstance(pt, int):
        return None
    ptd = u.get("prompt_tokens_details")
    ctd = u.get("completion_tokens_details")
    cached = ptd.get("cached_tokens") if isinstance(ptd, dict) else 0
    reasoning = ctd.get("reasoning_tokens") if isinstance(ctd, dict) else 0
    return usage_block(
        pt,
        ct if isinstance(ct, int) else 0,
        cached if isinstance(cached, int) else 0,
        reasoning if isinstance(reasoning, int) else 0,
    )


@dataclass(frozen=True)
class ResponseShell:
    """The request-derived fields every ``response`` object of one exchange repeats."""

    id: str
    model: str
    created_at: int
    request: dict[str, Any]
    previous_response_id: str | None = None

    def object(
        self,
        status: str,
        output: list[dict[str, Any]],
        usage: dict[str, Any] | None,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        req = self.request
        reasoning = req.get("reasoning") if isinstance(req.get("reasoning"), dict) else None
        text: dict[str, Any] = req["text"] if isinstance(req.get("text"), dict) else {}
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "background": False,
            "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"),
            "max_tool_calls": None,
            "model": self.model,
            "output": output,
            "parallel_tool_calls": req.get("parallel_tool_calls", True),
            "previous_response_id": self.previous_response_id,
            "prompt_cache_key": req.get("prompt_cache_key"),
            "reasoning": {
                "effort": (reasoning or {}).get("effort"),
                "summary": (reasoning or {}).get("summary"),
            },
            "safety_identifier": req.get("safety_identifier"),
            "service_tier": req.get("service_tier") or "default",
            "store": req.get("store", True) is not False,
            "temperature": req.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, **text},
            "tool_choice": req.get("tool_choice", "auto"),
            "tools": req.get("tools") or [],
            "top_logprobs": req.get("top_logprobs", 0),
            "top_p": req.get("top_p", 1.0),
            "truncation": req.get("truncation") or "disabled",
            "usage": usage,
            "user": req.get("user"),
            "metadata": req.get("metadata") or {},
        }


def _message_item(item_id: str, text: str, refusal: str | None, status: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text or refusal is None:
        content.append({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    if refusal is not None:
        content.append({"type": "refusal", "refusal": refusal})
    return {
        "id": item_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def _incomplete_reason(finish: Any) -> str | None:
    if finish == "length":
        return "max_output_tokens"
    if finish == "content_filter":
        return "content_filter"
    return None


def chat_to_response(chat: dict[str, Any], shell: ResponseShell) -> dict[str, Any]:
    """A ``chat.completion`` body as a ``response`` object."""
    output: list[dict[str, Any]] = []
    choices = chat.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    msg = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    assert isinstance(msg, dict)
    reasoning = msg.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        output.append(
            {
                "id": new_id("rs"),
                "type": "reasoning",
                "summary": [],
                "content": [{"type": "reasoning_text", "text": reasoning}],
            }
        )
    content = msg.get("content")
    refusal = msg.get("refusal") if isinstance(msg.get("refusal"), str) else None
    if (isinstance(content, str) and content) or refusal is not None:
        text = content if isinstance(content, str) else ""
        output.append(_message_item(new_id("msg"), text, refusal, "completed"))
    for call in msg.get("tool_calls") or ():
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            continue
        output.append(
            _call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(fn.get("name") or ""),
                str(fn.get("arguments") or ""),
                "completed",
            )
        )
    if not output:
        output.append(_message_item(new_id("msg"), "", None, "completed"))
    incomplete = _incomplete_reason(choice.get("finish_reason"))
    return shell.object(
        "incomplete" if incomplete else "completed",
        output,
        chat_usage_to_responses(chat.get("usage")),
        incomplete,
    )


@dataclass
class _OpenItem:
    output_index: int
    item_id: str
    kind: str  # "message" | "function_call"
    text: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ChatToResponsesStream:
    """Turns restored ``chat.completion.chunk`` dicts into Responses stream events."""

    def __init__(self, shell: ResponseShell) -> None:
        self.shell = shell
        self._seq = 0
        self._items: list[_OpenItem] = []
        self._text: _OpenItem | None = None
        self._calls: dict[int, _OpenItem] = {}
        self._finish: Any = None
        self._usage: dict[str, Any] | None = None
        self.final: dict[str, Any] | None = None

    def _ev(self, etype: str, **fields: Any) -> dict[str, Any]:
        ev = {"type": etype, "sequence_number": self._seq, **fields}
        self._seq += 1
        return ev

    def start(self) -> list[dict[str, Any]]:
        snapshot = self.shell.object("in_progress", [], None)
        return [
            self._ev("response.created", response=snapshot),
            self._ev("response.in_progress", response=snapshot),
        ]

    def _open_text(self) -> list[dict[str, Any]]:
        item = _OpenItem(len(self._items), new_id("msg"), "message")
        self._items.append(item)
        self._text = item
        return [
            self._ev(
                "response.output_item.added",
                output_index=item.output_index,
                item=_message_item(item.item_id, "", None, "in_progress") | {"content": []},
            ),
            self._ev(
                "response.content_part.added",
                item_id=item.item_id,
                output_index=item.output_index,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": [], "logprobs": []},
            ),
        ]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        u = chat_usage_to_responses(chunk.get("usage"))
        if u is not None:
            self._usage = u
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            assert isinstance(delta, dict)
            content = delta.get("content")
            if isinstance(content, str) and content:
                if self._text is None:
                    out += self._open_text()
                assert self._text is not None
                self._text.text.append(content)
                out.append(
                    self._ev(
                        "response.output_text.delta",
                        item_id=self._text.item_id,
                        output_index=self._text.output_index,
                        content_index=0,
                        delta=content,
                        logprobs=[],
                    )
                )
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    out += self._tool_delta(tc)
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _tool_delta(self, tc: dict[str, Any]) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        idx = tc.get("index", 0)
        idx = idx if isinstance(idx, int) else 0
        fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
        assert isinstance(fn, dict)
        item = self._calls.get(idx)
        if item is None:
            item = _OpenItem(len(self._items), new_id("fc"), "function_call")
            item.call_id = str(tc.get("id") or new_id("call"))
            item.name = str(fn.get("name") or "")
            self._items.append(item)
            self._calls[idx] = item
            out.append(
                self._ev(
                    "response.output_item.added",
                    output_index=item.output_index,
                    item=_call_item(item.item_id, item.call_id, item.name, "", "in_progress"),
                )
            )
        elif isinstance(fn.get("name"), str) and not item.name:
            item.name = fn["name"]
        args = fn.get("arguments")
        if isinstance(args, str) and args:
            item.text.append(args)
            out.append(
                self._ev(
                    "response.function_call_arguments.delta",
                    item_id=item.item_id,
                    output_index=item.output_index,
                    delta=args,
                )
            )
        return out

    def finish(self) -> list[dict[str, Any]]:
        """Close every open item and emit the terminal event (``completed``/``incomplete``)."""
        out: list[dict[str, Any]] = []
        if not self._items:
            out += self._open_text()
        output: list[dict[str, Any]] = []
        for item in self._items:
            joined = "".join(item.text)
            if item.kind == "message":
                part = {"type": "output_text", "text": joined, "annotations": [], "logprobs": []}
                out.append(
                    self._ev(
                        "response.output_text.done",
                        item_id=item.item_id,
                        output_index=item.output_index,
                        content_index=0,
                        text=joined,
                        logprobs=[],
                    )
                )
                out.append(
                    self._ev(
                        "response.content_part.done",
                        item_id=item.item_id,
                        output_index=item.output_index,
                        content_index=0,
                        part=part,
                    )
                )
                done = _message_item(item.item_id, joined, None, "completed")
            else:
                out.append(
                    self._ev(
                        "response.function_call_arguments.done",
                        item_id=item.item_id,
                        output_index=item.output_index,
                        name=item.name,
                        arguments=joined,
                    )
                )
                done = _call_item(item.item_id, item.call_id, item.name, joined, "completed")
            output.append(done)
            out.append(
                self._ev("response.output_item.done", output_index=item.output_index, item=done)
            )
        incomplete = _incomplete_reason(self._finish)
        status = "incomplete" if incomplete else "completed"
        self.final = self.shell.object(status, output, self._usage, incomplete)
        out.append(self._ev(f"response.{status}", response=self.final))
        return out

    def error(self, code: str, message: str) -> dict[str, Any]:
        return self._ev("error", code=code, message=message, param=None)


def response_shell(request: dict[str, Any], model: str, previous: str | None) -> ResponseShell:
    return ResponseShell(
        id=new_id("resp"),
        model=model,
        created_at=int(time.time()),
        request=request,
        previous_response_id=previous,
    )
