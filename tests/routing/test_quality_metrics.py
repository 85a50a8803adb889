"""APGR / CPT on examples small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hybridgate.routing.quality_metrics import apgr, cpt, summarize, sweep

# Four prompts. weak right on #1,#2; strong right on #0,#1,#3 -> weak 0.5, strong 0.75.
WEAK = [0, 1, 1, 0]
STRONG = [1, 1, 0, 1]


def test_sweep_by_hand() -> None:
    # scores order the prompts 0,1,2,3; gains (strong - weak) in that order: +1, 0, -1, +1
    c = sweep([3.0, 2.0, 1.0, 0.0], WEAK, STRONG)
    assert c.share.tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert c.accuracy.tolist() == [0.5, 0.75, 0.75, 0.5, 0.75]
    assert c.pgr.tolist() == [0.0, 1.0, 1.0, 0.0, 1.0]
    # trapezoids of width 0.25: 0.125 + 0.25 + 0.125 + 0.125
    assert apgr(c) == pytest.approx(0.625)
    # PGR crosses 0.5 halfway between share 0 and 0.25, and 0.8 at 4/5 of the way
    assert cpt(c, 0.5) == pytest.approx(0.125)
    assert cpt(c, 0.8) == pytest.approx(0.2)


def test_ties_move_together() -> None:
    # oracle score: prompts 0 and 3 tie at the top, both gain +1
    c = sweep([1.0, 0.0, -1.0, 1.0], WEAK, STRONG)
    assert c.share.tolist() == [0.0, 0.5, 0.75, 1.0]
    assert c.pgr.tolist() == [0.0, 2.0, 2.0, 1.0]
    assert apgr(c) == pytest.approx(0.5 + 0.5 + 0.375)
    assert cpt(c, 0.5) == pytest.approx(0.125)


def test_constant_router_is_the_random_line() -> None:
    c = sweep(np.zeros(4), WEAK, STRONG)
    assert c.share.tolist() == [0.0, 1.0]
    assert apgr(c) == pytest.approx(0.5)
    assert cpt(c, 0.8) == pytest.approx(0.8)


def test_random_scores_average_one_half() -> None:
    rng = np.random.default_rng(7)
    weak = rng.random(2000) < 0.6
    strong = rng.random(2000) < 0.8
    values = [apgr(sweep(rng.random(2000), weak, strong)) for _ in range(20)]
    assert abs(float(np.mean(values)) - 0.5) < 0.03


def test_inverted_router_is_below_random() -> None:
    good = sweep([3.0, 2.0, 1.0, 0.0], WEAK, STRONG)
    bad = sweep([-3.0, -2.0, -1.0, 0.0], WEAK, STRONG)
    assert apgr(bad) < 0.5 < apgr(good)


def test_unreachable_and_undefined() -> None:
    c = sweep([3.0, 2.0, 1.0, 0.0], WEAK, STRONG)
    assert math.isnan(cpt(c, 2.5))
    same = sweep([1.0, 0.0], [1, 0], [0, 1])  # equal accuracy: PGR undefined
    assert math.isnan(apgr(same))
    m = summarize(same, 2)
    assert math.isnan(m.cpt50) and m.weak_accuracy == m.strong_accuracy == 0.5


def test_bad_inputs() -> None:
    with pytest.raises(ValueError):
        sweep([1.0, 2.0], [1], [0, 1])
    with pytest.raises(ValueError):
        sweep([], [], [])
    with pytest.raises(ValueError):
        sweep([float("nan"), 1.0], [1, 0], [1, 1])
