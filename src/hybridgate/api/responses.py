"""The OpenAI Responses API: ``POST /v1/responses`` (plain and streamed), retrieve,
delete, input items and cancel.

Native on OpenAI routes: the scanned and masked body goes upstream as the
client wrote it (``include``, ``reasoning``, hosted tools and all) and the
answer comes back as the upstream sent it, restored. Every other route gets
the request translated to Chat Completions (and from there to Messages for
Anthropic routes), and the answer translated back, streaming included.

Conversation state is the gateway's own: with ``store`` (the API's default)
each turn is sealed in the conversation store, scoped to the key's team, and
``previous_response_id`` replays the whole history to whichever route this
turn's policy permits. The policy therefore sees the whole history on every
turn, and a conversation confined on-prem once stays there.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hybridgate.api.common import (
    RawJSONResponse,
    error_response,
    gateway_headers,
    json_bytes,
    parse_json,
    sse_event,
)
from hybridgate.api.exchange import ExchangeRunner, HeldFinalFramer, answer, stream_response
from hybridgate.api.messages import native_possible
from hybridgate.conversations import ConversationStore, StoredTurn
from hybridgate.errors import GatewayError, InvalidRequest, NotFound, ServiceUnavailable
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import Exchange, Prepared, restored_chunks
from hybridgate.pipeline.checks import model_request
from hybridgate.pipeline.send import answer_text
from hybridgate.policy.model import Action
from hybridgate.providers.base import Completion, Provider, Usage
from hybridgate.routing.quality import prompt_text
from hybridgate.translate.native_restore import NativeRestorer
from hybridgate.translate.responses_request import responses_to_chat
from hybridgate.translate.responses_response import (
    ChatToResponsesStream,
    ResponseShell,
    chat_to_response,
    new_id,
    response_shell,
)

log = logging.getLogger("hybridgate.api")
API = "openai.responses"
_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def scope(key: KeyInfo) -> str:
    """Whose conversations a key reads: its team's, or its own when it has no team."""
    return key.team if key.team else "key:" + (key.key_id or "admin")


def is_native(provider: Provider) -> bool:
    """Routes that speak the Responses API themselves (OpenAI's own API)."""
    return provider.route.provider == "openai" and hasattr(provider, "responses")


def _validate(raw: Any) -> dict[str, Any]:
    body = model_request(raw)
    inp = body.get("input")
    if not isinstance(inp, str | list):
        raise InvalidRequest("`input` must be a string or a list of items", param="input")
    if isinstance(inp, list):
        for i, item in enumerate(inp):
            if not isinstance(item, dict):
                raise InvalidRequest(f"input[{i}] must be an object", param=f"input[{i}]")
    for name in ("stream", "store"):
        if body.get(name) is not None and not isinstance(body[name], bool):
            raise InvalidRequest(f"`{name}` must be a boolean", param=name)
    prev = body.get("previous_response_id")
    if prev is not None and (not isinstance(prev, str) or not prev):
        raise InvalidRequest(
            "`previous_response_id` must be a string", param="previous_response_id"
        )
    return body


def input_items(inp: str | list[Any]) -> list[Any]:
    """The turn's input as a list of items (a string is one user message)."""
    if isinstance(inp, str):
        return [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": inp}]}
        ]
    return list(inp)


def _with_ids(items: list[Any]) -> list[Any]:
    """Stored input items carry ids, as the API lists them."""
    out: list[Any] = []
    for item in items:
        if isinstance(item, dict) and "id" not in item:
            kind = item.get("type", "message")
            prefix = {"message": "msg", "function_call_output": "fco", "function_call": "fc"}
            item = {"id": new_id(prefix.get(str(kind), "item")), **item}
            if kind == "message":
                item.setdefault("type", "message")
        out.append(item)
    return out


def _replay(item: Any) -> Any:
    """A stored item as it is replayed upstream: message and call ids are the gateway's
    own (never persisted at the provider), so they are left out; reasoning items keep
    theirs, which their encrypted content is bound to."""
    if isinstance(item, dict) and item.get("type", "message") in (
        "message",
        "function_call",
        "function_call_output",
    ):
        return {k: v for k, v in item.items() if k not in ("id", "status")}
    return item


def history_items(turns: list[StoredTurn]) -> list[Any]:
    items: list[Any] = []
    for t in turns:
        items.extend(_replay(i) for i in t.input)
        items.extend(_replay(i) for i in t.output)
    return items


def _estimate_view(native: dict[str, Any]) -> dict[str, Any]:
    """A chat-shaped view for token estimates and the quality router."""
    try:
        return responses_to_chat(native)
    except InvalidRequest:  # hosted tools etc.: estimate from the text alone
        return {"messages": [{"role": "user", "content": json_bytes(native.get("input")).decode()}]}


def output_text(obj: Any) -> str | None:
    """The text of a response's message items (what distill capture keeps); None when
    it has none (only tool calls, or not a response object)."""
    output = obj.get("output") if isinstance(obj, dict) else None
    if not isinstance(output, list):
        return None
    texts = [
        part["text"]
        for item in output
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
        and part.get("type") == "output_text"
        and isinstance(part.get("text"), str)
    ]
    return "".join(texts) if texts else None


def _usage_from_response(obj: dict[str, Any]) -> Usage | None:
    u = obj.get("usage")
    if isinstance(u, dict) and isinstance(u.get("input_tokens"), int):
        out = u.get("output_tokens")
        return Usage(int(u["input_tokens"]), out if isinstance(out, int) else 0, reported=True)
    return None


class ResponsesFramer(HeldFinalFramer):
    """Responses events as SSE; the final event is held back until the turn is stored
    and the receipt durable; an error event carries the next sequence number."""

    final = _TERMINAL

    def __init__(self) -> None:
        super().__init__()
        self._seq = 0

    def frames(self, event: dict[str, Any]) -> list[bytes]:
        self._seq = int(event.get("sequence_number", self._seq)) + 1
        return super().frames(event)

    def error(self, err: GatewayError) -> bytes:
        return sse_event(
            {"type": "error", "sequence_number": self._seq, "code": err.code}
            | {"message": err.message, "param": None}
        )


class ResponsesAPI:
    """The endpoints; one instance per app."""

    def __init__(self, runner: ExchangeRunner, conversations: ConversationStore) -> None:
        self.runner = runner
        self.pipeline = runner.pipeline
        self.convs = conversations

    # -- helpers ----------------------------------------------------------
    async def _store(
        self,
        ex: Exchange,
        key: KeyInfo,
        req: dict[str, Any],
        shell: ResponseShell,
        final: dict[str, Any],
        confined: bool,
    ) -> None:
        if req.get("store") is False:
            return
        now = time.time_ns()
        d = ex.decision
        await self.convs.put(
            StoredTurn(
                response_id=shell.id,
                team=scope(key),
                key_id=key.key_id or "admin",
                previous_id=shell.previous_response_id,
                conversation_id=ex.conversation_id or shell.id,
                created_ns=now,
                expires_ns=self.convs.expiry(now),
                confined=confined or (d is not None and d.action is Action.ON_PREM_ONLY),
                input=_with_ids(input_items(req["input"])),
                output=list(final.get("output") or []),
                response=final,
            )
        )

    @staticmethod
    def _own(obj: dict[str, Any], shell: ResponseShell) -> dict[str, Any]:
        """An upstream ``response`` object under the gateway's id, model and state fields."""
        return {
            **obj,
            "id": shell.id,
            "model": shell.model,
            "previous_response_id": shell.previous_response_id,
            "store": shell.request.get("store", True) is not False,
        }

    # -- POST /v1/responses ------------------------------------------------------
    async def create(self, request: Request) -> Response:
        async with contextlib.AsyncExitStack() as stack:
            ex = await self.runner.open(stack, request, API, "openai")
            key = ex.key
            req = _validate(parse_json(ex.raw_body))
            prev = req.get("previous_response_id")
            turns = self.convs.history(prev, scope(key)) if prev else []
            confined = any(t.confined for t in turns)
            native = {k: v for k, v in req.items() if k not in ("store", "previous_response_id")}
            native["input"] = history_items(turns) + input_items(req["input"])
            native_ok = native_possible(self.pipeline, req["model"], "openai")
            # No OpenAI route can take it: translate once, up front, and scan that.
            sent = native if native_ok else responses_to_chat(native)
            view = _estimate_view(native) if native_ok else sent
            prepared = await self.pipeline.prepare_native(
                ex,
                sent,
                req["model"],
                prompt=prompt_text(view),
                estimate=view,
                confine="an earlier turn of this conversation was confined" if confined else None,
            )
            shell = response_shell(req, req["model"], prev)
            if req.get("store") is not False:
                ex.conversation_id = turns[0].conversation_id if turns else shell.id
            if req.get("stream") is True:
                events = await self._open_stream(ex, prepared, shell, native_ok)
                stored = self._stored(ex, key, req, shell, confined, events)
                return stream_response(stack, ex, stored, None, ResponsesFramer())
            final = await self._complete(ex, prepared, shell, native_ok)
            await self._store(ex, key, req, shell, final, confined)
            data = json_bytes(final)
            ex.sent(data)
        return answer(ex, data)

    async def _complete(
        self, ex: Exchange, prepared: Prepared, shell: ResponseShell, native_ok: bool
    ) -> dict[str, Any]:
        upstream = {**prepared.body, "store": False}

        async def call(p: Provider) -> tuple[str, Any]:
            if is_native(p):
                return "native", await p.responses(upstream)  # type: ignore[attr-defined]
            chat = responses_to_chat(prepared.body) if native_ok else prepared.body
            return "chat", await p.chat(chat)

        kind, result = await self.pipeline.send(ex, prepared, call)
        if kind == "native":
            if ex.task is not None:  # the teacher's answer as sent, for distill capture
                ex.answer_text = output_text(result)
            obj = NativeRestorer(prepared.restorer).response(result)
            ex.usage = _usage_from_response(obj) or Usage(0, 0, reported=False)
            return self._own(obj, shell)
        assert isinstance(result, Completion)
        ex.usage = result.usage
        body = result.body
        if ex.task is not None:
            ex.answer_text = answer_text(body)
        if prepared.restorer is not None:
            body = prepared.restorer.restore_completion(body)
        return chat_to_response(body, shell)

    # -- streaming ------------------------------------------------------------------
    async def _open_stream(
        self, ex: Exchange, prepared: Prepared, shell: ResponseShell, native_ok: bool
    ) -> AsyncIterator[dict[str, Any]]:
        """The stream's Responses events, opened through the plan (failover before the
        first upstream event only)."""
        upstream = {**prepared.body, "store": False}

        async def open_stream(p: Provider) -> tuple[str, Any, AsyncIterator[dict[str, Any]]]:
            if is_native(p):
                it = p.responses_stream(upstream).__aiter__()  # type: ignore[attr-defined]
                kind = "native"
            else:
                chat = responses_to_chat(prepared.body) if native_ok else prepared.body
                it = p.chat_stream(chat).__aiter__()
                kind = "chat"
            try:
                first = await it.__anext__()
            except StopAsyncIteration:
                first = None
            return kind, first, it

        kind, first, it = await self.pipeline.send(ex, prepared, open_stream)
        if kind == "native":
            return self._native_events(ex, prepared, shell, first, it)
        return self._chat_events(ex, prepared, shell, first, it)

    async def _stored(
        self,
        ex: Exchange,
        key: KeyInfo,
        req: dict[str, Any],
        shell: ResponseShell,
        confined: bool,
        events: AsyncIterator[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        """The events up to the final one; once the framer holds the final event back,
        the turn is stored (a failure ends the stream with an error, not the answer)."""
        async for ev in events:
            yield ev
            if ev.get("type") in _TERMINAL:
                try:
                    await self._store(ex, key, req, shell, ev["response"], confined)
                except GatewayError as err:
                    log.error("%s: turn not written; ending the stream with an error", API)
                    raise ServiceUnavailable(err.message, code="receipt_unavailable") from err
                return

    async def _native_events(
        self,
        ex: Exchange,
        prepared: Prepared,
        shell: ResponseShell,
        first: dict[str, Any] | None,
        it: AsyncIterator[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        restorer = NativeRestorer(prepared.restorer)
        #: a distill task keeps the streamed answer text (the deltas, nothing else)
        texts: list[str] | None = [] if ex.task is not None else None

        async def upstream() -> AsyncIterator[dict[str, Any]]:
            if first is not None:
                yield first
            async for ev in it:
                yield ev

        async for ev in upstream():
            if texts is not None and ev.get("type") == "response.output_text.delta":
                delta = ev.get("delta")
                texts.append(delta if isinstance(delta, str) else "")
            if isinstance(ev.get("response"), dict):
                ev = {**ev, "response": self._own(ev["response"], shell)}
            for out in restorer.response_event(ev):
                if out.get("type") in _TERMINAL:
                    ex.usage = _usage_from_response(out["response"]) or Usage(0, 0, reported=False)
                    if texts is not None:
                        ex.answer_text = "".join(texts)
                yield out

    async def _chat_events(
        self,
        ex: Exchange,
        prepared: Prepared,
        shell: ResponseShell,
        first: dict[str, Any] | None,
        it: AsyncIterator[dict[str, Any]],
    ) -> AsyncIterator[dict[str, Any]]:
        conv = ChatToResponsesStream(shell)
        for ev in conv.start():
            yield ev
        async for chunk in restored_chunks(ex, prepared, first, it):
            for ev in conv.feed(chunk):
                yield ev
        for ev in conv.finish():
            yield ev

    # -- stored responses ----------------------------------------------------------
    async def _key(self, request: Request) -> KeyInfo:
        return await self.runner.authenticate(request)

    def _turn(self, key: KeyInfo, response_id: str) -> StoredTurn:
        turn = self.convs.get(response_id, scope(key))
        if turn is None:
            raise NotFound(f"Response with id {response_id!r} not found.", param="response_id")
        return turn

    async def _read(self, request: Request, fn: Any) -> Response:
        rid = "req_" + new_id("r")[2:26]
        try:
            key = await self._key(request)
            out = await fn(key, str(request.path_params["response_id"]))
        except GatewayError as err:
            return error_response(err, "openai", gateway_headers(rid, None))
        return RawJSONResponse(json_bytes(out), headers=gateway_headers(rid, None))

    async def retrieve(self, request: Request) -> Response:
        async def fn(key: KeyInfo, rid: str) -> Any:
            return self._turn(key, rid).response

        return await self._read(request, fn)

    async def delete(self, request: Request) -> Response:
        async def fn(key: KeyInfo, rid: str) -> Any:
            if not await self.convs.delete(rid, scope(key)):
                raise NotFound(f"Response with id {rid!r} not found.", param="response_id")
            return {"id": rid, "object": "response.deleted", "deleted": True}

        return await self._read(request, fn)

    async def input_items(self, request: Request) -> Response:
        q = request.query_params

        async def fn(key: KeyInfo, rid: str) -> Any:
            items = list(self._turn(key, rid).input)
            order = q.get("order", "desc")
            if order not in ("asc", "desc"):
                raise InvalidRequest("`order` must be 'asc' or 'desc'", param="order")
            if order == "desc":
                items.reverse()
            after = q.get("after")
            if after:
                ids = [i.get("id") if isinstance(i, dict) else None for i in items]
                items = items[ids.index(after) + 1 :] if after in ids else []
            try:
                limit = int(q.get("limit", "20"))
            except ValueError:
                raise InvalidRequest("`limit` must be an integer", param="limit") from None
            if not 1 <= limit <= 100:
                raise InvalidRequest("`limit` must be between 1 and 100", param="limit")
            page = items[:limit]
            return {
                "object": "list",
                "data": page,
                "first_id": page[0].get("id") if page else None,
                "last_id": page[-1].get("id") if page else None,
                "has_more": len(items) > limit,
            }

        return await self._read(request, fn)

    async def cancel(self, request: Request) -> Response:
        async def fn(key: KeyInfo, rid: str) -> Any:
            self._turn(key, rid)
            raise InvalidRequest(
                "Only responses created with background=true can be cancelled; "
                "this response already finished.",
                param="response_id",
            )

        return await self._read(request, fn)


def responses_routes(runner: ExchangeRunner, conversations: ConversationStore) -> list[Route]:
    api = ResponsesAPI(runner, conversations)
    return [
        Route("/v1/responses", api.create, methods=["POST"]),
        Route("/v1/responses/{response_id}", api.retrieve, methods=["GET"]),
        Route("/v1/responses/{response_id}", api.delete, methods=["DELETE"]),
        Route("/v1/responses/{response_id}/input_items", api.input_items, methods=["GET"]),
        Route("/v1/responses/{response_id}/cancel", api.cancel, methods=["POST"]),
    ]
