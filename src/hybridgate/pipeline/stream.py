"""Streamed chat: open through the plan, then restore chunk by chunk.

Fail-over happens only before the first chunk; a later failure ends the
stream. Every API that streams chat chunks goes through :func:`restored_chunks`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange, Prepared
from hybridgate.pipeline.send import attempts
from hybridgate.providers.adapters import as_adapter_provider
from hybridgate.providers.base import Provider, Usage


async def stream(
    d: PipelineDeps, ex: Exchange, prepared: Prepared
) -> AsyncIterator[dict[str, Any]]:
    """Restored chunks. Fails over only before the first chunk; later failures raise."""

    async def open_stream(
        p: Provider,
    ) -> tuple[dict[str, Any] | None, AsyncIterator[dict[str, Any]]]:
        if prepared.adapter is not None:
            source = as_adapter_provider(p).chat_stream(prepared.body, adapter=prepared.adapter)
        else:
            source = p.chat_stream(prepared.body)
        it = source.__aiter__()
        try:
            first = await it.__anext__()
        except StopAsyncIteration:
            return None, it
        return first, it

    first, it = await attempts(d, ex, prepared, open_stream)

    def tag(chunk: dict[str, Any]) -> dict[str, Any]:
        chunk["model"] = ex.virtual_model
        return chunk

    async def tagged() -> AsyncIterator[dict[str, Any]]:
        async for chunk in it:
            yield tag(chunk)

    head = tag(first) if first is not None else None
    async for chunk in restored_chunks(ex, prepared, head, tagged()):
        yield chunk


async def restored_chunks(
    ex: Exchange,
    prepared: Prepared,
    first: dict[str, Any] | None,
    it: AsyncIterator[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """Upstream chat chunks with their usage recorded on the exchange and masked values
    restored (a placeholder split across chunks is held back until complete), then the
    restorer's tail. Every API that streams chat chunks goes through this one loop.

    An exchange of a distill task also keeps the answer's text as the upstream sent it
    (placeholders unrestored: what capture may store), set when the stream ends."""
    restorer = prepared.restorer.stream() if prepared.restorer is not None else None
    texts: list[str] | None = [] if ex.task is not None else None

    async def chunks() -> AsyncIterator[dict[str, Any]]:
        if first is not None:
            yield first
        async for c in it:
            yield c

    try:
        async for chunk in chunks():
            u = chunk.get("usage")
            if isinstance(u, dict) and isinstance(u.get("prompt_tokens"), int):
                ex.usage = Usage(
                    int(u["prompt_tokens"]),
                    int(u.get("completion_tokens") or 0),
                    reported=not u.get("estimated"),
                )
            if texts is not None:
                texts.append(_delta_text(chunk))
            yield restorer.feed_chunk(chunk) if restorer is not None else chunk
    finally:
        if texts is not None:
            ex.answer_text = "".join(texts)
    if restorer is not None:
        tail = restorer.flush()
        if tail is not None:
            yield tail


def _delta_text(chunk: dict[str, Any]) -> str:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            return str(delta["content"])
    return ""
