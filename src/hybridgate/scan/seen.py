"""Scan only what is new, a whole message at a time.

An agent's request is its whole conversation again: the system prompt, the
tool definitions and every earlier message, each of them hundreds of short
fields (roles, ids, schema keys, descriptions). Looking each field up in the
scan cache still costs a walk, a digest and a lookup per field; here a whole
message (each element of a top-level list: ``messages[i]``, ``tools[i]``,
``input[i]``, Anthropic's ``system[i]``) is looked up with one keyed digest,
and a message seen before is grafted in as its stored scan:
:class:`~hybridgate.scan.request.Scanned`, its segments, what each holds on
its own, and what the seams inside it add.

What the request adds around stored messages is computed every time, exactly
as :func:`~hybridgate.scan.request.scan_request` does: the seams between one
message's last value and the next one's first, the sweep of every value
found anywhere through every segment (a stored message keeps its sweep
result per set of values), the policy's decision and the masking.

Why a stored message is exactly a fresh scan of it:

* Its segments (with their paths and key contexts) and their scans are a
  pure function of the message's content, its place (``("messages", 3)``:
  paths and key contexts depend on it) and whether it sits in an
  image/audio/file part, and of the scanner. The key covers all of it: a
  keyed digest under the scanner's identity of the place, that flag, and
  the message's :mod:`marshal` form, which is type-exact (``1`` and
  ``1.0``, ``"1"`` and ``1``, a key ``1`` and a key ``"1"``, NaN and
  ``None``, a list and a tuple all differ) and from which the message could
  be rebuilt. marshal takes only the interpreter's own types (no subclass,
  no enum, nothing with code of its own), so anything else, or nesting too
  deep for it, is walked and scanned as usual.
* The seams inside a message read what the seam before each added to its
  left neighbour; they were stored as computed with nothing added to the
  message's first value from outside, and are used only when that is so
  (:meth:`~hybridgate.scan.request.Pass.seams`).
* A message in which any scan failed is never stored: it is scanned again
  in place, where the failure is reported. Parts that cannot be scanned
  (images) are stored as what they are, a fact of the message's bytes, so a
  request holding them is incomplete every time.

``tests/scan/test_scan_seen.py`` compares this path with
:func:`~hybridgate.scan.extract.extract_segments` and ``scan_request`` on a
plain scanner for generated agent conversations over many turns.
"""

from __future__ import annotations

import marshal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from hybridgate.scan.cache import CachedScanner, ScanCache, estimate_bytes
from hybridgate.scan.extract import RECURSE_DEPTH, Path, Walk, extract_segments
from hybridgate.scan.findings import RequestScan, Segment
from hybridgate.scan.request import (
    CLEAN_AFTER,
    JOIN_WINDOW,
    MEMO_FINDINGS,
    MEMO_SLOTS,
    Pass,
    Scanned,
    scan_request,
    scan_run,
)
from hybridgate.scan.scanner import Analysis, Scanner
from hybridgate.scan.sweep import Values

#: marshal's format 2: no back-references, which later formats write depending on
#: an object's reference count, so the same data always gives the same bytes.
_MARSHAL_VERSION = 2
#: Bodies with fewer list elements at the top (messages, tools ...) are scanned
#: text by text: a 1 KB chat costs 0.15 ms that way and 0.20 ms message by
#: message (each new message is stored whole, as well as its texts).
MIN_MESSAGES = 8
_TEXT = itemgetter(1)  # Segment.text
#: Estimated bytes of a stored message beyond its texts' analyses.
_RUN_OVERHEAD = 500
_SEGMENT_BYTES = 200
_FINDING_BYTES = 150
#: What a message keeps after it is stored: sweep results (one per set of values,
#: see Scanned.swept) and clean seams (Scanned.clean_after).
_MEMO_ALLOWANCE = MEMO_SLOTS * (120 + MEMO_FINDINGS * _FINDING_BYTES) + CLEAN_AFTER * (
    100 + 4 * JOIN_WINDOW
)


def _eligible(scanner: Scanner, body: Any, min_messages: int) -> ScanCache | None:
    """The cache a body is looked up in message by message, or None (text by text)."""
    cache = scanner.cache if isinstance(scanner, CachedScanner) else None
    if (
        cache is None
        or not cache.enabled
        or type(body) is not dict
        or sum(len(v) for v in body.values() if type(v) is list) < min_messages
    ):
        return None
    return cache


def scan_body(
    scanner: Scanner,
    body: Any,
    *,
    min_messages: int = MIN_MESSAGES,
    looked: Looked | None = None,
) -> tuple[list[Segment], RequestScan]:
    """The request's segments and scan: what ``extract_segments`` + ``scan_request`` return.

    With a :class:`~hybridgate.scan.cache.CachedScanner` whose cache is on and
    a body of at least ``min_messages`` messages, every message seen before
    costs one keyed digest and one lookup. Fewer messages are looked up text
    by text: storing a message costs more than it saves on a short chat.
    ``looked`` (from :func:`look_up` on the same body) saves the lookups it made.
    """
    cache = _eligible(scanner, body, min_messages)
    if cache is None:
        segments, unscannable = extract_segments(body)
        return segments, scan_request(scanner, segments, unscannable)
    assert isinstance(scanner, CachedScanner)
    return _Body(scanner, cache, looked).scan(body)


@dataclass(frozen=True)
class Looked:
    """A body's messages looked up before its scan: what is new in it, and the lookups made.

    ``unseen`` is the bytes (marshal form) of the messages the cache does not hold,
    plus everything outside the messages (``model``, ``response_format`` ...), counted
    as new: what the scan will have to scan fresh, at most. The gateway uses it to
    scan a turn whose history was seen on the event loop and send a body with much
    that is new to the scan pool.
    """

    unseen: int
    #: path of each message -> (the message object, its digest, what the cache held)
    found: dict[Path, tuple[Any, bytes, object | None]]


def look_up(scanner: Scanner, body: Any, *, min_messages: int = MIN_MESSAGES) -> Looked | None:
    """Look ``body``'s messages up in the cache; None when it is not scanned message by message.

    Only digests and lookups (about 0.1 ms per 100 KB): nothing is scanned. A
    lookup made here counts in the cache's statistics once; the scan reuses it.
    """
    cache = _eligible(scanner, body, min_messages)
    if cache is None:
        return None
    assert isinstance(scanner, CachedScanner)
    scope = scanner.message_scope
    found: dict[Path, tuple[Any, bytes, object | None]] = {}
    unseen = 0
    for item in _top(Walk([], [], RECURSE_DEPTH), body):
        if item[0] is _NODE:  # scanned text by text: counted as new, whatever the cache holds
            unseen += _size(item[2])
            continue
        _, path, node, _binary, where = item
        hit = _find(cache, scope, where, node)
        if hit is None:  # walked as usual by the scan: taken as all new, whatever its size
            unseen += _UNSIZED
            continue
        digest, run, size = hit
        found[path] = (node, digest, run)
        if type(run) is not Scanned:
            unseen += size
    return Looked(unseen, found)


def _find(
    cache: ScanCache, scope: bytes, where: bytes, node: Any
) -> tuple[bytes, object | None, int] | None:
    """A message's digest, what the cache holds under it and its marshal form's size; None
    when marshal cannot write it (not plain data, or nested past marshal's depth)."""
    try:
        data = marshal.dumps(node, _MARSHAL_VERSION)
    except ValueError:
        return None
    digest = cache.digest_bytes(scope, where, data)
    return digest, cache.get(digest), len(data)


_NODE = "node"
_MESSAGE = "message"
#: What a message marshal cannot write (nested past its depth) counts as: more than any bound.
_UNSIZED = 1 << 40


def _size(value: Any) -> int:
    """The bytes a value outside the messages may bring to scan (``response_format``'s schema)."""
    t = type(value)
    if t is str:
        return len(value)
    if t is dict or t is list or t is tuple:
        try:
            return len(marshal.dumps(value, _MARSHAL_VERSION))
        except ValueError:
            return _UNSIZED
    return 0


def _top(walk: Walk, body: dict[Any, Any]) -> Iterator[tuple[Any, ...]]:
    """A body's first two levels exactly as :meth:`Walk.node` visits them.

    Yields ``(_NODE, path, value, binary, depth)`` for what is walked as usual and
    ``(_MESSAGE, path, message, binary, where)`` for each message, ``where`` being
    its place as bytes (part of its key: its paths and key contexts hang on it).
    """
    binary = walk.dict_binary((), body, False)
    for key, value in walk.keys((), body):
        path: Path = (key,)
        t = type(value)
        if t is not list and t is not tuple:
            yield _NODE, path, value, binary, 1
            continue
        if walk.token_ids(path, value):
            continue
        kb = key.encode("utf-8", "surrogatepass")
        lead = len(kb).to_bytes(4, "big") + kb + (b"\1" if binary else b"\0")
        for i, item in enumerate(value):
            ti = type(item)
            if ti is dict or ti is list or ti is tuple:
                yield _MESSAGE, (key, i), item, binary, lead + i.to_bytes(8, "big")
            else:
                yield _NODE, (key, i), item, binary, 2


class _Body:
    """One request walked like :class:`Walk` walks it, each message looked up whole."""

    def __init__(self, scanner: CachedScanner, cache: ScanCache, looked: Looked | None) -> None:
        self.scanner = scanner
        self.cache = cache
        self.found = looked.found if looked is not None else {}
        self.scope = scanner.message_scope
        self.p = Pass(scanner)
        #: segments walked but not yet scanned (scanned before the next message is grafted)
        self.pending: list[Segment] = []
        self.unscannable: list[str] = []
        self.walk = Walk(self.pending, self.unscannable, RECURSE_DEPTH)

    def scan(self, body: dict[Any, Any]) -> tuple[list[Segment], RequestScan]:
        walk = self.walk
        for kind, path, node, binary, extra in _top(walk, body):
            if kind is _NODE:
                walk.node(path, node, binary, extra)
            else:
                self.message(path, node, binary, extra)
        self.flush()
        p = self.p
        p.seams()
        return p.segments, p.finish(self.unscannable, values_key=self.values_key)

    def message(self, path: Path, node: Any, binary: bool, where: bytes) -> None:
        cache = self.cache
        pre = self.found.get(path)
        if pre is not None and pre[0] is node:
            _, digest, run = pre
        else:
            hit = _find(cache, self.scope, where, node)
            if hit is None:  # not plain data, or nested past marshal's depth: walked as usual
                self.walk.node(path, node, binary, 2)
                return
            digest, run, _ = hit
        if type(run) is not Scanned:
            segments: list[Segment] = []
            unscannable: list[str] = []
            Walk(segments, unscannable, RECURSE_DEPTH).node(path, node, binary, 2)
            run = scan_run(self.scanner, segments, unscannable, self.p.memo)
            if run is None:  # a scan failed: scanned again in place, where it is reported
                cache.note_skipped()
                self.pending.extend(segments)
                self.unscannable.extend(unscannable)
                return
            cache.put(digest, run, run_bytes(run))
        if self.pending:
            self.flush()
        self.p.graft(run)
        if run.unscannable:
            self.unscannable.extend(run.unscannable)

    def flush(self) -> None:
        if self.pending:
            self.p.add(self.pending)
            self.pending.clear()

    def values_key(self, values: Values) -> bytes:
        """A keyed digest naming the set of values exactly (repr of the sorted items)."""
        items = sorted((k, t, c.value) for k, (t, c) in values.items())
        return self.cache.digest(self.scope + b"/values", repr(items))


def run_bytes(run: Scanned) -> int:
    """Memory a stored message holds, roughly: its texts, their analyses, its findings."""
    segments = run.segments
    size = _RUN_OVERHEAD + _MEMO_ALLOWANCE + _SEGMENT_BYTES * len(segments)
    size += sum(map(sys.getsizeof, map(_TEXT, segments)))
    # each distinct analysis once; its size was worked out when it was cached as a text
    analyses = {id(a): a for a, _ in run.views}.values()
    size += sum(map(_analysis_bytes, analyses))
    findings = sum(len(fs) for _, fs in run.own) + len(run.seam_adds)
    return size + _FINDING_BYTES * findings


def _analysis_bytes(a: Analysis) -> int:
    held = a.memo.get("bytes")
    return held if isinstance(held, int) else estimate_bytes(a)
