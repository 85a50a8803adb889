"""Whole messages served from the scan cache find exactly what a fresh scan finds."""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import marshal
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner, seen
from hybridgate.scan.cache import ScanCache
from hybridgate.scan.request import Scanned
from scan.conftest import KEY, OTHER_TERMS, TERMS, FlakyRecognizer, fresh_scan, wrap

#: Sensitive values, their halves (found only across a seam), spellings the
#: sweep must catch elsewhere, look-alikes and filler.
PIECES = [
    "card 4111 1111 1111 1111",
    "4111 1111",
    " 1111 1111",
    "4111111111111111",
    "mail alice@example.com",
    "alice@exam",
    "ple.com",
    "alice@",
    "example.com",
    "@foo.org",
    "ALICE@EXAMPLE.COM",
    "ssn 536-22-1234",
    "536221234",
    "Project",
    " Falcon ships",
    "Project Falcon ships Friday",
    "Nightjar launch plan",
    "AKIAIOSFODNN7EXAMPLE",
    "password: hunter2-xyz",
    "hunter2-xyz",
    "IBAN GB82 WEST 1234 5698 7654 32",
    "４１１１ １１１１ １１１１ １１１１",
    "def f(x):\n    return x + 1\n",
    "the build passes, merge it",
    "Thanks",
    "ok",
    "",
]

text = st.one_of(
    st.sampled_from(PIECES),
    st.lists(st.sampled_from(PIECES), min_size=2, max_size=3).map(" ".join),
    st.lists(st.sampled_from(PIECES), min_size=2, max_size=3).map("".join),
    st.text(alphabet="0123456789 -.aAz@:", max_size=24),
)
arg_key = st.sampled_from(["password", "note", "card", "q", "ssn"])
number = st.sampled_from([4111111111111111, 536221234, 7, 1.5, -0.0, 1.0, True, None])

part = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, text),
    st.just({"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}),
)
message = st.one_of(
    st.builds(lambda t: {"role": "user", "content": t}, text),
    st.builds(lambda ps: {"role": "user", "content": ps}, st.lists(part, min_size=1, max_size=3)),
    st.builds(
        lambda t, k, a, i: {
            "role": "assistant",
            "content": t,
            "tool_calls": [
                {
                    "id": f"call_{i}",
                    "type": "function",
                    "function": {"name": "run", "arguments": json.dumps({k: a})},
                }
            ],
        },
        st.none() | text,
        arg_key,
        text,
        st.integers(0, 3),
    ),
    st.builds(
        lambda t, i: {"role": "tool", "tool_call_id": f"call_{i}", "content": t},
        text,
        st.integers(0, 3),
    ),
    st.builds(
        lambda t, k, n: {"role": "user", "content": t, "metadata": {k: n}}, text, arg_key, number
    ),
    st.builds(lambda t: ["loose", t], text),  # a list where a message is expected
)
tool = st.builds(
    lambda name, d, props: {
        "type": "function",
        "function": {
            "name": name,
            "description": d,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": "string", "description": v} for k, v in props},
            },
        },
    },
    st.sampled_from(["search", "read_file"]),
    text,
    st.lists(st.tuples(arg_key, text), max_size=2),
)
#: What a turn does to the history: append messages, edit one in place, or drop
#: the oldest non-system message (every later message moves up one place).
edit = st.one_of(
    st.tuples(st.just("append"), st.lists(message, min_size=1, max_size=3)),
    st.tuples(st.just("replace"), st.tuples(st.integers(0, 20), message)),
    st.tuples(st.just("drop"), st.none()),
)


def _apply(history: list[Any], change: tuple[str, Any]) -> None:
    kind, arg = change
    if kind == "append":
        history.extend(arg)
    elif kind == "replace" and len(history) > 1:
        i, m = arg
        history[1 + i % (len(history) - 1)] = m
    elif kind == "drop" and len(history) > 1:
        del history[1]


def scan_body(scanner: Scanner, body: Any) -> tuple[Any, Any]:
    """The message grain whatever the body's size (short bodies are what the tests make)."""
    return seen.scan_body(scanner, body, min_messages=0)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    system=text,
    tools=st.lists(tool, max_size=2),
    turns=st.lists(edit, min_size=1, max_size=5),
    user=st.none() | text,
    max_entries=st.sampled_from([3, 40, 8192]),
)
def test_cached_messages_find_exactly_what_a_fresh_scan_finds(
    plain: Scanner,
    plain_other: Scanner,
    system: str,
    tools: list[Any],
    turns: list[tuple[str, Any]],
    user: str | None,
    max_entries: int,
) -> None:
    """Agent conversations over many turns, two scanners sharing one store (some tiny)."""
    cache = ScanCache(KEY, max_entries=max_entries)
    cached = wrap(plain, TERMS, cache)
    cached_other = wrap(plain_other, OTHER_TERMS, cache)
    history: list[Any] = [{"role": "system", "content": system}]
    for change in turns:
        _apply(history, change)
        body: dict[str, Any] = {"model": "m", "messages": json.loads(json.dumps(history))}
        if tools:
            body["tools"] = tools
        if user is not None:
            body["user"] = user
        for fresh, warm in ((plain, cached), (plain_other, cached_other)):
            # the gateway looks a large body's messages up first and hands the lookups on
            looked = seen.look_up(warm, body, min_messages=0)
            assert looked is not None
            with_lookups = seen.scan_body(warm, body, min_messages=0, looked=looked)
            assert with_lookups == fresh_scan(fresh, body)
            assert scan_body(warm, body) == fresh_scan(fresh, body)  # every message seen now
        assert len(cache) <= max_entries and cache.bytes_held <= cache.max_bytes


def _conversation(*contents: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


def test_a_seen_message_is_one_lookup(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    filler = "lorem ipsum " * 10
    body = _conversation(filler + "card 4111 1111 1111 1111. " + filler, "hello", "and more")
    first = scan_body(cached, body)
    runs = [v for v, _ in cache._entries.values() if type(v) is Scanned]
    assert len(runs) == 3
    before = cache.stats.hits + cache.stats.misses
    assert scan_body(cached, body) == first == fresh_scan(plain, body)
    # one lookup per message, and one per text outside them ("model", "messages", "m");
    # the seams between the messages were clean and are remembered with them
    assert cache.stats.hits + cache.stats.misses - before == 3 + 3


def test_look_up_says_what_is_new_and_its_lookups_are_not_made_twice(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    body = _conversation("card 4111 1111 1111 1111", "hello", "and more")
    sizes = [len(marshal.dumps(m, 2)) for m in body["messages"]]
    first = seen.look_up(cached, body, min_messages=0)
    assert first is not None and first.unseen == sum(sizes) + len("m")  # "model": "m" counts
    assert seen.scan_body(cached, body, min_messages=0, looked=first) == fresh_scan(plain, body)
    body["messages"].append({"role": "user", "content": "one more"})
    looks = cache.stats.hits + cache.stats.misses
    later = seen.look_up(cached, body, min_messages=0)
    assert later is not None
    assert later.unseen == len(marshal.dumps(body["messages"][-1], 2)) + len("m")
    assert cache.stats.hits + cache.stats.misses - looks == 4  # one per message
    digests = 0
    digest_bytes = cache.digest_bytes

    def counted(*args: bytes) -> bytes:
        nonlocal digests
        digests += 1
        return digest_bytes(*args)

    cache.digest_bytes = counted  # type: ignore[method-assign,assignment]
    assert seen.scan_body(cached, body, min_messages=0, looked=later) == fresh_scan(plain, body)
    assert digests == 0  # no message was digested again
    assert seen.scan_body(cached, body, min_messages=0) == fresh_scan(plain, body)
    assert digests == 4  # without the lookups, each message is
    # what sits outside the messages counts as new, however it nests
    body["response_format"] = {"type": "json_schema", "schema": {"properties": {"a": "x" * 900}}}
    outside = seen.look_up(cached, body, min_messages=0)
    assert outside is not None and outside.unseen > later.unseen + 900
    # a body too short for the message grain, or no cache: nothing to say
    assert seen.look_up(cached, _conversation("hi")) is None
    assert seen.look_up(plain, body, min_messages=0) is None


def test_types_are_part_of_the_key(plain: Scanner) -> None:
    """Values that differ in type are never served each other's scan; other types are walked."""
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)

    class Text(str):
        pass

    class Kind(enum.Enum):
        CARD = "4111111111111111"

    variants: list[Any] = [
        {"n": 4111111111111111},
        {"n": "4111111111111111"},
        {"n": 4111111111111111.0},
        {"n": math.nan},
        {"n": None},
        {"n": True},
        {"n": 1},
        {"n": [1]},
        {"n": (1,)},
        {"type": "image_url", "data": "4111111111111111"},
        {"type": "image_url", "data": Text("4111111111111111")},
        {1: "4111111111111111"},
        {"1": "4111111111111111"},
        {"n": Kind.CARD},
        [Text("4111111111111111")],
        ["4111111111111111"],
        {"n": {"4111111111111111"}},
    ]
    for _ in range(2):
        for v in variants:
            body = {"messages": [v]}
            assert scan_body(cached, body) == fresh_scan(plain, body), v


def test_a_message_moved_to_another_place_is_scanned_there(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    msg = {"role": "user", "content": "card 4111 1111 1111 1111"}
    scan_body(cached, {"messages": [msg]})
    body = {"messages": [{"role": "user", "content": "hi"}, msg], "input": [msg]}
    segments, scan = scan_body(cached, body)
    assert (segments, scan) == fresh_scan(plain, body)
    paths = {segments[s.segment].path for s in scan.segments}
    assert paths == {("messages", 1, "content"), ("input", 0, "content")}


def test_a_value_split_into_a_stored_message_is_found(plain: Scanner) -> None:
    """The seam into a stored message adds to its first value: its inner seams are redone.

    Stored after ``hello``, the message's inner seam reads ``example.com@foo.org``
    as an address split between its parts. After ``alice@``, its first part is
    the end of ``alice@example.com``, and the inner address only extends that.
    """
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    parts = [{"type": "text", "text": "example.com"}, {"type": "text", "text": "@foo.org"}]
    stored = {"role": "user", "content": parts}
    before = {"messages": [{"role": "user", "content": "hello"}, stored]}
    assert scan_body(cached, before) == fresh_scan(plain, before)
    body = {"messages": [{"role": "user", "content": "alice@"}, stored]}
    segments, scan = scan_body(cached, body)
    assert (segments, scan) == fresh_scan(plain, body)
    assert [segments[s.segment].text for s in scan.segments] == ["alice@", "example.com"]


def test_a_seam_at_a_stored_message_is_its_own_for_each_neighbour(plain: Scanner) -> None:
    """A clean seam is remembered for that neighbour only; a split value reaches the stored side."""
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    # a finding of its own, and the first half of a card at its end
    first = {"role": "user", "content": "mail bob@example.org, the card is 4111 1111"}
    for nxt in ("hello", " 1111 1111 and that is all", "hello"):
        body = {"messages": [first, {"role": "user", "content": nxt}]}
        assert scan_body(cached, body) == fresh_scan(plain, body)
    body = {"messages": [first, {"role": "user", "content": " 1111 1111 and that is all"}]}
    segments, scan = scan_body(cached, body)
    halves = {
        segments[s.segment].text[f.start : f.end]
        for s in scan.segments
        for f in s.findings
        if f.type == "CREDIT_CARD"
    }
    assert halves == {"4111 1111", " 1111 1111"}


def test_a_message_inside_a_binary_body_is_keyed_apart(plain: Scanner) -> None:
    """The same message, its payload read as text or skipped as an image's bytes."""
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    message = {"data": "4111 1111 1111 1111"}
    for body in ({"messages": [message]}, {"type": "input_image", "messages": [message]}) * 2:
        assert scan_body(cached, body) == fresh_scan(plain, body)


def test_a_value_found_later_is_swept_through_stored_messages(plain: Scanner) -> None:
    """A bare number is clean alone; labelled in a later turn, the stored message is masked."""
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    history: list[Any] = ["please call back on 536221234 today"]
    first = scan_body(cached, _conversation(*history))
    assert not first[1].data_classes
    history.append("my ssn is 536-22-1234")
    segments, scan = scan_body(cached, _conversation(*history))
    assert (segments, scan) == fresh_scan(plain, _conversation(*history))
    spans = [
        segments[s.segment].text[f.start : f.end]
        for s in scan.segments
        if segments[s.segment].path == ("messages", 0, "content")
        for f in s.findings
    ]
    assert spans == ["536221234"]


def test_a_message_whose_scan_failed_is_not_stored(flaky: FlakyRecognizer) -> None:
    s = build_scanner(ScannerConfig(), plugins=[flaky])
    cache = ScanCache(KEY)
    cached = wrap(s, ScannerConfig(), cache)
    body = {"messages": [{"role": "user", "content": "hello"}]}
    _, first = scan_body(cached, body)
    assert not first.complete and first.errors
    assert not any(type(v) is Scanned for v, _ in cache._entries.values())
    _, second = scan_body(cached, body)
    assert second.complete  # scanned again, not served the unknown result


def test_an_image_stays_unknown_when_its_message_is_served(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}, image]}]}
    for _ in range(2):
        segments, scan = scan_body(cached, body)
        assert (segments, scan) == fresh_scan(plain, body)
        assert not scan.complete and scan.unscannable == ("messages[0].content[1]",)


def test_keys_are_macs_under_the_deployment_key() -> None:
    cache = ScanCache(KEY)
    identity, data = b"scope", b"a marshalled message"
    expected = hmac.new(KEY, len(identity).to_bytes(4, "big") + identity + data, hashlib.sha256)
    assert cache.digest_bytes(identity, data) == expected.digest()
    assert cache.digest_bytes(identity, b"a marshalled ", b"message") == expected.digest()
    assert (
        cache.digest(identity, "x")
        == hashlib.blake2b(
            len(identity).to_bytes(4, "big") + identity + b"x", key=KEY, digest_size=32
        ).digest()
    )
    long_key = b"q" * 100
    expected = hmac.new(long_key, len(identity).to_bytes(4, "big") + identity, hashlib.sha256)
    assert ScanCache(long_key).digest_bytes(identity) == expected.digest()


def test_stored_messages_respect_the_bounds(plain: Scanner) -> None:
    history = [f"message {i} " + "lorem ipsum " * 40 for i in range(30)]
    cache = ScanCache(KEY, max_entries=10_000, max_bytes=60_000)
    cached = wrap(plain, TERMS, cache)
    for n in range(1, len(history) + 1):
        body = _conversation(*history[:n])
        assert scan_body(cached, body) == fresh_scan(plain, body)
        assert cache.bytes_held <= cache.max_bytes
    assert cache.stats.evictions > 0
    by_count = ScanCache(KEY, max_entries=5)
    counted = wrap(plain, TERMS, by_count)
    scan_body(counted, _conversation(*history))
    assert len(by_count) == 5


def test_plain_scanner_and_disabled_cache_take_the_plain_path(plain: Scanner) -> None:
    body = _conversation("card 4111 1111 1111 1111")
    assert scan_body(plain, body) == fresh_scan(plain, body)
    off = wrap(plain, TERMS, ScanCache(KEY, max_entries=0))
    assert scan_body(off, body) == fresh_scan(plain, body)
    assert scan_body(off, ["a list body", "4111 1111 1111 1111"]) == fresh_scan(
        plain, ["a list body", "4111 1111 1111 1111"]
    )


def test_short_bodies_are_looked_up_text_by_text(plain: Scanner) -> None:
    cache = ScanCache(KEY)
    cached = wrap(plain, TERMS, cache)
    short = _conversation(*(["card 4111 1111 1111 1111"] * (seen.MIN_MESSAGES - 1)))
    assert seen.scan_body(cached, short) == fresh_scan(plain, short)
    assert not any(type(v) is Scanned for v, _ in cache._entries.values())
    long = _conversation(*(["card 4111 1111 1111 1111"] * seen.MIN_MESSAGES))
    assert seen.scan_body(cached, long) == fresh_scan(plain, long)
    assert sum(type(v) is Scanned for v, _ in cache._entries.values()) == seen.MIN_MESSAGES
