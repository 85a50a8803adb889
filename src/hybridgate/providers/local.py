"""In-process transformers model with LoRA adapters, served by the batching engine.

The route's ``local:`` section names the base model; the engine
(:mod:`hybridgate.serving`) loads it on first use, batches concurrent
requests (rows with different adapters share a batch), and loads adapters on
demand under a memory budget. This provider only translates: OpenAI chat
bodies to prompt ids through the model's own chat template, engine events to
``chat.completion`` / ``chunk`` dicts. Nothing heavy runs on the event loop.

Tokens are counted exactly with the model's tokenizer. Tools are rendered by
the chat template and tool calls parsed back (see
:mod:`hybridgate.serving.tools`); a request with tools is generated whole and
then streamed, because a half-written call cannot be streamed as text.

``local.adapter_path`` (one fixed adapter for every request without one) is
kept for existing configs; registered adapters (``adapters:`` on the route)
are the way to serve many.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from hybridgate.adapters import Adapter
from hybridgate.config import LocalModel, RouteConfig
from hybridgate.errors import InvalidRequest, UpstreamError
from hybridgate.providers.base import Completion, Usage
from hybridgate.serving.engine import (
    AdapterRef,
    Delta,
    Done,
    EngineConfig,
    GenRequest,
    ServingEngine,
)
from hybridgate.serving.metrics import ServingMetrics
from hybridgate.serving.text import normalize_stops
from hybridgate.serving.tools import parse_tool_calls, template_messages, tool_names

_ROLES = ("system", "user", "assistant", "tool")


def _texts(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        out: list[str] = []
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                out.append(part["text"])
                continue
            raise InvalidRequest(f"{where}: local models accept text content only")
        return "\n".join(out)
    raise InvalidRequest(f"{where}: content must be a string or a list of text parts")


def chat_messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    """Validated messages for a chat template (text content, tool calls kept)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list", param="messages")
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where}: each message must be an object")
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in _ROLES:
            raise InvalidRequest(f"{where}: role {role!r} is not supported by local models")
        msg: dict[str, Any] = {"role": role, "content": _texts(m.get("content"), where)}
        calls = m.get("tool_calls")
        if calls is not None:
            if role != "assistant" or not isinstance(calls, list):
                raise InvalidRequest(f"{where}: tool_calls belong on assistant messages")
            msg["tool_calls"] = calls
        if role == "tool" and isinstance(m.get("tool_call_id"), str):
            msg["tool_call_id"] = m["tool_call_id"]
        out.append(msg)
    return template_messages(out)


def plain_prompt(messages: list[dict[str, Any]]) -> str:
    """Fallback prompt for tokenizers without a chat template."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    lines.append("assistant:")
    return "\n".join(lines)


def _number(request: dict[str, Any], name: str) -> float | None:
    v = request.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidRequest(f"`{name}` must be a number", param=name)
    return float(v)


class LocalProvider:
    """Provider running a causal LM with LoRA adapters in this process (extra ``local``)."""

    serves_adapters = True

    def __init__(self, route: RouteConfig, metrics: ServingMetrics | None = None) -> None:
        if route.local is None:
            raise UpstreamError(f"route {route.name}: no `local:` section", retryable=False)
        self.route = route
        self._cfg: LocalModel = route.local
        self._metrics = metrics
        self._engine: ServingEngine | None = None
        self._default: AdapterRef | None = None

    def bind_metrics(self, metrics: ServingMetrics) -> None:
        """Report per-adapter metrics on the gateway's registry (before first use)."""
        self._metrics = metrics

    @property
    def engine(self) -> ServingEngine:
        if self._engine is None:
            cfg = self._cfg
            self._engine = ServingEngine(
                EngineConfig(
                    model_path=cfg.model_path,
                    name=self.route.name,
                    device=cfg.device,
                    dtype=cfg.dtype,
                    max_batch=cfg.max_batch,
                    adapter_memory_bytes=int(cfg.adapter_memory_mb * 1024 * 1024),
                    max_adapters=cfg.max_adapters,
                ),
                self._metrics,
            )
        return self._engine

    def _load(self) -> ServingEngine:
        """Load the model (blocking; call from a worker thread)."""
        engine = self.engine
        engine.load()
        if self._cfg.adapter_path and self._default is None:
            from hybridgate.adapters.files import adapter_files

            try:
                f = adapter_files(self._cfg.adapter_path)
            except InvalidRequest as exc:
                raise UpstreamError(
                    f"route {self.route.name}: adapter_path is not a usable adapter",
                    retryable=False,
                    code="adapter_unavailable",
                ) from exc
            self._default = AdapterRef("default", f.sha256, str(f.root), f.size_bytes)
        return engine

    async def _request(
        self, request: dict[str, Any], adapter: Adapter | None
    ) -> tuple[GenRequest, set[str]]:
        messages = chat_messages(request)
        tools = request.get("tools")
        allowed = tool_names(tools)
        if request.get("tool_choice") not in (None, "none", "auto") and allowed:
            raise InvalidRequest(
                "local models take tool_choice 'auto' or 'none' only", param="tool_choice"
            )
        if request.get("tool_choice") == "none":
            tools, allowed = None, set()
        engine = await asyncio.to_thread(self._load)
        ids = await asyncio.to_thread(engine.encode_chat, messages, tools if allowed else None)
        limit = self._cfg.max_new_tokens
        asked = request.get("max_completion_tokens", request.get("max_tokens"))
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
            limit = min(limit, asked)
        temperature = _number(request, "temperature") or 0.0
        top_p = _number(request, "top_p")
        seed = request.get("seed")
        ref = self._default
        if adapter is not None:
            ref = AdapterRef(adapter.name, adapter.sha256, adapter.path, adapter.size_bytes)
        gen = GenRequest(
            prompt_ids=tuple(ids),
            max_new_tokens=limit,
            adapter=ref,
            stops=normalize_stops(request.get("stop")),
            temperature=max(0.0, temperature),
            top_p=top_p if top_p is not None and 0 < top_p <= 1 else 1.0,
            seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        )
        return gen, allowed

    def _message(self, done: Done, allowed: set[str]) -> tuple[dict[str, Any], str]:
        parsed = parse_tool_calls(done.text, allowed)
        msg: dict[str, Any] = {"role": "assistant", "content": parsed.content, "refusal": None}
        if parsed.tool_calls:
            msg["tool_calls"] = parsed.tool_calls
            return msg, "tool_calls"
        return msg, done.finish_reason

    @staticmethod
    def _usage(done: Done) -> dict[str, int]:
        return {
            "prompt_tokens": done.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": done.prompt_tokens + done.completion_tokens,
        }

    async def _run(self, gen: GenRequest) -> Done:
        async for ev in self.engine.generate(gen):
            if isinstance(ev, Done):
                return ev
        raise UpstreamError(f"route {self.route.name}: generation ended without an answer")

    async def chat(self, request: dict[str, Any], adapter: Adapter | None = None) -> Completion:
        gen, allowed = await self._request(request, adapter)
        done = await self._run(gen)
        msg, finish = self._message(done, allowed)
        body = {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.route.model,
            "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
            "usage": self._usage(done),
        }
        # Counted with the model's own tokenizer: exact, so it counts as reported.
        return Completion(body, Usage(done.prompt_tokens, done.completion_tokens, reported=True))

    async def chat_stream(
        self, request: dict[str, Any], adapter: Adapter | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        gen, allowed = await self._request(request, adapter)
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.route.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        events = self.engine.generate(gen)
        try:
            first = await events.__anext__()  # errors before the first chunk raise here
        except StopAsyncIteration:
            raise UpstreamError(f"route {self.route.name}: no answer") from None
        yield chunk({"role": "assistant", "content": ""})
        done: Done | None = None
        ev: Delta | Done = first
        while True:
            if isinstance(ev, Done):
                done = ev
                break
            if not allowed:  # with tools the whole answer is parsed first
                yield chunk({"content": ev.text})
            ev = await events.__anext__()
        finish = done.finish_reason
        if allowed:
            msg, finish = self._message(done, allowed)
            if msg.get("tool_calls"):
                calls = [{"index": i, **c} for i, c in enumerate(msg["tool_calls"])]
                yield chunk({"tool_calls": calls})
            elif msg.get("content"):
                yield chunk({"content": msg["content"]})
        yield chunk({}, finish)
        yield {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.route.model,
            "choices": [],
            "usage": self._usage(done),
        }

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(
            f"route {self.route.name}: embeddings are not supported by local chat models",
            retryable=False,
            code="not_supported",
        )

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.close)


def dumps_arguments(args: dict[str, Any]) -> str:
    """Tool-call arguments as OpenAI carries them: a JSON string."""
    return json.dumps(args, ensure_ascii=False)
