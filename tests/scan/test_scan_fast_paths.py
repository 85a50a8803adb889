"""The scanner's fast paths find exactly what their plain reference versions find.

Each speed-up keeps the slow, obvious version beside it; these properties
compare the two on generated requests and texts: the request-wide sweep
(one joined automaton pass, digit views built once per text) against one
pass per segment, the recursive segment walk against the explicit stack, the
literal-led searches against the class-led regexes they replace, the
detector prefilter against running every detector, and overlap resolution by
bisection against comparing every pair.
"""

from __future__ import annotations

import re
from dataclasses import replace
from operator import attrgetter
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner, extract_segments, scan_request
from hybridgate.scan import sweep as sweep_module
from hybridgate.scan.contact import EmailDetector, PhoneDetector, _Budget
from hybridgate.scan.encoded import _B64_RUN, b64_runs
from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.normalize import _DECODE, _DECODER_TRIGGERS, led_matches, normalize
from hybridgate.scan.numbers import (
    CardDetector,
    IdDetector,
    IdSpec,
    Ipv4Detector,
    default_id_specs,
    left_ok,
    right_ok,
    skip_glued,
)
from hybridgate.scan.scanner import _rank, _resolve_cluster
from hybridgate.scan.terms import TermDetector, _collapse, _CollapsedMap, _orig
from hybridgate.scan.text import NEGATIVE, TextView

#: Values, their spellings elsewhere (glued, grouped differently, upper case),
#: look-alikes and filler: the sweep matters when a value found in one place
#: reappears in a form the detectors alone would not report.
PIECES = [
    "card 4111 1111 1111 1111",
    "4111111111111111",
    "ID4111.1111.1111.1111x",
    "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    "ssn 536-22-1234",
    "536221234",
    "ref 536 22 1234 ok",
    "mail alice@example.com",
    "ALICE@EXAMPLE.COM",
    "xalice@example.comy",
    "Project Falcon",
    "projectfalcon",
    "PROJECT  FALCON",
    "AKIAIOSFODNN7EXAMPLE",
    "akiaiosfodnn7example",
    "password: hunter2-xyz",
    "hunter2-xyz",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "gb82west12345698765432",
    "+44 20 7946 0958",
    "020 7946 0958",
    "１２３４ ５６７８",
    "\u00a0\u200b4111\u00ad1111",
    "the build passes, merge it",
    "1234",
    "|",
    "",
]

texts = st.one_of(
    st.sampled_from(PIECES),
    st.lists(st.sampled_from(PIECES), min_size=2, max_size=4).map(" ".join),
    st.lists(st.sampled_from(PIECES), min_size=2, max_size=3).map("".join),
    st.text(alphabet="0123456789 -.|aAz@\x00", max_size=30),
    st.text(max_size=20),
)


@pytest.fixture(scope="module")
def plain() -> Scanner:
    return build_scanner(ScannerConfig(terms=["Project Falcon", "Bluebird"]))


def _body(contents: list[str], keys: list[str]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": c} for c in contents]
    return {"messages": messages, "metadata": {k: v for k, v in zip(keys, contents, strict=False)}}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    contents=st.lists(texts, min_size=1, max_size=8),
    keys=st.lists(st.sampled_from(["password", "note", "card", "x", "4111111111111111"])),
)
def test_sweep_equals_the_reference_sweep(
    plain: Scanner, contents: list[str], keys: list[str]
) -> None:
    segments, unscannable = extract_segments(_body(contents, keys))
    slow = scan_request(plain, segments, unscannable, reference=True)
    assert scan_request(plain, segments, unscannable) == slow
    # With many values the sweep uses one automaton pass instead of str.find per value.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_module, "_FIND_VALUES", 0)
        assert scan_request(plain, segments, unscannable) == slow


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "image_url", "data", "input", "id", "content", "k"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(body=json_values, depth=st.integers(0, 4))
def test_recursive_walk_equals_the_stack_walk(body: Any, depth: int) -> None:
    assert extract_segments(body, recurse_depth=depth) == extract_segments(body, recurse_depth=0)


def test_deep_nesting_uses_the_stack_walk() -> None:
    body: Any = "innermost 4111 1111 1111 1111"
    for _ in range(5000):
        body = {"content": [body]}
    segments, _ = extract_segments(body)
    assert segments[-1].text == "innermost 4111 1111 1111 1111"
    assert len(segments[-1].path) == 10_000


_ENCODED = ["&amp;", "&#52;", "&#x34;", "&bogus", "%34", "%C3%A9", "%ZZ", "%", "\\u0034"]
_ENCODED += ["\\ud83d\\ude00", "\\n", "\\", "&", "\u00ad", "\u200b", "ﬁ", "a", "4", " ", "="]
encoded_pieces = st.lists(st.sampled_from(_ENCODED), max_size=30)


@settings(max_examples=400, deadline=None)
@given(pieces=encoded_pieces, filler=st.sampled_from(["", "z" * 40]))
def test_trigger_led_matching_equals_finditer(pieces: list[str], filler: str) -> None:
    """Sparse triggers (with filler) take the str.find path, dense ones finditer itself."""
    text = filler.join(pieces)
    specials = ["\u00ad", "\u200b", "ﬁ"]
    rx = re.compile("|".join([_DECODE.pattern, *specials]))
    expected = [m.span() for m in rx.finditer(text)]
    assert [m.span() for m in led_matches(rx, text, [*_DECODER_TRIGGERS, *specials])] == expected


@settings(max_examples=400, deadline=None)
@given(text=st.text(alphabet="aZ09+/_-= .é\n", max_size=60))
def test_base64_run_search_equals_the_class_regex(text: str) -> None:
    assert b64_runs(text) == [m.span() for m in _B64_RUN.finditer(text)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts | st.lists(texts, min_size=2, max_size=5).map("\n".join))
def test_prefilter_skips_only_detectors_that_find_nothing(plain: Scanner, text: str) -> None:
    """Skipping number detectors on digit-free text and all but terms on short words."""
    everything = replace(plain, prefilter=False)
    fast, slow = plain.analyze(text), everything.analyze(text)
    assert (fast.result, fast.norm_findings) == (slow.result, slow.norm_findings)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(contents=st.lists(texts, min_size=1, max_size=6))
def test_request_scan_equals_the_reference_scan(plain: Scanner, contents: list[str]) -> None:
    segments, unscannable = extract_segments(_body(contents, []))
    slow = scan_request(replace(plain, prefilter=False), segments, unscannable, reference=True)
    assert scan_request(plain, segments, unscannable) == slow


def _resolve_plainly(cluster: list[Finding]) -> list[Finding]:
    """Overlap resolution as first written: every finding against every kept one."""
    kept: list[Finding] = []
    extra: list[set[DataClass]] = []
    for f in sorted(cluster, key=_rank):
        hit = [i for i, k in enumerate(kept) if f.start < k.end and k.start < f.end]
        if not hit:
            kept.append(f)
            extra.append(set(f.absorbed))
        for i in hit:
            extra[i].add(f.data_class)
            extra[i].update(f.absorbed)
    out = []
    for f, classes in zip(kept, extra, strict=True):
        classes.discard(f.data_class)
        out.append(replace(f, absorbed=tuple(sorted(classes, key=lambda c: c.value))))
    return sorted(out, key=lambda f: (f.start, f.end))


findings = st.builds(
    lambda s, n, cls, conf: Finding("T" + cls.name, cls, s, s + n, conf, "d"),
    st.integers(0, 40),
    st.integers(1, 12),
    st.sampled_from(list(DataClass)),
    st.sampled_from([0.8, 0.9, 1.0]),
)


@settings(max_examples=400, deadline=None)
@given(cluster=st.lists(findings, min_size=1, max_size=25))
def test_overlap_resolution_equals_the_plain_version(cluster: list[Finding]) -> None:
    assert _resolve_cluster(cluster) == _resolve_plainly(cluster)


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(st.sampled_from(["ab", " ", "  ", "    ", "x", "-"]), max_size=40).map("".join),
    chunk=st.integers(1, 9),
)
def test_chunked_space_map_equals_the_whole_map(text: str, chunk: int) -> None:
    """Org terms map collapsed offsets back chunk by chunk; the result is the plain map's."""
    collapsed, points, removed = _collapse(text)
    back = _CollapsedMap(text, chunk)
    for p in range(len(collapsed)):
        assert back.orig(p) == _orig(p, points, removed)


digit_runs = st.lists(
    st.sampled_from(
        ["1", "4", "12", "41", "415", "4111", "555", "1234567", " ", "-", ".", "+", "("]
    ),
    max_size=40,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=digit_runs)
def test_run_quick_tests_only_skip_runs_without_findings(plain: Scanner, text: str) -> None:
    """Cards need 4 digits in a row to be read group-wise, phones 2 (else nothing is found)."""
    view = TextView(text, plain.lexicon)
    card, phone = CardDetector(), PhoneDetector(("US", "GB"))
    for run in view.runs:
        if not run.holds("0000"):
            assert card._run(view, view.text, view.shape, run) == []
        if not run.holds("00"):
            assert phone._run(view, run, _Budget(10)) == []


def _cards_plainly(view: TextView) -> list[Finding]:
    """Cards as first written: every run, every group tried as a start."""
    card, out = CardDetector(), []
    for run in view.runs:
        found = []
        if run.holds("0000"):
            found = card._run(view, view.text, view.shape, run, reference=True)
        if not found:
            found = card._spaced(view, view.text, view.shape, run, reference=True)
        out.extend(found)
    return out


def _phones_plainly(view: TextView, budget: int) -> list[Finding]:
    """Phones as first written: every separator tested, every start walked."""
    phone, left, out = PhoneDetector(("US", "GB", "DE")), _Budget(budget), []
    for run in view.runs:
        if run.holds("00"):
            out.extend(phone._run(view, run, left, reference=True))
    return out


_NUMBER_PIECES = [
    "4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "4111111111111111",
    "4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", "41 11 11 11 11 11 11 11", "555 123 4567",
    "(415) 555-2671", "415.555.2671", "+44 20 7946 0958", "020 7946 0958", "+49 30 123456",
    "1 415 555 2671", "4155552671", "14155552671", "0049 30 1234567", "NDExMSAxMTEx",
    "1", "0", "12", "415", "555", "2671", "4111", "7946", "0958", " ", "  ", "-", ".", "/",
    "+", "(", ")", "_", "x", "order ", "tel ", "card ",
]  # fmt: skip
number_texts = st.lists(st.sampled_from(_NUMBER_PIECES), max_size=24).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=number_texts, budget=st.sampled_from([0, 2, 2000]))
def test_card_and_phone_searches_equal_the_plain_walks(
    plain: Scanner, text: str, budget: int
) -> None:
    """Digit-count prechecks, card start search, phone start search and the segment
    split find exactly what walking every run, separator and group finds."""
    view = TextView(text, plain.lexicon)
    for run in view.runs:
        assert run.groups == run.groups_reference()
        g = run.groups
        assert run.seps == tuple(view.shape[g[k][1] : g[k + 1][0]] for k in range(len(g) - 1))
    assert CardDetector().detect(view) == _cards_plainly(view)
    phone = PhoneDetector(("US", "GB", "DE"))
    phone.validation_budget = budget
    assert phone.detect(view) == _phones_plainly(view, budget)


_MAIL_PIECES = [
    "alice", "@", ".", "-", "_", "+", " ", "com", "co.uk", "zoë", "例え", "テスト", "bücher",
    "xn--bcher-kva", "x@例え.テスト", "a@b.io", "a@@b.co", "a.@b.de", "_@-.",
]  # fmt: skip
mail_texts = st.lists(st.sampled_from(_MAIL_PIECES), max_size=30).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=mail_texts | st.text(alphabet="a@.-_ é", max_size=40))
def test_email_search_equals_expanding_every_at(plain: Scanner, text: str) -> None:
    """Only an ``@`` with a domain label and dot after it can start an address."""
    view = TextView(text, plain.lexicon)
    detector = EmailDetector()
    assert detector.detect(view) == detector.detect(view, reference=True)


_TERMS = ["Project Falcon", "Project Falcon Two", "Bluebird", "Kestrel  wing", "falcon"]
_TERM_PIECES = [
    "project", "falcon", "two", "bluebird", "kestrel", "wing", "projectfalcon", "x", "4",
    " ", "  ", "-", "_", "\n", ".", "PROJECT", "Falcon", "é",
]  # fmt: skip
term_texts = st.lists(st.sampled_from(_TERM_PIECES), max_size=24).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=term_texts)
@example(text="a project-falcon_ two, kestrel -_wing")
@example(text="xproject falcon projectfalcontwo falcons")
def test_terms_from_the_shared_pass_equal_their_own_automaton(text: str) -> None:
    """Terms found from their first word's hits equal the terms' own pass over the
    joined, space-collapsed text."""
    scanner = build_scanner(ScannerConfig(terms=_TERMS))
    (terms,) = [d for d in scanner.detectors if isinstance(d, TermDetector)]
    assert terms.heads is not None and terms.heads.keys() <= scanner.lexicon.heads
    view = TextView(normalize(text).text, scanner.lexicon)
    key = attrgetter("start", "end")
    fast = sorted(terms.detect(view), key=key)
    assert fast == sorted(terms.detect(view, reference=True), key=key)


def _ipv4_plainly(view: TextView) -> list[tuple[int, int]]:
    """IPv4 as first written: a glued match moves on past its alphanumeric run only."""
    out, pos, shape = [], 0, view.shape
    while (m := Ipv4Detector._re.search(shape, pos)) is not None:
        s, e = m.span()
        if not left_ok(shape, s):
            pos = skip_glued(shape, s)
        elif not right_ok(shape, e):
            pos = s + 1
        else:
            pos = e
            parts = view.text[s:e].split(".")
            if all(int(p) <= 255 and (p == "0" or p[0] != "0") for p in parts):
                out.append((s, e))
    return out


dotted = st.lists(
    st.sampled_from(["1", "25", "256", "0", "01", ".", "..", "a", "-", " "]), max_size=30
)


@settings(max_examples=400, deadline=None)
@given(text=dotted.map("".join))
def test_ipv4_chain_skip_equals_the_plain_search(plain: Scanner, text: str) -> None:
    view = TextView(text, plain.lexicon)
    assert [(f.start, f.end) for f in Ipv4Detector().detect(view)] == _ipv4_plainly(view)


def _ids_plainly(spec: IdSpec, view: TextView) -> list[tuple[int, int, float]]:
    """National ids as first written: every candidate validated, then its context read."""
    out, pos, text, shape = [], 0, view.text, view.shape
    while (m := re.compile(spec.shape).search(shape, pos)) is not None:
        s, e = m.span()
        if not left_ok(shape, s):
            pos = skip_glued(shape, s)
            continue
        if not right_ok(shape, e):
            pos = s + 1
            continue
        pos = e
        raw = text[s:e]
        compact = "".join(c for c in raw if c.isalnum())
        seps = {c for c in raw if not c.isalnum()}
        if spec.separators and len(raw) - len(compact) not in spec.separators:
            continue
        if len(seps) > 1 or not spec.validate(compact):
            continue
        cat = spec.category
        ctx = cat is not None and view.near(s, e, cat, spec.context_before, spec.context_after)
        needs = spec.require_context == "always" or (spec.require_context == "bare" and not seps)
        if needs and not ctx:
            continue
        exempt = spec.negative_label == "any" or not seps
        if not ctx and exempt and view.label_before(s) == NEGATIVE:
            continue
        out.append((s, e, spec.context_confidence if ctx else spec.confidence))
    return out


_ID_PIECES = ["536", "22", "1234", "943 476 5919", "021000021", "ssn", "nhs", "routing", "order"]
id_texts = st.lists(st.sampled_from([*_ID_PIECES, " ", "-", ".", ": "]), max_size=16).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=id_texts | id_texts.map(lambda t: t.replace("", " ")[:60]))
def test_id_detectors_equal_the_plain_versions(plain: Scanner, text: str) -> None:
    """Label-only ids stop at once without a label; context is read before the checksum."""
    view = TextView(text, plain.lexicon)
    for spec in default_id_specs():
        found = [(f.start, f.end, f.confidence) for f in IdDetector(spec).detect(view)]
        assert found == _ids_plainly(spec, view)
