"""The scan-result cache never changes what a scan finds: only how long it takes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridgate.config import ScannerConfig
from hybridgate.scan import (
    Scanner,
    Segment,
    build_scanner,
    extract_segments,
    scan_request,
)
from hybridgate.scan.cache import (
    CachedScanner,
    ScanCache,
    cached_scanner,
    estimate_bytes,
    scanner_fingerprint,
)
from scan.conftest import KEY, OTHER_TERMS, TERMS, FlakyRecognizer, wrap

#: Pieces a conversation is made of: sensitive values, look-alikes, and filler,
#: some of which only become findings when joined with a neighbour.
PIECES = [
    "card 4111 1111 1111 1111",
    "4111 1111",
    " 1111 1111",
    "mail alice@example.com please",
    "alice@exam",
    "ple.com",
    "ssn 536-22-1234",
    "Project Falcon ships Friday",
    "Nightjar launch plan",
    "bluebird",
    "AKIAIOSFODNN7EXAMPLE",
    "password: hunter2-xyz",
    "the weather is nice today",
    "def f(x):\n    return x + 1\n",
    "４１１１ １１１１ １１１１ １１１１",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "",
    "ok",
]

segment_texts = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.lists(st.sampled_from(PIECES), min_size=2, max_size=3).map(" ".join),
        st.text(max_size=40),
    ),
    min_size=1,
    max_size=8,
)


def _segments(texts: Iterable[str]) -> list[Segment]:
    body = {"messages": [{"role": "user", "content": t} for t in texts]}
    segments, unscannable = extract_segments(body)
    assert not unscannable
    return segments


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(turns=st.lists(segment_texts, min_size=1, max_size=4), max_entries=st.integers(1, 12))
def test_cached_scan_equals_uncached_across_turns_and_evictions(
    plain: Scanner, plain_other: Scanner, turns: list[list[str]], max_entries: int
) -> None:
    """A growing conversation, two scanners with different terms sharing one small store."""
    cache = ScanCache(KEY, max_entries=max_entries)
    cached = wrap(plain, TERMS, cache)
    cached_other = wrap(plain_other, OTHER_TERMS, cache)
    history: list[str] = []
    for turn in turns:
        history.extend(turn)
        segs = _segments(history)
        for fresh, warm in ((plain, cached), (plain_other, cached_other)):
            assert scan_request(warm, segs, []) == scan_request(fresh, segs, [])
        assert len(cache) <= max_entries


@settings(max_examples=40, deadline=None)
@given(texts=st.lists(st.sampled_from(PIECES) | st.text(max_size=30), min_size=1, max_size=12))
def test_analysis_hit_is_identical_to_a_fresh_scan(plain: Scanner, texts: list[str]) -> None:
    cache = ScanCache(KEY, max_entries=3)
    cached = wrap(plain, TERMS, cache)
    for t in texts + texts:
        assert cached.analyze(t) == plain.analyze(t)


def test_history_is_served_from_the_cache(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    history = ["system: " + "be helpful. " * 200, "card 4111 1111 1111 1111"]
    first = scan_request(cached, _segments(history), [])
    misses = cache.stats.misses
    history.append("and my mail is bob@example.org")
    second = scan_request(cached, _segments(history), [])
    assert cache.stats.hits > 0
    assert cache.stats.misses - misses < misses  # only the new turn and its seams are scanned
    assert {f.type for s in first.segments for f in s.findings} <= {
        f.type for s in second.segments for f in s.findings
    }
    assert second == scan_request(plain, _segments(history), [])


def test_same_text_in_another_position_maps_to_its_own_segment(plain: Scanner) -> None:
    cached = wrap(plain, TERMS, ScanCache(KEY))
    text = "card 4111 1111 1111 1111"
    first = scan_request(cached, _segments([text]), [])
    second = scan_request(cached, _segments(["hello there", "x", text]), [])
    (hit,) = first.segments
    segs = _segments(["hello there", "x", text])
    where = [s for s in second.segments if segs[s.segment].text == text]
    assert [(f.start, f.end) for f in where[0].findings] == [(f.start, f.end) for f in hit.findings]
    assert segs[where[0].segment].text[hit.findings[0].start : hit.findings[0].end] == text[5:]


def test_config_identity_is_in_the_key(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("Falcon\n")
    cfg = ScannerConfig(terms_file=str(terms))
    before = scanner_fingerprint(cfg)
    terms.write_text("Falcon\nNightjar\n")
    assert scanner_fingerprint(cfg) != before  # same path, new contents
    assert scanner_fingerprint(TERMS) != scanner_fingerprint(OTHER_TERMS)
    assert scanner_fingerprint(TERMS) != scanner_fingerprint(ScannerConfig(disabled=["email"]))
    assert scanner_fingerprint(TERMS, ["a"]) != scanner_fingerprint(TERMS, ["b"])
    cache = ScanCache(KEY)
    assert cache.digest(b"a", "x") != cache.digest(b"b", "x")
    assert cache.digest(b"a", "x") != ScanCache(b"j" * 32).digest(b"a", "x")


def test_a_rebuilt_scanner_with_new_terms_never_reads_old_entries(tmp_path: Path) -> None:
    """The terms file is edited and the scanner rebuilt; the store is shared."""
    terms = tmp_path / "terms.txt"
    terms.write_text("Falcon\n")
    cfg = ScannerConfig(terms_file=str(terms))
    cache = ScanCache(KEY)
    old = wrap(build_scanner(cfg), cfg, cache)
    text = "the Nightjar launch"
    assert old.scan(text).findings == ()
    terms.write_text("Falcon\nNightjar\n")
    new = wrap(build_scanner(cfg), cfg, cache)
    found = new.scan(text)
    assert found.findings and found == build_scanner(cfg).scan(text)
    assert {f.data_class.value for f in found.findings} == {"org_confidential"}


def test_incomplete_results_are_not_stored(flaky: FlakyRecognizer) -> None:
    plugin = flaky
    s = build_scanner(ScannerConfig(), plugins=[plugin])
    cache = ScanCache(KEY)
    cached = wrap(s, ScannerConfig(), cache)
    assert not cached.scan("hello").complete
    assert len(cache) == 0 and cache.stats.skipped == 1
    assert cached.scan("hello").complete  # scanned again, not served the unknown result
    assert cached.scan("hello").complete and plugin.calls == 2 and cache.stats.hits == 1


def test_bounds_by_entries_and_bytes(plain: Scanner) -> None:
    texts = [f"message {i} " + "lorem ipsum " * 50 for i in range(40)]
    per = estimate_bytes(plain.analyze(texts[0]))
    cache = ScanCache(KEY, max_entries=100, max_bytes=per * 10)
    cached = wrap(plain, TERMS, cache)
    for t in texts:
        cached.analyze(t)
        assert cache.bytes_held <= cache.max_bytes
    assert 5 <= len(cache) <= 11 and cache.stats.evictions > 0
    big = "x" * (per * 10)
    cached.analyze(big)  # larger than a quarter of the bound: scanned, not stored
    assert cache.stats.skipped == 1
    by_count = ScanCache(KEY, max_entries=4)
    counted = wrap(plain, TERMS, by_count)
    for t in texts:
        counted.analyze(t)
    assert len(by_count) == 4
    # the most recently used entries stay
    assert counted.analyze(texts[-1]) == plain.analyze(texts[-1]) and by_count.stats.hits == 1


def test_gateway_scanner_is_cached_unless_turned_off(plain: Scanner) -> None:
    on = cached_scanner(plain, TERMS, b"s" * 32)
    assert isinstance(on, CachedScanner) and on.cache is not None and on.cache.enabled
    off = cached_scanner(plain, ScannerConfig(cache_max_entries=0), b"s" * 32)
    assert off is plain
    with pytest.raises(ValueError):
        ScanCache(b"short")


def test_a_text_cached_as_clean_still_gets_values_found_elsewhere(plain: Scanner) -> None:
    """The sweep runs on every request: a cached clean text is re-read for new values.

    A bare nine-digit number is no SSN on its own (it needs a label), so the
    first request is clean and its text is cached; the second request labels
    the same number elsewhere, and the cached text must be masked too.
    """
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    bare = "please call back on 536221234 today"
    first = scan_request(cached, _segments([bare]), [])
    assert not first.data_classes
    segs = _segments([bare, "my ssn is 536-22-1234"])
    second = scan_request(cached, segs, [])
    assert cache.stats.hits >= 1
    assert second == scan_request(plain, segs, [])
    bare_index = next(i for i, s in enumerate(segs) if s.text == bare)
    spans = [
        bare[f.start : f.end]
        for sf in second.segments
        if sf.segment == bare_index
        for f in sf.findings
    ]
    assert spans == ["536221234"]
