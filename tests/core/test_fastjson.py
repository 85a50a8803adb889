"""fastjson gives the standard library's answers: same values, same refusals."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate import fastjson
from hybridgate.api.common import parse_json
from hybridgate.errors import InvalidRequest
from hybridgate.jsonlimits import Survey, deeper_than, survey

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equal with types: 1 and 1.0 differ, and -0.0 is not 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return bool(a == b)


@settings(max_examples=300, deadline=None)
@given(values)
def test_round_trip_matches_the_standard_library(value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        raw = text.encode("utf-8", "surrogatepass")
        assert _same(fastjson.loads(raw), json.loads(text))
        assert _same(fastjson.loads(text), json.loads(text))
    assert _same(json.loads(fastjson.dumps(value)), value)


@pytest.mark.parametrize(
    "raw",
    [
        b"123456789012345678901234567890",  # past 64 bits: orjson would make it a float
        b'{"n": -18446744073709551617}',
        b"[1, 99999999999999999999.5]",
        b'"\\ud800"',  # a lone surrogate escape
        b'{"a": 1, "a": 2}',
        b"-0",
    ],
)
def test_edges_are_the_standard_librarys(raw: bytes) -> None:
    assert _same(fastjson.loads(raw), json.loads(raw))
    assert _same(parse_json(raw), json.loads(raw))


def test_big_integers_stay_exact_on_the_request_path() -> None:
    body = parse_json(b'{"account": 12345678901234567890123}')
    assert body["account"] == 12345678901234567890123
    assert type(body["account"]) is int


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"NaN", "NaN is not valid JSON"),
        (b"[1e400]", "out of range"),
        (b"\xff", "not valid UTF-8"),
        (b'{"a": }', "not valid JSON"),
        (b"[" * 150 + b"]" * 150, "nested more than"),
    ],
)
def test_refusals_keep_their_messages(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says):
        parse_json(raw)


def test_dumps_writes_what_orjson_cannot() -> None:
    assert fastjson.dumps({1: "a"}) == b'{"1":"a"}'  # non-string key
    assert fastjson.dumps([2**70]) == b"[1180591620717411303424]"
    lone = fastjson.dumps({"t": "x\ud800y"})  # UTF-8 cannot carry it: escaped
    assert json.loads(lone) == {"t": "x\ud800y"}
    assert fastjson.dumps({"é": "ü"}) == '{"é":"ü"}'.encode()


def _depth(v: Any) -> int:
    """Container nesting by recursion (the reference for the iterative walk)."""
    if isinstance(v, dict):
        return 1 + max((_depth(c) for c in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((_depth(c) for c in v), default=0)
    return 0


@settings(max_examples=300, deadline=None)
@given(values, st.integers(min_value=1, max_value=6))
def test_deeper_than_matches_recursion(value: Any, limit: int) -> None:
    assert deeper_than(value, limit) == (_depth(value) > limit)


@pytest.mark.parametrize("depth", [99, 100, 101, 102])
def test_deeper_than_at_the_limit(depth: int) -> None:
    nested: Any = 1
    for i in range(depth):
        nested = [nested] if i % 2 else {"k": nested}
    assert deeper_than(nested) == (depth > 100)
    assert deeper_than([0, {"a": nested}]) == (depth + 2 > 100)


@settings(max_examples=300, deadline=None)
@given(values)
def test_request_parse_matches_the_standard_library(value: Any) -> None:
    """Every integer past 64 bits, at any depth, comes back exact from ``parse_json``."""
    text = json.dumps({"v": value}, ensure_ascii=False)
    assert _same(parse_json(text.encode("utf-8", "surrogatepass")), json.loads(text))


@pytest.mark.parametrize(
    "raw",
    [
        b"-9223372036854775809",  # one below i64: orjson makes it a float
        b'[[{"a": [18446744073709551616]}]]',  # one above u64, nested
        b"[1e19]",  # a float literal this large is parsed by json too (same value)
    ],
)
def test_wide_floats_go_to_the_standard_library(raw: bytes) -> None:
    assert fastjson.try_loads(raw) is fastjson.UNSURE
    assert _same(parse_json(raw), json.loads(raw))


def test_long_digit_runs_in_strings_stay_on_the_fast_path() -> None:
    raw = b'{"ts": "1764979200123456789", "n": 9223372036854775807, "m": -9223372036854775808}'
    value = fastjson.try_loads(raw)
    assert value == json.loads(raw)
    assert type(value["n"]) is int and type(value["m"]) is int


def test_too_deep_is_said_without_the_standard_library() -> None:
    nested: Any = 0
    for _ in range(101):
        nested = [nested]
    raw = json.dumps(nested).encode()
    assert fastjson.try_loads(raw, 100) is fastjson.TOO_DEEP
    assert fastjson.try_loads(raw, 101) == nested


def test_depth_walk_does_not_stop_at_a_nan() -> None:
    """``text_deeper_than`` parses with json, which accepts NaN: the walk must go on past it."""
    nested: Any = 0
    for _ in range(101):
        nested = [nested]
    assert deeper_than([float("nan"), float("inf"), nested])
    assert survey([float("nan"), nested], wide=None) is Survey.TOO_DEEP
