"""Restore masked values in answers that come back in their own wire format.

Pass-through requests (Responses on an OpenAI route, Messages on an Anthropic
route) are answered in the upstream's own shape, so the chat-shaped restorer
does not apply. These helpers put the original values back in a ``response``
object, an Anthropic ``message``, and in both APIs' stream events.

Streams split text anywhere; each text stream (one per output item and
content part, or per content block) holds back a trailing fragment that may
still complete into a placeholder and releases it before the event that
closes that stream, as one extra delta event. Responses events are
renumbered so ``sequence_number`` stays strictly increasing.
"""

from __future__ import annotations

import copy
from typing import Any

from hybridgate.policy.restore import Restorer

Key = tuple[Any, ...]


def _walk_strings(node: Any, fn: Any) -> Any:
    """A copy of ``node`` with ``fn`` applied to every string value (not keys)."""
    if isinstance(node, str):
        return fn(node)
    if isinstance(node, list):
        return [_walk_strings(x, fn) for x in node]
    if isinstance(node, dict):
        return {k: _walk_strings(v, fn) for k, v in node.items()}
    return node


class NativeRestorer:
    """Restoration for one exchange's native answer; holds the placeholder map only."""

    def __init__(self, restorer: Restorer | None) -> None:
        self._r = restorer
        self._held: dict[Key, str] = {}
        self._seq = 0

    def __repr__(self) -> str:  # never print the values
        return "NativeRestorer()"

    def text(self, s: str) -> str:
        return self._r.restore_text(s) if self._r is not None else s

    def json_text(self, s: str) -> str:
        return self._r.restore_json_text(s) if self._r is not None else s

    def _piece(self, key: Key, s: str, json_mode: bool) -> str:
        if self._r is None:
            return s
        out, held = self._r.restore_piece(
            self._held.pop(key, "") + s, json_mode=json_mode, final=False
        )
        if held:
            self._held[key] = held
        return out

    def _release(self, key: Key, json_mode: bool) -> str:
        held = self._held.pop(key, "")
        if not held or self._r is None:
            return held
        return self._r.restore_piece(held, json_mode=json_mode, final=True)[0]

    # -- the Responses API ---------------------------------------------------

    def _item(self, item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        out = dict(item)
        if item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
            out["arguments"] = self.json_text(item["arguments"])
            return out
        for field in ("content", "summary"):
            parts = item.get(field)
            if isinstance(parts, list):
                out[field] = [self._part(p) for p in parts]
        return out

    def _part(self, part: Any) -> Any:
        if not isinstance(part, dict):
            return part
        out = dict(part)
        for field in ("text", "refusal"):
            if isinstance(part.get(field), str):
                out[field] = self.text(part[field])
        return out

    def response(self, obj: dict[str, Any]) -> dict[str, Any]:
        out = dict(obj)
        if isinstance(obj.get("output"), list):
            out["output"] = [self._item(i) for i in obj["output"]]
        return out

    def response_event(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        """One upstream event -> the events to send (deltas may be held or released)."""
        etype = ev.get("type")
        out: list[dict[str, Any]] = []
        ev = dict(ev)
        oi, ci = ev.get("output_index"), ev.get("content_index")
        if etype == "response.output_text.delta" and isinstance(ev.get("delta"), str):
            ev["delta"] = self._piece((oi, ci, "text"), ev["delta"], False)
            if not ev["delta"]:
                return []
        elif etype == "response.refusal.delta" and isinstance(ev.get("delta"), str):
            ev["delta"] = self._piece((oi, ci, "refusal"), ev["delta"], False)
            if not ev["delta"]:
                return []
        elif etype == "response.function_call_arguments.delta" and isinstance(ev.get("delta"), str):
            ev["delta"] = self._piece((oi, "args"), ev["delta"], True)
            if not ev["delta"]:
                return []
        elif etype in ("response.output_text.done", "response.refusal.done"):
            field = "text" if etype == "response.output_text.done" else "refusal"
            rest = self._release((oi, ci, field), False)
            if rest:
                out.append({**ev, "type": etype.replace(".done", ".delta"), "delta": rest})
                out[-1].pop(field, None)
                out[-1].setdefault("logprobs", [])
            if isinstance(ev.get(field), str):
                ev[field] = self.text(ev[field])
        elif etype == "response.function_call_arguments.done":
            rest = self._release((oi, "args"), True)
            if rest:
                out.append(
                    {
                        "type": "response.function_call_arguments.delta",
                        "item_id": ev.get("item_id"),
                        "output_index": oi,
                        "delta": rest,
                    }
                )
            if isinstance(ev.get("arguments"), str):
                ev["arguments"] = self.json_text(ev["arguments"])
        elif etype in ("response.content_part.done", "response.content_part.added"):
            ev["part"] = self._part(ev.get("part"))
        elif etype in ("response.output_item.done", "response.output_item.added"):
            ev["item"] = self._item(ev.get("item"))
        elif isinstance(ev.get("response"), dict):
            ev["response"] = self.response(ev["response"])
        elif isinstance(ev.get("text"), str):  # summary / reasoning text done events
            ev["text"] = self.text(ev["text"])
        elif isinstance(ev.get("delta"), str):  # other text deltas: restored whole
            ev["delta"] = self.text(ev["delta"])
        out.append(ev)
        for e in out:
            if "sequence_number" in ev:
                e["sequence_number"] = self._seq
                self._seq += 1
        return out

    # -- Anthropic Messages ------------------------------------------------------

    def _block(self, block: Any) -> Any:
        if not isinstance(block, dict):
            return block
        out = dict(block)
        btype = block.get("type")
        if btype == "text" and isinstance(block.get("text"), str):
            out["text"] = self.text(block["text"])
        elif btype == "thinking" and isinstance(block.get("thinking"), str):
            out["thinking"] = self.text(block["thinking"])
        elif btype in ("tool_use", "server_tool_use") and "input" in block:
            out["input"] = _walk_strings(copy.deepcopy(block["input"]), self.text)
        return out

    def message(self, msg: dict[str, Any]) -> dict[str, Any]:
        out = dict(msg)
        if isinstance(msg.get("content"), list):
            out["content"] = [self._block(b) for b in msg["content"]]
        return out

    def message_event(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        etype = ev.get("type")
        idx = ev.get("index")
        if etype == "content_block_delta" and isinstance(ev.get("delta"), dict):
            delta = dict(ev["delta"])
            dtype = delta.get("type")
            field = {"text_delta": "text", "input_json_delta": "partial_json"}.get(str(dtype))
            if dtype == "thinking_delta":
                field = "thinking"
            if field is not None and isinstance(delta.get(field), str):
                delta[field] = self._piece((idx, field), delta[field], field == "partial_json")
                if not delta[field]:
                    return []
            return [{**ev, "delta": delta}]
        if etype == "content_block_stop":
            out: list[dict[str, Any]] = []
            for field, dtype in (
                ("text", "text_delta"),
                ("partial_json", "input_json_delta"),
                ("thinking", "thinking_delta"),
            ):
                rest = self._release((idx, field), field == "partial_json")
                if rest:
                    out.append(
                        {
                            "type": "content_block_delta",
                            "index": idx,
                            "delta": {"type": dtype, field: rest},
                        }
                    )
            return [*out, ev]
        if etype == "content_block_start":
            return [{**ev, "content_block": self._block(ev.get("content_block"))}]
        if etype == "message_start" and isinstance(ev.get("message"), dict):
            return [{**ev, "message": self.message(ev["message"])}]
        return [ev]
