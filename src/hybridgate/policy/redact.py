"""Replace the findings a decision masks with typed placeholders. Pure.

``<EMAIL_ADDRESS_1>``, ``<CREDIT_CARD_2>``: the type tells the model what
stood there, the counter keeps values apart. The same original value gets the
same placeholder everywhere in the request (every turn, every field), so a
conversation stays coherent; any other verbatim occurrence of a masked value
in the request is masked too, even where the scanner did not flag it (fail
closed: once a value is known to be sensitive, it does not leave elsewhere).

Tool-call ``arguments`` are JSON text. A span inside a JSON string is widened
to whole escape sequences and replaced by the bare placeholder (plain ASCII,
valid inside a JSON string); a span over a number or literal replaces the
whole token with a quoted placeholder. The result is parsed again; if it were
not valid JSON the request is refused rather than sent broken or unmasked.
"""

from __future__ import annotations

import copy
import json
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick

from hybridgate.errors import ServiceUnavailable
from hybridgate.policy.evaluate import Decision
from hybridgate.policy.restore import Restorer
from hybridgate.scan.findings import Segment

_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]{0,63}>")
_ESCAPE = re.compile(r"\\(?:u[0-9a-fA-F]{4}|.)", re.DOTALL)
_JSON_TOKEN = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)"|(-?[0-9][0-9.eE+-]*|true|false|null)')
_TYPE_MAX = 40
#: Fields upstreams validate as identifiers: masked there without the angle brackets.
_IDENTIFIER_FIELDS = frozenset({"name"})
#: Values shorter than this are masked only where found, never swept for elsewhere.
_MIN_SWEEP = 4


class RedactionError(ServiceUnavailable):
    """Masking could not be done safely; the request is refused, nothing is sent."""

    code = "redaction_failed"


def placeholder_type(t: str) -> str:
    """A finding type as a placeholder name: ``A-Z0-9_`` only, starting with a letter."""
    name = re.sub(r"[^A-Z0-9]+", "_", t.upper()).strip("_")[:_TYPE_MAX].strip("_")
    if not name or not ("A" <= name[0] <= "Z"):
        name = "REDACTED" if not name else f"X_{name}"[:_TYPE_MAX]
    return name


@dataclass
class _Span:
    start: int
    end: int
    type: str
    value: str = ""
    quote: bool = False  # a bare JSON scalar replaced by a quoted placeholder


def _merge(spans: list[_Span]) -> list[_Span]:
    """Overlapping or touching spans become one; the longer span's type names it."""
    out: list[_Span] = []
    for sp in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and sp.start < out[-1].end:
            last = out[-1]
            if sp.end - sp.start > last.end - last.start:
                last.type = sp.type
            last.end = max(last.end, sp.end)
        else:
            out.append(_Span(sp.start, sp.end, sp.type))
    return out


def _is_json_segment(seg: Segment) -> bool:
    if not seg.path or seg.path[-1] != "arguments":
        return False
    try:
        json.loads(seg.text)
    except ValueError:
        return False
    return True


def _escapes(text: str, ts: int, te: int) -> tuple[list[int], list[int]]:
    """Start and length of every escape sequence in string content ``text[ts:te]``."""
    starts: list[int] = []
    lengths: list[int] = []
    for m in _ESCAPE.finditer(text, ts, te):
        starts.append(m.start())
        lengths.append(m.end() - m.start())
    return starts, lengths


def _snap(table: tuple[list[int], list[int]], a: int, b: int) -> tuple[int, int]:
    """Widen ``[a, b)`` so neither end falls inside an escape sequence."""
    starts, lengths = table
    i = bisect_right(starts, a) - 1
    if i >= 0 and starts[i] < a < starts[i] + lengths[i]:
        a = starts[i]
    i = bisect_right(starts, b) - 1
    if i >= 0 and starts[i] < b < starts[i] + lengths[i]:
        b = starts[i] + lengths[i]
    return a, b


def _json_spans(text: str, spans: list[_Span]) -> list[_Span]:
    """Map raw spans over JSON text onto whole string pieces and scalar tokens.

    Linear in the text plus the spans: tokens are found once, each span finds
    its first token by bisection, and escape tables are built once per token.
    """
    tokens = [
        (m.start(1), m.end(1), True) if m.group(1) is not None else (m.start(2), m.end(2), False)
        for m in _JSON_TOKEN.finditer(text)
    ]
    ends = [t[1] for t in tokens]
    tables: dict[int, tuple[list[int], list[int]]] = {}
    out: list[_Span] = []
    for sp in spans:
        k = bisect_right(ends, sp.start)
        while k < len(tokens) and tokens[k][0] < sp.end:
            ts, te, is_str = tokens[k]
            if not is_str:
                out.append(_Span(ts, te, sp.type, text[ts:te], quote=True))
            elif ts < te:
                if k not in tables:
                    tables[k] = _escapes(text, ts, te)
                a, b = _snap(tables[k], max(sp.start, ts), min(sp.end, te))
                if a < b:
                    out.append(_Span(a, b, sp.type, json.loads(f'"{text[a:b]}"')))
            k += 1
    return _dedupe(out)


def _dedupe(spans: list[_Span]) -> list[_Span]:
    """Keep non-overlapping spans (first wins after sorting by start, longest first)."""
    out: list[_Span] = []
    for sp in sorted(spans, key=lambda s: (s.start, -s.end)):
        if out and sp.start < out[-1].end:
            if sp.end > out[-1].end:  # partial overlap: widen the kept one's JSON piece
                last = out[-1]
                out[-1] = _Span(last.start, sp.end, last.type, "", last.quote)
            continue
        out.append(sp)
    return out


def _bounded(text: str, i: int, j: int) -> bool:
    """An occurrence not glued to letters or digits on either side."""
    return (i == 0 or not text[i - 1].isalnum()) and (j == len(text) or not text[j].isalnum())


def _sweeper(values: dict[str, str], json_text: bool) -> Any:
    """One automaton over every masked value (and its JSON spellings): one pass per text."""
    automaton = ahocorasick.Automaton()
    for value, type_ in values.items():
        if len(value) < _MIN_SWEEP:
            continue
        needles = {value}
        if json_text:
            needles |= {_json_escape(value, False), _json_escape(value, True)}
        for needle in needles:
            automaton.add_word(needle, (len(needle), type_))
    if len(automaton) == 0:
        return None
    automaton.make_automaton()
    return automaton


def _occurrences(automaton: Any, text: str) -> list[_Span]:
    found: list[_Span] = []
    for last, (length, type_) in automaton.iter(text):
        i, j = last + 1 - length, last + 1
        if _bounded(text, i, j):
            found.append(_Span(i, j, type_))
    return found


class _Allocator:
    def __init__(self, reserved: set[str]) -> None:
        self.by_value: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.reserved = reserved

    def get(self, value: str, type_: str) -> str:
        ph = self.by_value.get(value)
        if ph is None:
            name = placeholder_type(type_)
            while True:
                n = self.counters.get(name, 0) + 1
                self.counters[name] = n
                ph = f"<{name}_{n}>"
                if ph not in self.reserved:
                    break
            self.by_value[value] = ph
        return ph


def _set_path(root: Any, path: tuple[str | int, ...], expect: str, new: str) -> None:
    """Set the string at ``path``; a path may continue into embedded JSON text."""
    if not path:
        raise RedactionError("redaction failed: empty segment path; nothing was sent")
    node = root
    for depth, key in enumerate(path[:-1]):
        child = _child(node, key)
        if isinstance(child, str):  # the rest of the path lies inside JSON text
            inner = json.loads(child)
            _set_path(inner, path[depth + 1 :], expect, new)
            _assign(node, key, json.dumps(inner, ensure_ascii=False))
            return
        node = child
    if _child(node, path[-1]) != expect:
        raise RedactionError("redaction failed: request changed under the scan; nothing was sent")
    _assign(node, path[-1], new)


def _child(node: Any, key: str | int) -> Any:
    if isinstance(node, dict) and isinstance(key, str) and key in node:
        return node[key]
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    raise RedactionError("redaction failed: segment path not in request; nothing was sent")


def _assign(node: Any, key: str | int, value: str) -> None:
    if isinstance(node, dict) and isinstance(key, str):
        node[key] = value
        return
    if isinstance(node, list) and isinstance(key, int):
        node[key] = value
        return
    raise RedactionError("redaction failed: segment path not in request; nothing was sent")


def mask_request(
    request: dict[str, Any], segments: Sequence[Segment], decision: Decision
) -> tuple[dict[str, Any], Restorer]:
    """A deep copy of ``request`` with the decision's masks applied, and its restorer."""
    raw: dict[int, list[_Span]] = {}
    for t in decision.masks:
        if not 0 <= t.segment < len(segments):
            raise RedactionError("redaction failed: mask names no segment; nothing was sent")
        if not segments[t.segment].maskable:
            raise RedactionError("redaction failed: mask on a verbatim field; nothing was sent")
        if not 0 <= t.start < t.end <= len(segments[t.segment].text):
            raise RedactionError("redaction failed: mask outside its segment; nothing was sent")
        raw.setdefault(t.segment, []).append(_Span(t.start, t.end, t.type))

    json_segs = {i for i in range(len(segments)) if _is_json_segment(segments[i])}
    planned: dict[int, list[_Span]] = {}
    for i in sorted(raw):
        text = segments[i].text
        merged = _merge(raw[i])
        if i in json_segs:
            planned[i] = _json_spans(text, merged)
        else:
            planned[i] = [_Span(s.start, s.end, s.type, text[s.start : s.end]) for s in merged]

    # Every value masked somewhere is masked everywhere it appears verbatim.
    values = {sp.value: sp.type for i in sorted(planned) for sp in planned[i] if sp.value}
    sweepers = {flag: _sweeper(values, flag) for flag in (False, True)} if values else {}
    for i, seg in enumerate(segments):
        sweeper = sweepers.get(i in json_segs)
        extra = _occurrences(sweeper, seg.text) if sweeper is not None else []
        if not extra:
            continue
        if not seg.maskable:
            # The scan's own sweep confines such a request before it gets here.
            raise RedactionError("redaction failed: masked value in a verbatim field")
        spans = _merge([*(_Span(s.start, s.end, s.type) for s in planned.get(i, [])), *extra])
        text = seg.text
        planned[i] = (
            _json_spans(text, spans)
            if i in json_segs
            else [_Span(s.start, s.end, s.type, text[s.start : s.end]) for s in spans]
        )

    reserved = {m.group() for seg in segments for m in _PLACEHOLDER.finditer(seg.text)}
    alloc = _Allocator(reserved)
    out = copy.deepcopy(request)
    for i in sorted(planned):
        seg = segments[i]
        pieces: list[str] = []
        pos = 0
        for sp in planned[i]:
            value = sp.value or _json_value(seg.text, sp)
            ph = alloc.get(value, sp.type)
            pieces.append(seg.text[pos : sp.start])
            if seg.path[-1] in _IDENTIFIER_FIELDS:
                ph = ph[1:-1]  # e.g. a message `name` must match [A-Za-z0-9_-]{1,64}
            pieces.append(f'"{ph}"' if sp.quote else ph)
            pos = sp.end
        pieces.append(seg.text[pos:])
        masked = "".join(pieces)
        if i in json_segs:
            try:
                json.loads(masked)
            except ValueError as exc:
                raise RedactionError(
                    "redaction failed: masked tool arguments are not valid JSON; nothing was sent"
                ) from exc
        _set_path(out, seg.path, seg.text, masked)
    mapping = {ph: value for value, ph in alloc.by_value.items()}
    return out, Restorer(mapping)


def _json_escape(value: str, ascii_only: bool) -> str:
    return json.dumps(value, ensure_ascii=ascii_only)[1:-1]


def _json_value(text: str, sp: _Span) -> str:
    """The decoded value of a widened JSON piece (spans merged after a partial overlap)."""
    piece = text[sp.start : sp.end]
    return piece if sp.quote else str(json.loads(f'"{piece}"'))
