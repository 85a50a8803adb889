"""What of a request is scanned: every string, every object key, every number.

The walk is generic on purpose: unknown fields, new content-part types and
vendor extensions are scanned by default (fail closed). Each piece becomes a
:class:`~hybridgate.scan.findings.Segment` of one kind:

* ``value`` - a string the gateway may mask (prompts, tool arguments ...);
* ``verbatim`` - a string the protocol needs unchanged (``id``,
  ``tool_call_id``, ``type``, ``model`` ...): still scanned with every
  detector, but a finding there cannot be masked, so the policy confines
  or refuses the request instead;
* ``key`` - an object key (``metadata`` keys, schema property names,
  ``logit_bias`` keys): scanned, never masked;
* ``number`` - a JSON number as its decimal text: scanned, never masked.

A value under a non-protocol key is scanned with that key before it
(``password: hunter2``), so context words in keys count. Images, audio and
files cannot be scanned as text; their paths are returned separately so the
policy treats the request as unknown.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Any

import ahocorasick

from hybridgate.scan.findings import DataClass, Finding, RequestScan, Segment, SegmentFindings
from hybridgate.scan.scanner import Analysis, Scanner, resolve_overlaps
from hybridgate.scan.text import lower_same_length

#: Keys whose string values are protocol structure, passed on verbatim.
STRUCTURAL_KEYS = frozenset(
    {
        "model", "role", "type", "stream", "tool_call_id", "id", "object", "encoding_format",
        "tool_use_id", "call_id", "finish_reason", "stop_reason", "detail", "format",
        "tool_choice", "reasoning_effort", "service_tier", "response_format", "modalities",
        "voice", "status", "previous_response_id", "truncation",
    }
)  # fmt: skip
#: Keys that carry content or protocol structure, never context for their value.
_NO_CONTEXT_KEYS = STRUCTURAL_KEYS | frozenset(
    {
        "content", "text", "input", "prompt", "arguments", "instructions", "system",
        "messages", "tools", "output", "description", "parameters", "properties", "items",
        "function", "tool_calls", "name", "refusal", "input_text", "output_text", "summary",
        "data", "url", "image_url", "stop", "user", "metadata", "result", "source",
    }
)  # fmt: skip
#: Content-part types carrying binary data the text scanner cannot see into.
UNSCANNABLE_PARTS = frozenset({"image_url", "input_image", "image", "input_audio", "audio", "file"})
#: Fields of an unscannable part holding the payload itself (not scanned as text).
_PAYLOAD_KEYS = frozenset({"data", "file_data", "b64_json"})
#: Characters of each neighbour read together when values may span two strings.
JOIN_WINDOW = 96
#: Values shorter than this are looked for elsewhere only as whole words.
_SWEEP_BOUNDED_BELOW = 8
_SWEEP_MIN = 4

Path = tuple[str | int, ...]


def path_str(path: Path) -> str:
    """``("messages", 2, "content", 1)`` -> ``messages[2].content[1]``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out or "$"


def where(seg: Segment) -> str:
    """A segment's location for messages: a key's own text is never shown."""
    if seg.kind == "key":
        return path_str(seg.path[:-1]) + ".{key}" if len(seg.path) > 1 else "{key}"
    return path_str(seg.path)


def _context(path: Path) -> str:
    for p in reversed(path):
        if isinstance(p, str):
            if p in _NO_CONTEXT_KEYS or len(p) > 64:
                return ""
            return p
    return ""


def _number_text(n: int | float) -> str | None:
    try:
        if isinstance(n, int):
            return str(n)
        if n.is_integer() and abs(n) < 1e21:
            return str(int(n))
        return repr(n)
    except (ValueError, OverflowError):  # digits beyond the interpreter's conversion limit
        return None


def extract_segments(request: Any) -> tuple[list[Segment], list[str]]:
    """Every string, key and number worth scanning with its JSON path, plus unscannable paths.

    Works for Chat Completions and embeddings bodies and, for anything it
    does not recognise, scans everything it contains. The walk is iterative
    so hostile nesting cannot exhaust the interpreter stack.
    """
    segments: list[Segment] = []
    unscannable: list[str] = []
    stack: list[tuple[Path, Any, bool]] = [((), request, False)]
    while stack:
        path, node, in_binary_part = stack.pop()
        if isinstance(node, str):
            if in_binary_part and (node.startswith("data:") or path[-1] in _PAYLOAD_KEYS):
                continue
            last = path[-1] if path else None
            if isinstance(last, str) and last in STRUCTURAL_KEYS:
                segments.append(Segment(path=path, text=node, kind="verbatim"))
            else:
                segments.append(Segment(path=path, text=node, context=_context(path)))
        elif isinstance(node, dict):
            part_type = node.get("type")
            binary = in_binary_part
            if isinstance(part_type, str) and part_type in UNSCANNABLE_PARTS:
                unscannable.append(path_str(path))
                binary = True
            children: list[tuple[Path, Any, bool]] = []
            for key, value in node.items():
                if not isinstance(key, str):
                    unscannable.append(path_str(path) + ".{key}")
                    continue
                segments.append(Segment(path=(*path, key), text=key, kind="key"))
                children.append(((*path, key), value, binary))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            if (
                node
                and path
                and path[-1] in ("input", "prompt")
                and all(isinstance(x, int) and not isinstance(x, bool) for x in node)
            ):
                unscannable.append(path_str(path))  # token ids: text we cannot read
                continue
            stack.extend(reversed([((*path, i), v, in_binary_part) for i, v in enumerate(node)]))
        elif node is None or isinstance(node, bool):
            continue
        elif isinstance(node, int | float):
            text = _number_text(node)
            if text is None:
                unscannable.append(path_str(path))
            else:
                segments.append(
                    Segment(path=path, text=text, kind="number", context=_context(path))
                )
        else:
            unscannable.append(path_str(path))
    return segments, unscannable


def _shift(findings: Sequence[Finding], offset: int, limit: int) -> list[Finding]:
    """Findings over ``context + text`` as findings over ``text`` (prefix hits dropped)."""
    out = []
    for f in findings:
        s, e = max(f.start - offset, 0), min(f.end - offset, limit)
        if e <= s:
            continue
        if (s, e) != (f.start, f.end):
            f = Finding(f.type, f.data_class, s, e, f.confidence, f.detector, f.absorbed)
        out.append(f)
    return out


class _Memo:
    """Per-request memo: the same string (``user``, ``text``, a repeated key) is scanned once."""

    def __init__(self, scanner: Scanner) -> None:
        self.scanner = scanner
        self.cache: dict[str, Analysis] = {}

    def analyze(self, text: str) -> Analysis:
        a = self.cache.get(text)
        if a is None:
            a = self.cache[text] = self.scanner.analyze(text)
        return a


def scan_request(
    scanner: Scanner, segments: Sequence[Segment], unscannable: Sequence[str]
) -> RequestScan:
    """Scan every segment, the seams between neighbouring values, and sweep.

    1. each segment on its own (with its key as context);
    2. each pair of neighbouring values joined (directly and with a space),
       so a value split across two content parts or messages is found, and
       both halves are marked;
    3. every value found anywhere is looked for in every segment on the
       normalized view (case-insensitively, glued or not): once a value is
       known to be sensitive, it is sensitive wherever it appears.

    Incomplete if any scan failed or anything was unscannable.
    """
    memo = _Memo(scanner)
    errors: list[str] = []
    complete = not unscannable
    per_seg: list[list[Finding]] = [[] for _ in segments]
    views: list[tuple[Analysis, int]] = []
    values: dict[str, tuple[str, DataClass]] = {}

    for i, seg in enumerate(segments):
        prefix = f"{seg.context}: " if seg.context else ""
        a = memo.analyze(prefix + seg.text)
        views.append((a, len(prefix)))
        res = a.result
        if not res.complete:
            complete = False
            errors.extend(f"{where(seg)}: {e}" for e in res.errors)
        per_seg[i].extend(_shift(res.findings, len(prefix), len(seg.text)))
        for f in a.norm_findings:
            if f.end > len(prefix):
                _remember(values, a.view.text[max(f.start, len(prefix)) : f.end], f)

    joinable = [i for i, s in enumerate(segments) if s.kind == "value" and s.text]
    for prev, nxt in itertools.pairwise(joinable):
        tail = segments[prev].text[-JOIN_WINDOW:]
        head = segments[nxt].text[:JOIN_WINDOW]
        base = len(segments[prev].text) - len(tail)
        # With whitespace at the seam, joining with a space reads the same.
        glues = ("",) if tail[-1].isspace() or head[0].isspace() else ("", " ")
        for glue in glues:
            a = memo.analyze(tail + glue + head)
            cut = len(tail) + len(glue)
            for f, nf in zip(a.result.findings, _norm_pairs(a), strict=False):
                if not (f.start < len(tail) and f.end > cut):
                    continue
                per_seg[prev].append(_at(f, base + f.start, base + len(tail)))
                per_seg[nxt].append(_at(f, 0, f.end - cut))
                if nf is not None:
                    _remember(values, a.view.text[nf.start : nf.end], f)

    if values:
        _sweep(segments, views, per_seg, values)

    results = [
        SegmentFindings(segment=i, findings=resolve_overlaps(fs), maskable=segments[i].maskable)
        for i, fs in enumerate(per_seg)
        if fs
    ]
    return RequestScan(
        segments=tuple(results),
        complete=complete,
        errors=tuple(errors),
        unscannable=tuple(unscannable),
    )


def _norm_pairs(a: Analysis) -> list[Finding | None]:
    """The normalized finding behind each raw finding, when the mapping is one to one."""
    if len(a.norm_findings) == len(a.result.findings):
        return list(a.norm_findings)
    return [None] * len(a.result.findings)


def _at(f: Finding, start: int, end: int) -> Finding:
    return Finding(f.type, f.data_class, start, end, f.confidence, f.detector, f.absorbed)


def _remember(values: dict[str, tuple[str, DataClass]], value: str, f: Finding) -> None:
    key = lower_same_length(value.strip())
    if len(key) >= _SWEEP_MIN:
        values.setdefault(key, (f.type, f.data_class))
    digits = "".join(c for c in key if c.isdigit())
    if len(digits) >= 9 and len(digits) >= 0.6 * len(key):  # the number however it is grouped
        values.setdefault(digits, (f.type, f.data_class))


def _sweep(
    segments: Sequence[Segment],
    views: list[tuple[Analysis, int]],
    per_seg: list[list[Finding]],
    values: dict[str, tuple[str, DataClass]],
) -> None:
    automaton = ahocorasick.Automaton()
    for value, (type_, cls) in values.items():
        automaton.add_word(value, (len(value), type_, cls))
    automaton.make_automaton()
    for i in range(len(segments)):
        a, offset = views[i]
        norm = a.view
        text = lower_same_length(norm.text)
        digits_only: tuple[str, list[int]] | None = None
        hits: list[tuple[int, int, str, DataClass]] = []
        for last, (length, type_, cls) in automaton.iter(text):
            s, e = last + 1 - length, last + 1
            if length < _SWEEP_BOUNDED_BELOW and not (
                (s == 0 or not text[s - 1].isalnum()) and (e == len(text) or not text[e].isalnum())
            ):
                continue
            hits.append((s, e, type_, cls))
        if any(c.isdigit() for c in text):
            digits_only = _digit_view(text)
            for last, (length, type_, cls) in automaton.iter(digits_only[0]):
                ds, de = last + 1 - length, last + 1
                pos = digits_only[1]
                hits.append((pos[ds], pos[de - 1] + 1, type_, cls))
        for s, e, type_, cls in hits:
            if e <= offset:
                continue
            rs, re_ = norm.to_raw(s, e)
            rs, re_ = max(rs - offset, 0), re_ - offset
            if re_ > rs:
                per_seg[i].append(Finding(type_, cls, rs, re_, 0.9, "sweep"))


_DIGIT_RUN = re.compile(r"[0-9](?:[ \-./_()+,]{0,3}[0-9])*")


def _digit_view(text: str) -> tuple[str, list[int]]:
    """The digits of each digit run of ``text`` (runs kept apart), and where each came from.

    A run is digits joined by short separators, so ``4 1 1 1 ...`` or
    ``4111.1111...`` reads as the number it spells, but two numbers a word
    apart never join into one.
    """
    chars: list[str] = []
    pos: list[int] = []
    for m in _DIGIT_RUN.finditer(text):
        for k in range(m.start(), m.end()):
            if "0" <= text[k] <= "9":
                chars.append(text[k])
                pos.append(k)
        chars.append("|")
        pos.append(m.end())
    return "".join(chars), pos
