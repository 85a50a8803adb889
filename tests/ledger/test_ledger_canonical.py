"""The fast canonical JSON path must produce exactly what rfc8785 produces."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
import rfc8785

from hybridgate.ledger import canonical_json
from hybridgate.ledger.canonical import _plain

CHARS = ["a", "é", "\n", "\x00", "\x1f", "\x7f", "\u2028", "\ue000", "\uffff", "😀", '"', "\\"]
FLOATS = [0.0, -0.0, 1.0, 2.5, 1e-4, 9.99e-5, 1e16, 9.999999999999998e15, 1e21, 1e-7, 5e-324]
FLOATS += [1.7976931348623157e308, 0.1, 123.456, -1e15 - 0.5, 1e16 + 2.0, 12.345]


def _obj(rng: random.Random, depth: int = 0) -> Any:
    k = rng.random()
    if depth > 3 or k < 0.5:
        pick = rng.randrange(7)
        if pick == 0:
            return "".join(rng.choice(CHARS) for _ in range(rng.randint(0, 5)))
        if pick == 1:
            return rng.choice(FLOATS)
        if pick == 2:
            return math.ldexp(rng.random(), rng.randint(-40, 60)) * rng.choice([1, -1])
        if pick == 3:
            return rng.randint(-(2**53) + 1, 2**53 - 1)
        return rng.choice([None, True, False, rng.randint(-100, 100)])
    if k < 0.75:
        return [_obj(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = ("".join(rng.choice(CHARS) for _ in range(rng.randint(0, 4))) for _ in range(5))
    return {key: _obj(rng, depth + 1) for key in keys}


def test_fast_path_equals_rfc8785_on_generated_values() -> None:
    rng = random.Random(8785)
    fast = 0
    for _ in range(4000):
        obj = _obj(rng)
        assert canonical_json(obj) == rfc8785.dumps(obj), repr(obj)
        fast += _plain(obj)
    assert fast > 1000  # the fast path was actually exercised


def test_astral_keys_sort_by_utf16() -> None:
    obj = {"\ue000": 1, "😀": 2}
    assert not _plain(obj)
    assert canonical_json(obj) == rfc8785.dumps(obj)
    assert canonical_json(obj).index("😀".encode()) < canonical_json(obj).index("\ue000".encode())


@pytest.mark.parametrize(
    "bad", [{"n": 2**53}, {"x": math.inf}, {1: "a"}, {"s": "\ud800"}, {"o": object()}]
)
def test_rejected_values(bad: Any) -> None:
    with pytest.raises(ValueError):
        canonical_json(bad)
