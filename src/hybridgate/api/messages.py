"""Anthropic Messages (``POST /v1/messages``) with same-family pass-through.

On an Anthropic route the scanned and masked body goes upstream as the client
wrote it: ``thinking``, every ``cache_control``, ``output_config``,
``context_management``, ``metadata``, ``top_k``, server tools and the
``anthropic-beta`` header are all kept, and the answer (or its event stream)
comes back as the upstream sent it, restored. On any other route the request
is translated to Chat Completions; a field with no translation is refused by
name (see :data:`CROSS_FAMILY_REFUSED`), never dropped.

``POST /v1/messages/count_tokens`` is answered by the Anthropic route under
the same policy, or by the gateway's documented local estimate when the
policy permits no Anthropic route.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hybridgate.api.common import error_body, json_bytes, parse_json, sse_event
from hybridgate.api.exchange import ExchangeRunner, HeldFinalFramer, answer, stream_response
from hybridgate.errors import GatewayError, InvalidRequest
from hybridgate.pipeline import Exchange, Pipeline, Prepared, restored_chunks
from hybridgate.pipeline.checks import model_request
from hybridgate.providers.base import Completion, Provider, Usage
from hybridgate.providers.tokens import estimate_request_tokens
from hybridgate.routing.quality import prompt_text
from hybridgate.translate.anthropic import (
    OpenAIToAnthropicStream,
    anthropic_request_to_openai,
    openai_response_to_anthropic,
)
from hybridgate.translate.native_restore import NativeRestorer

log = logging.getLogger("hybridgate.api")
API = "anthropic.messages"
#: Request headers forwarded to an Anthropic route as the client sent them.
FORWARD_HEADERS = ("anthropic-beta",)
#: Top-level fields with no Chat Completions translation: refused on other routes.
CROSS_FAMILY_REFUSED = (
    "thinking",
    "output_config",
    "context_management",
    "top_k",
    "container",
    "mcp_servers",
    "service_tier",
)
_TRANSLATED_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "max_tokens",
        "stop_sequences",
        "temperature",
        "top_p",
        "tools",
        "tool_choice",
        "stream",
        "metadata",
    }
)


ChatOf = Callable[[dict[str, Any]], dict[str, Any]]


def _same(body: dict[str, Any]) -> dict[str, Any]:
    return body


def native_possible(pipeline: Pipeline, model: str, provider: str) -> bool:
    """Whether some route the model may use speaks the client's API family (then the
    body is kept native and translated per attempt; otherwise it is translated once)."""
    resolved = pipeline.deps.resolve_model(model)
    return resolved is None or any(f.provider == provider for f in resolved[1])


def is_native(provider: Provider) -> bool:
    return provider.route.provider == "anthropic" and hasattr(provider, "messages")


def _document_text(block: dict[str, Any]) -> str | None:
    """A document block's text when it has one the scanner can read, else None."""
    src = block.get("source")
    if not isinstance(src, dict):
        return None
    if src.get("type") == "text" and isinstance(src.get("data"), str):
        return str(src["data"])
    if src.get("type") == "content" and isinstance(src.get("content"), list | str):
        c = src["content"]
        if isinstance(c, str):
            return c
        texts = [b.get("text") for b in c if isinstance(b, dict)]
        return "\n".join(t for t in texts if isinstance(t, str))
    if (
        src.get("type") == "base64"
        and src.get("media_type") == "text/plain"
        and isinstance(src.get("data"), str)
    ):
        try:
            return base64.b64decode(src["data"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
    return None


def _blocks(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict):
                    out.append(b)
                    inner = b.get("content")
                    if b.get("type") == "tool_result" and isinstance(inner, list):
                        out.extend(x for x in inner if isinstance(x, dict))
    return out


def unreadable_documents(body: dict[str, Any]) -> str | None:
    """A reason to confine when some document block (a PDF, an encoded file) cannot be
    read as text: its content is unscannable, so it is treated like unknown data."""
    if any(b.get("type") == "document" and _document_text(b) is None for b in _blocks(body)):
        return "a document could not be read as text (unscannable)"
    return None


def normalise_for_translation(body: dict[str, Any]) -> dict[str, Any]:
    """A Messages body ready for the chat translator, or a 400 naming what cannot cross.

    ``role: "system"`` messages become system turns, readable documents become
    text, ``cache_control`` (a caching hint that changes no answer) is left out,
    and ``metadata.user_id`` becomes ``user``.
    """
    for name in CROSS_FAMILY_REFUSED:
        if body.get(name) is not None and not (
            name == "thinking"
            and isinstance(body[name], dict)
            and body[name].get("type") == "disabled"
        ):
            raise InvalidRequest(
                f"`{name}` has no translation for this route's API; "
                "send it to an Anthropic route or leave it out",
                param=name,
            )
    for key in body:
        if key not in _TRANSLATED_FIELDS and key not in CROSS_FAMILY_REFUSED:
            raise InvalidRequest(f"`{key}` has no translation for this route's API", param=key)
    for i, t in enumerate(body.get("tools") or ()):
        ttype = t.get("type") if isinstance(t, dict) else None
        if ttype not in (None, "custom"):
            raise InvalidRequest(
                f"tools[{i}]: server tool {ttype!r} runs only on Anthropic routes",
                param=f"tools[{i}]",
            )
    out = {k: v for k, v in body.items() if k in _TRANSLATED_FIELDS and k != "metadata"}
    system: list[str] = []
    if isinstance(body.get("system"), str):
        system.append(body["system"])
    elif isinstance(body.get("system"), list):
        system.extend(str(b.get("text", "")) for b in body["system"] if isinstance(b, dict))
    messages: list[Any] = []
    pending_system: list[str] = []
    for i, m in enumerate(body.get("messages") or ()):
        if isinstance(m, dict) and m.get("role") == "system":
            c = m.get("content")
            pending_system.append(
                c
                if isinstance(c, str)
                else "\n".join(str(b.get("text", "")) for b in c or () if isinstance(b, dict))
            )
            continue
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            m = {**m, "content": [_plain_block(b, f"messages[{i}]") for b in m["content"]]}
        messages.append(m)
    if pending_system:
        system.extend(pending_system)
    if system:
        out["system"] = "\n\n".join(s for s in system if s)
    out["messages"] = messages
    md = body.get("metadata")
    if isinstance(md, dict) and isinstance(md.get("user_id"), str):
        out["_user"] = md["user_id"]
    return out


def _plain_block(b: Any, where: str) -> Any:
    if not isinstance(b, dict):
        return b
    b = {k: v for k, v in b.items() if k != "cache_control"}
    if b.get("type") == "document":
        text = _document_text(b)
        if text is None:
            raise InvalidRequest(
                f"{where}: this document cannot be read as text, and only Anthropic "
                "routes take documents as they are",
                param=where,
            )
        return {"type": "text", "text": text}
    if b.get("type") == "tool_result" and isinstance(b.get("content"), list):
        for x in b["content"]:
            if isinstance(x, dict) and x.get("type") != "text":
                raise InvalidRequest(
                    f"{where}: a {x.get('type')!r} block inside tool_result has no "
                    "translation for this route's API",
                    param=where,
                )
        b["content"] = [
            {k: v for k, v in x.items() if k != "cache_control"}
            for x in b["content"]
            if isinstance(x, dict)
        ]
    return b


def to_chat(body: dict[str, Any]) -> dict[str, Any]:
    plain = normalise_for_translation(body)
    user = plain.pop("_user", None)
    chat = anthropic_request_to_openai(plain)
    if user is not None:
        chat["user"] = user
    return chat


def _view(body: dict[str, Any]) -> dict[str, Any]:
    """Chat-shaped view for token estimates and the quality router (never sent)."""
    try:
        return to_chat(body)
    except InvalidRequest:
        return {
            "messages": [{"role": "user", "content": json_bytes(body.get("messages")).decode()}]
        }


def _validate(raw: Any) -> dict[str, Any]:
    body = model_request(raw)
    mt = body.get("max_tokens")
    if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
        raise InvalidRequest("`max_tokens` must be a positive integer", param="max_tokens")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InvalidRequest("`messages` must be a non-empty list", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant", "system"):
            raise InvalidRequest(
                f"messages[{i}]: role must be 'user', 'assistant' or 'system'",
                param=f"messages[{i}]",
            )
        if not isinstance(m.get("content"), str | list):
            raise InvalidRequest(
                f"messages[{i}].content must be a string or a list of blocks",
                param=f"messages[{i}]",
            )
    if body.get("stream") is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    return body


def _native_usage(u: Any, prev: Usage | None = None) -> Usage | None:
    if not isinstance(u, dict):
        return prev
    pin = u.get("input_tokens")
    pin = pin if isinstance(pin, int) else (prev.prompt_tokens if prev else 0)
    for extra in ("cache_creation_input_tokens", "cache_read_input_tokens"):
        if isinstance(u.get(extra), int) and prev is None:
            pin += u[extra]
    out = u.get("output_tokens")
    out = out if isinstance(out, int) else (prev.completion_tokens if prev else 0)
    return Usage(pin, out, reported=True)


class MessagesFramer(HeldFinalFramer):
    """Messages events as SSE; ``message_stop`` is held back until the receipt is durable."""

    final = frozenset({"message_stop"})
    missing = "upstream stream ended without message_stop"

    def error(self, err: GatewayError) -> bytes:
        return sse_event(error_body(err, "anthropic"))


class MessagesAPI:
    def __init__(self, runner: ExchangeRunner) -> None:
        self.runner = runner
        self.pipeline = runner.pipeline

    async def create(self, request: Request) -> Response:
        async with contextlib.AsyncExitStack() as stack:
            ex = await self.runner.open(stack, request, API, "anthropic")
            body = _validate(parse_json(ex.raw_body))
            headers = {h: request.headers[h] for h in FORWARD_HEADERS if h in request.headers}
            native_ok = native_possible(self.pipeline, body["model"], "anthropic")
            # No Anthropic route can take it: translate once, up front, and scan that.
            sent = body if native_ok else to_chat(body)
            view = _view(body) if native_ok else sent
            prepared = await self.pipeline.prepare_native(
                ex,
                sent,
                body["model"],
                prompt=prompt_text(view),
                estimate=view,
                confine=unreadable_documents(body),
            )
            chat_of = to_chat if native_ok else _same
            if body.get("stream") is True:
                events = await self._open_stream(ex, body, prepared, headers, chat_of)
                return stream_response(stack, ex, events, None, MessagesFramer())
            data = json_bytes(await self._complete(ex, body, prepared, headers, chat_of))
            ex.sent(data)
        return answer(ex, data)

    async def _complete(
        self,
        ex: Exchange,
        body: dict[str, Any],
        prepared: Prepared,
        headers: dict[str, str],
        chat_of: ChatOf,
    ) -> dict[str, Any]:
        async def call(p: Provider) -> tuple[str, Any]:
            if is_native(p):
                return "native", await p.messages(prepared.body, headers)  # type: ignore[attr-defined]
            return "chat", await p.chat(chat_of(prepared.body))

        kind, result = await self.pipeline.send(ex, prepared, call)
        if kind == "native":
            msg = NativeRestorer(prepared.restorer).message(result)
            ex.usage = _native_usage(msg.get("usage")) or Usage(0, 0, reported=False)
            msg["model"] = body["model"]
            return msg
        assert isinstance(result, Completion)
        ex.usage = result.usage
        chat = result.body
        if prepared.restorer is not None:
            chat = prepared.restorer.restore_completion(chat)
        chat["model"] = body["model"]
        return openai_response_to_anthropic(chat)

    async def _open_stream(
        self,
        ex: Exchange,
        body: dict[str, Any],
        prepared: Prepared,
        headers: dict[str, str],
        chat_of: ChatOf,
    ) -> AsyncIterator[dict[str, Any]]:
        """The stream's Messages events, opened through the plan (failover before the
        first upstream event only)."""

        async def open_stream(p: Provider) -> tuple[str, Any, AsyncIterator[dict[str, Any]]]:
            if is_native(p):
                it = p.messages_stream(prepared.body, headers).__aiter__()  # type: ignore[attr-defined]
                kind = "native"
            else:
                it = p.chat_stream(chat_of(prepared.body)).__aiter__()
                kind = "chat"
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = None
            return kind, first, it

        kind, first, it = await self.pipeline.send(ex, prepared, open_stream)
        if kind == "native":
            return self._native_events(ex, body, prepared, first, it)
        return self._chat_events(ex, body, prepared, first, it)

    async def _native_events(
        self,
        ex: Exchange,
        body: dict[str, Any],
        prepared: Prepared,
        first: dict[str, Any] | None,
        it: AsyncIterator[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        restorer = NativeRestorer(prepared.restorer)

        async def upstream() -> AsyncIterator[dict[str, Any]]:
            if first is not None:
                yield first
            async for ev in it:
                yield ev

        async for ev in upstream():
            if ev.get("type") == "message_start" and isinstance(ev.get("message"), dict):
                ev = {**ev, "message": {**ev["message"], "model": body["model"]}}
                ex.usage = _native_usage(ev["message"].get("usage"))
            elif ev.get("type") == "message_delta":
                ex.usage = _native_usage(ev.get("usage"), ex.usage)
            for out in restorer.message_event(ev):
                yield out

    async def _chat_events(
        self,
        ex: Exchange,
        body: dict[str, Any],
        prepared: Prepared,
        first: dict[str, Any] | None,
        it: AsyncIterator[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        conv = OpenAIToAnthropicStream(model=str(body["model"]))
        async for chunk in restored_chunks(ex, prepared, first, it):
            for ev in conv.feed(chunk):
                yield ev
        for ev in conv.finish():
            yield ev

    # -- count_tokens ---------------------------------------------------------------
    async def count_tokens(self, request: Request) -> Response:
        """Counted by an Anthropic route the policy permits, else estimated locally."""
        async with contextlib.AsyncExitStack() as stack:
            ex = await self.runner.open(stack, request, "anthropic.count_tokens", "anthropic")
            body = parse_json(ex.raw_body)
            if not isinstance(body, dict):
                raise InvalidRequest("request body must be a JSON object")
            body = _validate({**body, "max_tokens": 1})
            body.pop("max_tokens")
            headers = {h: request.headers[h] for h in FORWARD_HEADERS if h in request.headers}
            # No Anthropic route: the body must still be one the gateway could translate.
            native_ok = native_possible(self.pipeline, body["model"], "anthropic")
            view = (
                _view({**body, "max_tokens": 1})
                if native_ok
                else to_chat({**body, "max_tokens": 1})
            )
            prepared = await self.pipeline.prepare_native(
                ex,
                body,
                body["model"],
                prompt="",
                estimate={**view, "max_tokens": 1},
                confine=unreadable_documents(body),
            )

            async def call(p: Provider) -> dict[str, Any]:
                if is_native(p):
                    return await p.count_tokens(prepared.body, headers)  # type: ignore[attr-defined, no-any-return]
                # The local estimate (providers/tokens.py): ~4 characters per token.
                return {"input_tokens": estimate_request_tokens(view)}

            out = await self.pipeline.send(ex, prepared, call)
            n = out.get("input_tokens")
            ex.usage = Usage(0, 0, reported=True)
            data = json_bytes({"input_tokens": n if isinstance(n, int) else 0})
            ex.sent(data)
        return answer(ex, data)
