"""Pure parts of the engine: LRU slots, stop-sequence text tracking, tool-call parsing."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.errors import InvalidRequest
from hybridgate.serving.slots import AdapterSlots
from hybridgate.serving.text import TextTracker, normalize_stops
from hybridgate.serving.tools import parse_tool_calls, template_messages, tool_names

ops = st.lists(
    st.tuples(st.sampled_from(["use", "done"]), st.integers(0, 7), st.integers(1, 50)),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(20, 200), st.integers(1, 5))
def test_slots_never_exceed_budget_or_evict_busy(
    steps: list[tuple[str, int, int]], budget: int, max_adapters: int
) -> None:
    slots = AdapterSlots(budget, max_adapters)
    sizes: dict[str, int] = {}
    busy: list[str] = []
    for op, i, size in steps:
        key = f"k{i}"
        size = sizes.setdefault(key, size)
        if op == "done":
            if key in busy:
                busy.remove(key)
                slots.release(key)
            continue
        if key not in slots:
            plan = slots.plan(size)
            if plan is None:
                # refusing is right only when it really cannot fit beside the busy ones
                busy_bytes = sum(sizes[k] for k in set(busy))
                assert size > budget or busy_bytes + size > budget or len(set(busy)) >= max_adapters
                continue
            for k in plan:
                assert k not in busy
                slots.remove(k)
            slots.add(key, key, size)
        slots.acquire(key)
        busy.append(key)
        assert slots.used_bytes <= budget and len(slots) <= max_adapters


def test_slots_evict_least_recently_used_first() -> None:
    s = AdapterSlots(30, 10)
    for k in ("a", "b", "c"):
        s.add(k, k, 10)
    s.acquire("a")
    s.release("a")  # a is now the most recent
    assert s.plan(10) == ["b"]
    assert s.plan(20) == ["b", "c"]
    s.acquire("b")  # busy: skipped
    assert s.plan(10) == ["c"]
    assert s.plan(31) is None


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="abc xyz", max_size=40),
    st.lists(st.text(alphabet="abcxyz ", min_size=1, max_size=4), max_size=3),
    st.lists(st.integers(0, 40), max_size=12),
)
def test_text_tracker_streams_exactly_the_cut_text(
    full: str, stops: list[str], cuts: list[int]
) -> None:
    tracker = TextTracker(normalize_stops(stops))
    streamed = ""
    for c in sorted(cuts):
        streamed += tracker.update(full[:c])
        if tracker.stopped:
            break
    streamed += tracker.update(full, final=True)
    assert full.startswith(streamed)
    for stop in tracker.stops:
        assert stop not in streamed
    if tracker.stopped:  # cut exactly where a stop sequence begins
        assert any(full[len(streamed) :].startswith(stop) for stop in tracker.stops)
    else:
        assert streamed == full


def test_text_tracker_holds_back_partial_characters() -> None:
    t = TextTracker(())
    assert t.update("caf\ufffd") == "caf"
    assert t.update("café") == "é"


def test_normalize_stops() -> None:
    assert normalize_stops("x") == ("x",)
    assert normalize_stops(["a", "", 3, "b"]) == ("a", "b")
    assert normalize_stops(None) == ()
    assert len(normalize_stops(["s"] * 50)) == 8


TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]


def test_tool_call_shapes() -> None:
    allowed = tool_names(TOOLS)
    hermes = '<tool_call>{"name": "get_weather", "arguments": {"city": "paris"}}</tool_call>'
    p = parse_tool_calls(hermes, allowed)
    assert p.content is None and len(p.tool_calls) == 1
    assert json.loads(p.tool_calls[0]["function"]["arguments"]) == {"city": "paris"}
    llama = '{"name": "get_weather", "parameters": {"city": "london"}}'
    assert parse_tool_calls(llama, allowed).tool_calls[0]["function"]["name"] == "get_weather"
    # calls to tools that were not offered, or malformed ones, stay text
    for text in (
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>',
        "<tool_call>{not json}</tool_call>",
        '{"name": "get_weather", "arguments": "not an object"}',
        "plain answer",
    ):
        p = parse_tool_calls(text, allowed)
        assert p.tool_calls == [] and p.content == text
    assert parse_tool_calls(hermes, set()).content == hermes  # no tools offered: text


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_tool_parser_never_raises_and_only_names_offered_tools(text: str) -> None:
    p = parse_tool_calls(text, {"get_weather"})
    assert all(c["function"]["name"] == "get_weather" for c in p.tool_calls)
    assert p.tool_calls or p.content == text


@pytest.mark.parametrize(
    "tools", ["x", [1], [{"type": "function"}], [{"type": "function", "function": {"name": ""}}]]
)
def test_bad_tools_are_invalid_requests(tools: object) -> None:
    with pytest.raises(InvalidRequest):
        tool_names(tools)


def test_template_messages_decode_arguments() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    out = template_messages([{"role": "assistant", "content": "", "tool_calls": [call]}])
    assert out[0]["tool_calls"][0]["function"]["arguments"] == {"a": 1}
    bad = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{"}}
    with pytest.raises(InvalidRequest):
        template_messages([{"role": "assistant", "content": "", "tool_calls": [bad]}])
