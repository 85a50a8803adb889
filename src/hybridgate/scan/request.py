"""A request's scan: every segment, the seams between neighbouring values, the sweep.

1. each segment on its own (with its key as context);
2. each pair of neighbouring values joined (directly and with a space), so
   a value split across two content parts or messages is found, and both
   halves are marked;
3. every value found anywhere is looked for in every segment on the
   normalized view (:mod:`hybridgate.scan.sweep`): once a value is known to
   be sensitive, it is sensitive wherever it appears.

:class:`Pass` builds that scan incrementally, so a run of segments scanned
before (a whole message, :class:`Scanned`) can be grafted in as its stored
result instead of being scanned again: its own findings and the seams inside
it are pure functions of its segments, and what the request adds around it
(the seams at its edges, the sweep for values found elsewhere) is computed
every time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hybridgate.scan.extract import where
from hybridgate.scan.findings import Finding, RequestScan, Segment, SegmentFindings
from hybridgate.scan.scanner import Analysis, Scanner, resolve_overlaps
from hybridgate.scan.sweep import Value, Values, View, collect, remember, sweep, sweep_reference

#: Characters of each neighbour read together when values may span two strings.
JOIN_WINDOW = 96
#: Sets of values a stored message keeps its sweep and findings for
#: (conversations sharing a system prompt each have their own), and the most
#: findings such a result may hold (a larger one is recomputed each time: memory
#: stays bounded).
MEMO_SLOTS = 4
MEMO_FINDINGS = 8
#: Clean seams a stored message remembers (one per message that followed it).
CLEAN_AFTER = 4


def scan_request(
    scanner: Scanner,
    segments: Sequence[Segment],
    unscannable: Sequence[str],
    *,
    reference: bool = False,
) -> RequestScan:
    """Scan every segment, the seams between neighbouring values, and sweep.

    Incomplete if any scan failed or anything was unscannable.
    ``reference=True`` runs the plain, slower sweep the fast one is tested against.
    """
    p = Pass(scanner)
    p.add(segments)
    p.seams()
    return p.finish(unscannable, reference=reference)


@dataclass(frozen=True, eq=False, slots=True)
class Scanned:
    """A run of segments (one message) scanned on its own, ready to be grafted.

    ``own`` and ``seam_adds`` are in offsets local to the run; ``seam_adds``
    were computed with nothing added to the run's first value from outside,
    which :meth:`Pass.seams` checks before using them.
    """

    segments: tuple[Segment, ...]
    unscannable: tuple[str, ...]
    views: tuple[View, ...]
    #: (local index, findings of the segment on its own), for segments with any
    own: tuple[tuple[int, tuple[Finding, ...]], ...]
    #: findings the seams inside the run added, in the order they were added
    seam_adds: tuple[tuple[int, Finding], ...]
    joinable: tuple[int, ...]
    seg_values: tuple[Value, ...]
    seam_values: tuple[Value, ...]
    #: the first joinable segment's own finding count (what the seams were computed with)
    first_own: int
    #: the first value's first characters (what a seam into this run reads of it)
    head: str
    #: what :meth:`finished` computed, by set of values; deterministic, so a race
    #: between two threads only computes the same value twice
    memo: dict[bytes, Finished] = field(default_factory=dict)
    #: heads of runs that followed this one with nothing at all at the seam between
    #: (its scans complete and without findings): that seam is a pure function of
    #: this run's last value and that head
    clean_after: set[str] = field(default_factory=set)

    def settle(self, key: bytes, found: dict[int, list[Finding]]) -> Finished:
        """This run's findings given its sweep ``found`` for the values ``key`` names exactly.

        They are what :meth:`Pass.finish` resolves for each of the run's
        segments when nothing from outside reached it (no seam at the run's
        edges added to it): own, then inner seams', then the sweep's. Kept
        under ``key`` when small.
        """
        held: dict[int, list[Finding]] = {i: list(fs) for i, fs in self.own}
        for i, f in self.seam_adds:
            held.setdefault(i, []).append(f)
        for i, fs in found.items():
            held.setdefault(i, []).extend(fs)
        resolved = tuple((i, _resolved(held[i])) for i in sorted(held) if held[i])
        done = (tuple((i, tuple(fs)) for i, fs in found.items()), resolved)
        if sum(len(fs) for _, fs in done[0]) + len(resolved) <= MEMO_FINDINGS:
            if len(self.memo) >= MEMO_SLOTS:
                self.memo.clear()
            self.memo[key] = done
        return done


#: A run's sweep hits, and each segment's resolved findings (by local index).
Finished = tuple[
    tuple[tuple[int, tuple[Finding, ...]], ...], tuple[tuple[int, tuple[Finding, ...]], ...]
]


class Pass:
    """One request's scan as it is built: segments in order, then seams, then the sweep."""

    __slots__ = (
        "analyze", "complete", "ends", "errors", "grafted", "grafts", "joinable", "log",
        "loose", "memo", "per_seg", "seam_values", "seg_values", "segments", "starts",
        "stored", "touched", "views",
    )  # fmt: skip

    def __init__(self, scanner: Scanner, memo: dict[str, Analysis] | None = None) -> None:
        self.analyze = scanner.analyze
        #: the same string (``user``, ``text``, a repeated key) is scanned once per request
        self.memo: dict[str, Analysis] = {} if memo is None else memo
        self.segments: list[Segment] = []
        #: segments scanned here (not grafted), and their views
        self.loose: list[int] = []
        self.views: list[View] = []
        self.per_seg: dict[int, list[Finding]] = {}
        self.joinable: list[int] = []
        self.seg_values: list[Value] = []
        self.seam_values: list[Value] = []
        self.errors: list[str] = []
        self.complete = True
        #: seam additions in order, kept while building a :class:`Scanned`
        self.log: list[tuple[int, Finding]] | None = None
        #: joinable position of a grafted run's first value -> (first segment, run)
        self.grafts: dict[int, tuple[int, Scanned]] = {}
        self.grafted: list[tuple[int, Scanned]] = []
        #: a grafted run's first and last value (segment index) -> the run
        self.starts: dict[int, Scanned] = {}
        self.ends: dict[int, Scanned] = {}
        #: grafted runs (first segment) whose inner seams are as stored
        self.stored: set[int] = set()
        #: segments a seam computed here added to
        self.touched: set[int] = set()

    def add(self, segments: Sequence[Segment]) -> None:
        """Scan each segment on its own, with its key as context."""
        memo, analyze, per_seg = self.memo, self.analyze, self.per_seg
        base = len(self.segments)
        self.segments.extend(segments)
        for i, seg in enumerate(segments, base):
            text = f"{seg.context}: {seg.text}" if seg.context else seg.text
            a = memo.get(text)
            if a is None:
                a = memo[text] = analyze(text)
            skip = len(text) - len(seg.text)
            self.loose.append(i)
            self.views.append((a, skip))
            res = a.result
            if not res.complete:
                self.complete = False
                self.errors.extend(f"{where(seg)}: {e}" for e in res.errors)
            if res.findings:
                own = _shift(res.findings, skip, len(seg.text))
                if own:
                    per_seg[i] = own
                for f in a.norm_findings:
                    if f.end > skip:
                        remember(self.seg_values, a.view.text[max(f.start, skip) : f.end], f)
            if seg.kind == "value" and seg.text:
                self.joinable.append(i)

    def graft(self, run: Scanned) -> None:
        """Append a run scanned before: its segments, own findings and values."""
        base = len(self.segments)
        self.segments.extend(run.segments)
        for i, fs in run.own:
            self.per_seg[base + i] = list(fs)
        self.seg_values.extend(run.seg_values)
        if len(run.joinable) > 1:
            self.grafts[len(self.joinable)] = (base, run)
        else:
            self.stored.add(base)  # no inner seam
        if run.joinable:
            self.starts[base + run.joinable[0]] = run
            self.ends[base + run.joinable[-1]] = run
        self.joinable.extend([base + j for j in run.joinable])
        self.grafted.append((base, run))

    def seams(self) -> None:
        """Every pair of neighbouring values, in order; a grafted run's inner seams as stored.

        A seam reads what the seam before it added to its left value, so a
        run's stored inner seams are used only when the seam into the run
        added nothing to its first value (as when they were computed);
        otherwise they are computed here like any other.
        """
        joinable, per_seg = self.joinable, self.per_seg
        k, last = 0, len(joinable) - 1
        while k < last:
            graft = self.grafts.get(k)
            if graft is not None:
                base, run = graft
                if len(per_seg.get(joinable[k], ())) == run.first_own:
                    for i, f in run.seam_adds:
                        per_seg.setdefault(base + i, []).append(f)
                    self.seam_values.extend(run.seam_values)
                    self.stored.add(base)
                    k += len(run.joinable) - 1
                    continue
            prev, nxt = joinable[k], joinable[k + 1]
            k += 1
            left, right = self.ends.get(prev), self.starts.get(nxt)
            if left is None or right is None:
                self.seam(prev, nxt)
            elif right.head not in left.clean_after and self.seam(prev, nxt):
                if len(left.clean_after) >= CLEAN_AFTER:
                    left.clean_after.clear()
                left.clean_after.add(right.head)

    def seam(self, prev: int, nxt: int) -> bool:
        """One seam: a value split across two neighbours is found, and both halves marked.

        True when there was nothing at all at it (every scan complete, no finding).
        """
        ptext, ntext = self.segments[prev].text, self.segments[nxt].text
        tail = ptext[-JOIN_WINDOW:]
        head = ntext[:JOIN_WINDOW]
        base = len(ptext) - len(tail)
        # With whitespace at the seam, joining with a space reads the same.
        glues = ("",) if tail[-1].isspace() or head[0].isspace() else ("", " ")
        clean = True
        for glue in glues:
            joined = tail + glue + head
            a = self.memo.get(joined)
            if a is None:
                a = self.memo[joined] = self.analyze(joined)
            res = a.result
            if not res.complete:  # fail closed: an unread seam may hide a split value
                self.complete = False
                at = f"{where(self.segments[prev])}|{where(self.segments[nxt])}"
                self.errors.extend(f"{at}: {e}" for e in res.errors)
                clean = False
            if not res.findings:
                continue
            clean = False
            cut = len(tail) + len(glue)
            for f, nf in zip(res.findings, _norm_pairs(a), strict=False):
                if not (f.start < len(tail) and f.end > cut):
                    continue
                left, right = self.per_seg.get(prev, ()), self.per_seg.get(nxt, ())
                if _complete_alone(left, right, f, base, cut, prev_len=len(ptext)):
                    continue
                self._add(prev, _at(f, base + f.start, base + len(tail)))
                self._add(nxt, _at(f, 0, f.end - cut))
                if nf is not None:
                    remember(self.seam_values, a.view.text[nf.start : nf.end], f)
        return clean

    def _add(self, i: int, f: Finding) -> None:
        self.per_seg.setdefault(i, []).append(f)
        self.touched.add(i)
        if self.log is not None:
            self.log.append((i, f))

    def finish(
        self,
        unscannable: Sequence[str],
        *,
        reference: bool = False,
        values_key: Callable[[Values], bytes] | None = None,
    ) -> RequestScan:
        """Sweep every value found anywhere through every segment; resolve overlaps.

        ``values_key`` names a set of values exactly (a keyed digest of it): a
        grafted run keeps its sweep and resolved findings under it, used for its
        segments no seam computed here added to.
        """
        values = collect(self.seg_values, self.seam_values)
        per_seg, touched = self.per_seg, self.touched
        key = values_key(values) if values_key is not None and self.grafted else None
        # Everything not known yet is swept at once: the loose views, then each
        # grafted run without a result for these values (one search, not one a run).
        views = list(self.views)
        runs: list[tuple[int, Scanned, Finished | None, int]] = []
        for base, run in self.grafted:
            done = run.memo.get(key) if key is not None and base in self.stored else None
            runs.append((base, run, done, len(views)))
            if done is None and values:
                views.extend(run.views)
        found: dict[int, list[Finding]] = {}
        if values and views:
            found = (sweep_reference if reference else sweep)(views, values)
        loose = len(self.views)
        for j, fs in found.items():
            if j < loose:
                per_seg.setdefault(self.loose[j], []).extend(fs)
        final: dict[int, tuple[Finding, ...]] = {}
        for base, run, done, at in runs:
            if done is None:
                mine = {j - at: found[j] for j in range(at, at + len(run.views)) if j in found}
                if key is None or base not in self.stored:
                    for i, fs in mine.items():
                        per_seg.setdefault(base + i, []).extend(fs)
                    continue
                done = run.settle(key, mine)
            swept, resolved = done
            for i, rfs in resolved:
                if base + i not in touched:
                    final[base + i] = rfs
                    per_seg.pop(base + i, None)
            for i, sfs in swept:
                if base + i not in final:
                    per_seg.setdefault(base + i, []).extend(sfs)
        for i, held in per_seg.items():
            if held:
                final[i] = _resolved(held)
        segments = self.segments
        results = [SegmentFindings(i, final[i], segments[i].maskable) for i in sorted(final)]
        return RequestScan(
            segments=tuple(results),
            complete=self.complete and not unscannable,
            errors=tuple(self.errors),
            unscannable=tuple(unscannable),
        )


def scan_run(
    scanner: Scanner,
    segments: Sequence[Segment],
    unscannable: Sequence[str],
    memo: dict[str, Analysis],
) -> Scanned | None:
    """``segments`` (one message) scanned on their own, or None when a scan failed.

    A failed scan is not kept: the caller scans the message again as part of
    the request, so the failure is reported there, at its place.
    """
    p = Pass(scanner, memo)
    p.add(segments)
    own = tuple((i, tuple(fs)) for i, fs in sorted(p.per_seg.items()))
    p.log = []
    p.seams()
    if not p.complete:
        return None
    joinable = tuple(p.joinable)
    first = dict(own).get(joinable[0], ()) if joinable else ()
    return Scanned(
        segments=tuple(segments),
        unscannable=tuple(unscannable),
        views=tuple(p.views),
        own=own,
        seam_adds=tuple(p.log),
        joinable=joinable,
        seg_values=tuple(p.seg_values),
        seam_values=tuple(p.seam_values),
        first_own=len(first),
        head=segments[joinable[0]].text[:JOIN_WINDOW] if joinable else "",
    )


def _resolved(findings: list[Finding]) -> tuple[Finding, ...]:
    # one finding needs no resolving (resolve_overlaps returns it as it is)
    return (findings[0],) if len(findings) == 1 else resolve_overlaps(findings)


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
