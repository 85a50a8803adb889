"""Put original values back where a model echoed their placeholders.

The placeholder map lives only in a :class:`Restorer`, in memory, for one
request. Restoring is a single left-to-right pass, so it is linear in the
response size and a value that itself looks like a placeholder is never
expanded twice.

Two contexts differ:

* **text** (message content): the placeholder is replaced by the value as is;
* **JSON text** (tool-call ``arguments``): the value is JSON-escaped, since it
  lands inside a JSON string, and the escaped spelling some servers emit
  (``\\u003cEMAIL_ADDRESS_1\\u003e``, Go's encoder) is recognised too.

Streaming splits text anywhere, so a stream restorer holds back a trailing
fragment that could still become a placeholder (``"<EMA"``) until the next
chunk decides it; the hold is bounded by the longest possible placeholder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Longest placeholder body (between the brackets) this module will wait for.
MAX_BODY = 64
_BODY = re.compile(rf"[A-Z0-9_]{{0,{MAX_BODY + 1}}}")
_TEXT_SPECIAL = re.compile(r"<")
_JSON_SPECIAL = re.compile(r"[<\\]")
_JSON_OPEN = ("\\u003c", "\\u003C")
_JSON_CLOSE = ("\\u003e", "\\u003E")
_TEXT_FIELDS = ("content", "refusal", "reasoning_content")


def _encode_json(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def restore_segment(
    s: str, mapping: Mapping[str, str], *, json_mode: bool, final: bool
) -> tuple[str, str]:
    """Restore ``s``; return ``(restored, held)``.

    ``held`` is a trailing fragment that may still complete into a placeholder
    (always empty when ``final``); it must be prepended to the next piece.
    """
    out: list[str] = []
    special = _JSON_SPECIAL if json_mode else _TEXT_SPECIAL
    n = len(s)
    i = 0
    while True:
        m = special.search(s, i)
        if m is None:
            out.append(s[i:])
            return "".join(out), ""
        j = m.start()
        out.append(s[i:j])
        if s[j] == "\\":
            esc = s[j : j + 6]
            if len(esc) < 2 or (esc[1] == "u" and len(esc) < 6):
                if final:
                    out.append(esc)
                    return "".join(out), ""
                return "".join(out), s[j:]  # an escape cut by the chunk boundary
            if esc not in _JSON_OPEN:
                step = 6 if esc[1] == "u" else 2
                out.append(s[j : j + step])
                i = j + step
                continue
            k = j + 6
        else:
            k = j + 1
        body = _BODY.match(s, k)
        assert body is not None  # the pattern matches the empty string
        b = body.end()
        text = body.group()
        if text and not ("A" <= text[0] <= "Z"):
            out.append(s[j:k])
            i = k
            continue
        if b == n and len(text) <= MAX_BODY:
            if final:
                out.append(s[j:])
                return "".join(out), ""
            return "".join(out), s[j:]
        close = 0
        if b < n and text and len(text) <= MAX_BODY:
            if s[b] == ">":
                close = 1
            elif json_mode and s[b] == "\\":
                tail = s[b : b + 6]
                if tail in _JSON_CLOSE:
                    close = 6
                elif len(tail) < 6 and not final and any(c.startswith(tail) for c in _JSON_CLOSE):
                    return "".join(out), s[j:]
        if close:
            key = f"<{text}>"
            value = mapping.get(key)
            if value is None:
                out.append(s[j : b + close])  # unknown placeholder: left as the model wrote it
            else:
                out.append(_encode_json(value) if json_mode else value)
            i = b + close
            continue
        out.append(s[j:k])
        i = k


class StreamRestorer:
    """Restores one streamed chat completion, chunk by chunk.

    Each (choice index, field) has its own held-back fragment: ``content`` and
    every ``tool_calls[i].function.arguments`` are independent streams of text.
    A choice's fragments are released with its ``finish_reason`` chunk; any
    left at the end of the stream come out of :meth:`flush`.
    """

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._map = mapping
        self._held: dict[tuple[int, str, int], str] = {}
        self._envelope: dict[str, Any] = {}

    def _restore(self, key: tuple[int, str, int], text: str, final: bool) -> str:
        json_mode = key[1] in ("tool", "function_call")
        out, held = restore_segment(
            self._held.pop(key, "") + text, self._map, json_mode=json_mode, final=final
        )
        if held:
            self._held[key] = held
        return out

    def feed_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        choices = chunk.get("choices")
        for name in ("id", "object", "created", "model", "system_fingerprint"):
            if name in chunk:
                self._envelope[name] = chunk[name]
        if not isinstance(choices, list):
            return chunk
        out = dict(chunk)
        out["choices"] = [self._choice(c) if isinstance(c, dict) else c for c in choices]
        return out

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any]:
        idx = choice.get("index", 0)
        idx = idx if isinstance(idx, int) else 0
        final = choice.get("finish_reason") is not None
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            if not final or not any(k[0] == idx for k in self._held):
                return choice
            delta = {}
        new = dict(delta)
        seen: set[tuple[int, str, int]] = set()
        for field in _TEXT_FIELDS:
            if isinstance(new.get(field), str):
                seen.add((idx, field, 0))
                new[field] = self._restore((idx, field, 0), new[field], final)
        fc = new.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            seen.add((idx, "function_call", 0))
            fc = dict(fc)
            fc["arguments"] = self._restore((idx, "function_call", 0), fc["arguments"], final)
            new["function_call"] = fc
        calls = new.get("tool_calls")
        if isinstance(calls, list):
            new_calls: list[Any] = []
            for pos, tc in enumerate(calls):
                fn = tc.get("function") if isinstance(tc, dict) else None
                if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
                    new_calls.append(tc)
                    continue
                assert isinstance(tc, dict)
                t = tc.get("index", pos)
                key = (idx, "tool", t if isinstance(t, int) else pos)
                seen.add(key)
                fn = dict(fn)
                fn["arguments"] = self._restore(key, fn["arguments"], final)
                new_calls.append({**tc, "function": fn})
            new["tool_calls"] = new_calls
        if final:
            for key in [k for k in self._held if k[0] == idx and k not in seen]:
                self._put(new, key, self._held.pop(key))
        return {**choice, "delta": new}

    @staticmethod
    def _put(delta: dict[str, Any], key: tuple[int, str, int], text: str) -> None:
        """Add released text for a field that this chunk's delta does not carry."""
        _, field, t = key
        if field == "tool":
            calls = delta.get("tool_calls")
            calls = list(calls) if isinstance(calls, list) else []
            calls.append({"index": t, "function": {"arguments": text}})
            delta["tool_calls"] = calls
        elif field == "function_call":
            delta["function_call"] = {"arguments": text}
        else:
            delta[field] = text

    def flush(self) -> dict[str, Any] | None:
        """Whatever is still held, as one last chunk (None when nothing is)."""
        if not self._held:
            return None
        deltas: dict[int, dict[str, Any]] = {}
        for key in sorted(self._held, key=lambda k: (k[0], k[1], k[2])):
            json_mode = key[1] in ("tool", "function_call")
            text, _ = restore_segment(self._held[key], self._map, json_mode=json_mode, final=True)
            self._put(deltas.setdefault(key[0], {}), key, text)
        self._held.clear()
        chunk: dict[str, Any] = {"object": "chat.completion.chunk", **self._envelope}
        chunk["choices"] = [
            {"index": i, "delta": d, "finish_reason": None} for i, d in sorted(deltas.items())
        ]
        return chunk


class Restorer:
    """The placeholder map of one request; nothing else ever holds it."""

    __slots__ = ("_map",)

    def __init__(self, mapping: Mapping[str, str]) -> None:
        self._map: dict[str, str] = dict(mapping)

    def __repr__(self) -> str:  # never print the values
        return f"Restorer({len(self._map)} placeholders)"

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(self._map)

    def restore_text(self, text: str) -> str:
        return restore_segment(text, self._map, json_mode=False, final=True)[0]

    def restore_json_text(self, text: str) -> str:
        """Restore inside JSON text (tool-call arguments): values come back JSON-escaped."""
        return restore_segment(text, self._map, json_mode=True, final=True)[0]

    def restore_piece(self, text: str, *, json_mode: bool, final: bool) -> tuple[str, str]:
        """One piece of a stream: ``(restored, held)``, as :func:`restore_segment`."""
        return restore_segment(text, self._map, json_mode=json_mode, final=final)

    def restore_completion(self, body: dict[str, Any]) -> dict[str, Any]:
        """A copy of an OpenAI ``chat.completion`` with placeholders restored."""
        out = dict(body)
        choices = body.get("choices")
        if not isinstance(choices, list):
            return out
        out["choices"] = [self._choice(c) if isinstance(c, dict) else c for c in choices]
        return out

    def _choice(self, choice: dict[str, Any]) -> dict[str, Any]:
        msg = choice.get("message")
        if not isinstance(msg, dict):
            return choice
        m = dict(msg)
        for field in _TEXT_FIELDS:
            v = m.get(field)
            if isinstance(v, str):
                m[field] = self.restore_text(v)
            elif isinstance(v, list):
                m[field] = [self._part(p) for p in v]
        fc = m.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            m["function_call"] = {**fc, "arguments": self.restore_json_text(fc["arguments"])}
        calls = m.get("tool_calls")
        if isinstance(calls, list):
            m["tool_calls"] = [self._call(tc) for tc in calls]
        return {**choice, "message": m}

    def _part(self, part: Any) -> Any:
        if isinstance(part, dict) and isinstance(part.get("text"), str):
            return {**part, "text": self.restore_text(part["text"])}
        return part

    def _call(self, tc: Any) -> Any:
        fn = tc.get("function") if isinstance(tc, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
            return tc
        assert isinstance(tc, dict)
        return {**tc, "function": {**fn, "arguments": self.restore_json_text(fn["arguments"])}}

    def stream(self) -> StreamRestorer:
        return StreamRestorer(self._map)
