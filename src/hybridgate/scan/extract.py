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

import bisect
import itertools
import re
from collections.abc import Callable, Iterable, Sequence
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


#: Nesting walked by recursion (fast); deeper subtrees are walked with an explicit stack.
_RECURSE_DEPTH = 48


def extract_segments(
    request: Any, *, recurse_depth: int = _RECURSE_DEPTH
) -> tuple[list[Segment], list[str]]:
    """Every string, key and number worth scanning with its JSON path, plus unscannable paths.

    Works for Chat Completions and embeddings bodies and, for anything it
    does not recognise, scans everything it contains. Ordinary nesting is
    walked by recursion (a third faster); past ``recurse_depth`` levels the
    walk continues with an explicit stack, so hostile nesting cannot exhaust
    the interpreter stack. Both visit in the same order: an object's keys,
    then each child's subtree in turn.
    """
    segments: list[Segment] = []
    unscannable: list[str] = []
    _Walk(segments, unscannable, recurse_depth).node((), request, False, 0)
    return segments, unscannable


class _Walk:
    __slots__ = ("limit", "segments", "unscannable")

    def __init__(self, segments: list[Segment], unscannable: list[str], limit: int) -> None:
        self.segments = segments
        self.unscannable = unscannable
        self.limit = limit

    def node(self, path: Path, node: Any, in_binary_part: bool, depth: int) -> None:
        """One node; containers recurse until ``limit``, then go to :meth:`stack`."""
        t = type(node)
        if t is str:
            self.string(path, node, in_binary_part)
        elif t is dict:
            if depth >= self.limit:
                self.stack(path, node, in_binary_part)
                return
            binary = self.dict_binary(path, node, in_binary_part)
            children = self.keys(path, node)
            for key, value in children:
                self.node((*path, key), value, binary, depth + 1)
        elif t is list or t is tuple:
            if depth >= self.limit:
                self.stack(path, node, in_binary_part)
                return
            if self.token_ids(path, node):
                return
            for i, v in enumerate(node):
                self.node((*path, i), v, in_binary_part, depth + 1)
        else:
            self.leaf(path, node)

    def string(self, path: Path, node: str, in_binary_part: bool) -> None:
        if in_binary_part and (node.startswith("data:") or path[-1] in _PAYLOAD_KEYS):
            return
        last = path[-1] if path else None
        if isinstance(last, str) and last in STRUCTURAL_KEYS:
            self.segments.append(Segment(path, node, "verbatim"))
        else:
            self.segments.append(Segment(path, node, "value", _context(path)))

    def dict_binary(self, path: Path, node: dict[Any, Any], in_binary_part: bool) -> bool:
        part_type = node.get("type")
        if isinstance(part_type, str) and part_type in UNSCANNABLE_PARTS:
            self.unscannable.append(path_str(path))
            return True
        return in_binary_part

    def keys(self, path: Path, node: dict[Any, Any]) -> list[tuple[str, Any]]:
        """Every key as a segment (before any child's subtree), and the children to visit."""
        children: list[tuple[str, Any]] = []
        append = self.segments.append
        for key, value in node.items():
            if not isinstance(key, str):
                self.unscannable.append(path_str(path) + ".{key}")
                continue
            append(Segment((*path, key), key, "key"))
            children.append((key, value))
        return children

    def token_ids(self, path: Path, node: list[Any] | tuple[Any, ...]) -> bool:
        if (
            node
            and path
            and path[-1] in ("input", "prompt")
            and all(isinstance(x, int) and not isinstance(x, bool) for x in node)
        ):
            self.unscannable.append(path_str(path))  # token ids: text we cannot read
            return True
        return False

    def leaf(self, path: Path, node: Any) -> None:
        if node is None or isinstance(node, bool):
            return
        if isinstance(node, str):  # a str subclass
            self.string(path, node, False)
        elif isinstance(node, int | float):
            text = _number_text(node)
            if text is None:
                self.unscannable.append(path_str(path))
            else:
                self.segments.append(Segment(path, text, "number", _context(path)))
        else:
            self.unscannable.append(path_str(path))

    def stack(self, path: Path, root: Any, in_binary_part: bool) -> None:
        """The same walk with an explicit stack: any depth, constant interpreter stack."""
        stack: list[tuple[Path, Any, bool]] = [(path, root, in_binary_part)]
        while stack:
            path, node, binary = stack.pop()
            if isinstance(node, str):
                self.string(path, node, binary)
            elif isinstance(node, dict):
                binary = self.dict_binary(path, node, binary)
                children = self.keys(path, node)
                stack.extend(((*path, k), v, binary) for k, v in reversed(children))
            elif isinstance(node, list | tuple):
                if not self.token_ids(path, node):
                    stack.extend(reversed([((*path, i), v, binary) for i, v in enumerate(node)]))
            else:
                self.leaf(path, node)


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


def scan_request(
    scanner: Scanner,
    segments: Sequence[Segment],
    unscannable: Sequence[str],
    *,
    reference: bool = False,
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
    ``reference=True`` runs the plain, slower sweep the fast one is tested against.
    """
    memo: dict[str, Analysis] = {}
    analyze = scanner.analyze
    errors: list[str] = []
    complete = not unscannable
    per_seg: list[list[Finding]] = [[] for _ in segments]
    views: list[tuple[Analysis, int]] = []
    values: dict[str, tuple[str, DataClass]] = {}

    for i, seg in enumerate(segments):
        # The same string (``user``, ``text``, a repeated key) is scanned once per request.
        text = f"{seg.context}: {seg.text}" if seg.context else seg.text
        a = memo.get(text)
        if a is None:
            a = memo[text] = analyze(text)
        skip = len(text) - len(seg.text)
        views.append((a, skip))
        res = a.result
        if not res.complete:
            complete = False
            errors.extend(f"{where(seg)}: {e}" for e in res.errors)
        if res.findings:
            per_seg[i].extend(_shift(res.findings, skip, len(seg.text)))
            for f in a.norm_findings:
                if f.end > skip:
                    _remember(values, a.view.text[max(f.start, skip) : f.end], f)

    joinable = [i for i, s in enumerate(segments) if s.kind == "value" and s.text]
    for prev, nxt in itertools.pairwise(joinable):
        tail = segments[prev].text[-JOIN_WINDOW:]
        head = segments[nxt].text[:JOIN_WINDOW]
        base = len(segments[prev].text) - len(tail)
        # With whitespace at the seam, joining with a space reads the same.
        glues = ("",) if tail[-1].isspace() or head[0].isspace() else ("", " ")
        for glue in glues:
            joined = tail + glue + head
            a = memo.get(joined)
            if a is None:
                a = memo[joined] = analyze(joined)
            if not a.result.findings:
                continue
            cut = len(tail) + len(glue)
            for f, nf in zip(a.result.findings, _norm_pairs(a), strict=False):
                if not (f.start < len(tail) and f.end > cut):
                    continue
                if _complete_alone(
                    per_seg[prev], per_seg[nxt], f, base, cut, prev_len=len(segments[prev].text)
                ):
                    continue
                per_seg[prev].append(_at(f, base + f.start, base + len(tail)))
                per_seg[nxt].append(_at(f, 0, f.end - cut))
                if nf is not None:
                    _remember(values, a.view.text[nf.start : nf.end], f)

    if values:
        (_sweep_reference if reference else _sweep)(segments, views, per_seg, values)

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


def _complete_alone(
    left: Sequence[Finding],
    right: Sequence[Finding],
    f: Finding,
    base: int,
    cut: int,
    *,
    prev_len: int,
) -> bool:
    """Whether a seam finding only extends a value one side already holds whole.

    ``alice@example.com`` ending one message and ``Thanks`` starting the next
    read as one longer address when joined; the address is found (and masked)
    in its own segment, and the next message's first word is not part of it.
    A value split across the seam is found by neither side alone, so it still counts.
    """
    for g in left:
        if g.type == f.type and g.end == prev_len and g.start <= base + f.start:
            return True
    return any(g.type == f.type and g.start == 0 and g.end >= f.end - cut for g in right)


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
    digits = _NOT_DIGIT.sub("", key) if key.isascii() else "".join(c for c in key if c.isdigit())
    if len(digits) >= 9 and len(digits) >= 0.6 * len(key):  # the number however it is grouped
        values.setdefault(digits, (f.type, f.data_class))


def _sweep_automaton(values: dict[str, tuple[str, DataClass]]) -> Any:
    automaton = ahocorasick.Automaton()
    for value, (type_, cls) in values.items():
        automaton.add_word(value, (len(value), type_, cls))
    automaton.make_automaton()
    return automaton


def _bounded_ok(text: str, s: int, e: int, length: int) -> bool:
    """Short values count only as whole words (``1234`` inside ``order 12345`` does not)."""
    return length >= _SWEEP_BOUNDED_BELOW or (
        (s == 0 or not text[s - 1].isalnum()) and (e == len(text) or not text[e].isalnum())
    )


_Hit = tuple[int, int, str, DataClass]


def _sweep(
    segments: Sequence[Segment],
    views: list[tuple[Analysis, int]],
    per_seg: list[list[Finding]],
    values: dict[str, tuple[str, DataClass]],
) -> None:
    """Every known value through every segment: one automaton pass over all texts.

    Each distinct text is read once (a request repeats ``user``, keys and
    whole messages), all of them joined by NUL into one string so the
    automaton runs once in C; a hit that spans two texts is discarded, so the
    result is exactly :func:`_sweep_reference` (one pass per segment). The
    digit view (every digit run as its bare digits) is built only when some
    value is all digits, and is kept with the text's analysis, so a cached
    text never rebuilds it.
    """
    search = _ValueSearch(values)
    slot_of: dict[int, int] = {}
    slots: list[Analysis] = []
    for a, _ in views:
        if id(a) not in slot_of:
            slot_of[id(a)] = len(slots)
            slots.append(a)
    hits: dict[int, list[_Hit]] = {}
    texts = [a.lower for a in slots]
    for k, s, e, (length, type_, cls) in _joined_hits(search.all, texts):
        if _bounded_ok(texts[k], s, e, length):
            hits.setdefault(k, []).append((s, e, type_, cls))
    digit_values = {v: t for v, t in values.items() if _DIGITS_ONLY.fullmatch(v)}
    if digit_values:
        digit_views = [_cached_digit_view(a) for a in slots]
        digit_hits = _joined_hits(_ValueSearch(digit_values).all, digit_views)
        for k, ds, de, (_, type_, cls) in digit_hits:
            pos = _digit_positions(slots[k])
            hits.setdefault(k, []).append((pos[ds], pos[de - 1] + 1, type_, cls))
    if not hits:
        return
    for i, (a, offset) in enumerate(views):
        found = hits.get(slot_of[id(a)])
        if found:
            _add_hits(per_seg[i], a, offset, found)


#: Up to this many values, each is looked for with ``str.find`` (memchr speed) rather
#: than one automaton pass (pyahocorasick reads 15-40 ns a character).
_FIND_VALUES = 24


class _ValueSearch:
    """Every occurrence of every value (overlapping ones too) as ``(last index, payload)``."""

    def __init__(self, values: dict[str, tuple[str, DataClass]]) -> None:
        self.values = values

    def all(self, text: str) -> Iterable[tuple[int, tuple[int, str, DataClass]]]:
        if len(self.values) > _FIND_VALUES:
            return _sweep_automaton(self.values).iter(text)  # type: ignore[no-any-return]
        out = []
        for value, (type_, cls) in self.values.items():
            payload = (len(value), type_, cls)
            i = text.find(value)
            while i != -1:
                out.append((i + len(value) - 1, payload))
                i = text.find(value, i + 1)
        return out


def _joined_hits(
    search: Callable[[str], Iterable[tuple[int, Any]]], texts: list[str]
) -> list[tuple[int, int, int, Any]]:
    """(text index, start, end, value) of every hit inside one of ``texts``."""
    starts: list[int] = []
    pos = 0
    for t in texts:
        starts.append(pos)
        pos += len(t) + 1
    out = []
    for last, payload in search("\0".join(texts)):
        e = last + 1
        s = e - payload[0]
        k = bisect.bisect_right(starts, s) - 1
        base = starts[k]
        if e - base <= len(texts[k]):
            out.append((k, s - base, e - base, payload))
    return out


def _add_hits(out: list[Finding], a: Analysis, offset: int, hits: list[_Hit]) -> None:
    norm = a.view
    for s, e, type_, cls in hits:
        if e <= offset:
            continue
        rs, re_ = norm.to_raw(s, e)
        rs, re_ = max(rs - offset, 0), re_ - offset
        if re_ > rs:
            out.append(Finding(type_, cls, rs, re_, 0.9, "sweep"))


def _sweep_reference(
    segments: Sequence[Segment],
    views: list[tuple[Analysis, int]],
    per_seg: list[list[Finding]],
    values: dict[str, tuple[str, DataClass]],
) -> None:
    """The sweep written plainly, one segment at a time (what :func:`_sweep` must equal)."""
    automaton = _sweep_automaton(values)
    for i in range(len(segments)):
        a, offset = views[i]
        text = lower_same_length(a.view.text)
        hits: list[_Hit] = []
        for last, (length, type_, cls) in automaton.iter(text):
            s, e = last + 1 - length, last + 1
            if _bounded_ok(text, s, e, length):
                hits.append((s, e, type_, cls))
        if any(c.isdigit() for c in text):
            digits, pos = _digit_view_reference(text)
            for last, (length, type_, cls) in automaton.iter(digits):
                ds, de = last + 1 - length, last + 1
                hits.append((pos[ds], pos[de - 1] + 1, type_, cls))
        _add_hits(per_seg[i], a, offset, hits)


_DIGIT_RUN = re.compile(r"[0-9](?:[ \-./_()+,]{0,3}[0-9])*")


_DIGITS_ONLY = re.compile(r"[0-9|]+")
_NOT_DIGIT = re.compile(r"[^0-9]+")
_ONE_DIGIT = re.compile(r"[0-9]")
_BAR = re.compile(r"\|")


def _cached_digit_view(a: Analysis) -> str:
    view = a.memo.get("digits")
    if view is None:
        view = a.memo["digits"] = _digit_view(a.lower)
    return view  # type: ignore[return-value]


def _digit_view(text: str) -> str:
    """The digits of each digit run of ``text``, each run followed by ``|``.

    A run is digits joined by short separators, so ``4 1 1 1 ...`` or
    ``4111.1111...`` reads as the number it spells, but two numbers a word
    apart never join into one. Positions are built only for a text with a
    hit (:func:`_digit_positions`).
    """
    return "".join(_NOT_DIGIT.sub("", m.group()) + "|" for m in _DIGIT_RUN.finditer(text))


def _digit_positions(a: Analysis) -> _DigitPositions:
    """Where each character of the digit view came from (kept with the text's analysis)."""
    pos = a.memo.get("digit_pos")
    if pos is None:
        pos = a.memo["digit_pos"] = _DigitPositions(a.lower, _cached_digit_view(a))
    return pos  # type: ignore[return-value]


class _DigitPositions:
    """:func:`_digit_view_reference`'s positions, built per digit run on first use.

    A hit needs the positions of one run only; a megabyte of code with a card
    number in it should not pay for a list of every digit.
    """

    def __init__(self, text: str, digits: str) -> None:
        self.text = text
        #: where each run starts in the digit view, and its span in the text
        self.spans = [m.span() for m in _DIGIT_RUN.finditer(text)]
        self.offsets = [0, *(m.end() for m in _BAR.finditer(digits))][: len(self.spans)]
        self.runs: dict[int, list[int]] = {}

    def __getitem__(self, di: int) -> int:
        k = bisect.bisect_right(self.offsets, di) - 1
        run = self.runs.get(k)
        if run is None:
            s, e = self.spans[k]
            run = [d.start() for d in _ONE_DIGIT.finditer(self.text, s, e)]
            run.append(e)
            self.runs[k] = run
        return run[di - self.offsets[k]]


def _digit_view_reference(text: str) -> tuple[str, list[int]]:
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
