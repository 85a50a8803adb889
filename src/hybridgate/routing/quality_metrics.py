"""RouteLLM's router metrics: PGR curve, APGR and CPT(x%), computed by sweeping thresholds.

Definitions (Ong et al., "RouteLLM", 2024):

* For a threshold, the router sends prompts scoring at or above it to the strong model.
  ``share`` is the fraction sent to strong and ``acc`` the accuracy of the mix.
* ``PGR(share) = (acc - weak_acc) / (strong_acc - weak_acc)``: performance gap recovered.
* ``APGR`` = area under PGR over share 0..1 (trapezoids). RouteLLM samples 10 quantile
  thresholds; we sweep *every* distinct score, which is the same integral without the
  discretization error. Prompts with equal scores move together, so a constant router
  is the straight line from weak to strong (APGR 0.5), the same as a random one in
  expectation.
* ``CPT(x)`` = the smallest share of strong calls at which PGR reaches ``x`` (first
  crossing on the piecewise-linear curve).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Curve:
    """Accuracy of the routed mix as the threshold sweeps from "all weak" to "all strong"."""

    share: FloatArray  # increasing, from 0.0 to 1.0
    accuracy: FloatArray
    weak_accuracy: float
    strong_accuracy: float

    @property
    def pgr(self) -> FloatArray:
        gap = self.strong_accuracy - self.weak_accuracy
        if gap == 0:
            return np.full_like(self.accuracy, np.nan)
        out: FloatArray = (self.accuracy - self.weak_accuracy) / gap
        return out


def _as_float(values: npt.ArrayLike) -> FloatArray:
    return np.asarray(values, dtype=np.float64).reshape(-1)


def sweep(scores: npt.ArrayLike, weak: npt.ArrayLike, strong: npt.ArrayLike) -> Curve:
    """The curve over all thresholds; ``weak``/``strong`` are per-prompt correctness (0/1)."""
    s, w, g = _as_float(scores), _as_float(weak), _as_float(strong)
    n = len(s)
    if n == 0 or len(w) != n or len(g) != n:
        raise ValueError("scores, weak and strong must be non-empty and of equal length")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores must be finite")
    order = np.argsort(-s, kind="stable")
    sorted_scores = s[order]
    gain = np.concatenate([[0.0], np.cumsum((g - w)[order])])
    # Cut points: before the first prompt, at every change of score, after the last.
    cuts = np.concatenate([[0], np.nonzero(np.diff(sorted_scores))[0] + 1, [n]])
    share = cuts / n
    accuracy = (w.sum() + gain[cuts]) / n
    return Curve(share, accuracy, float(w.mean()), float(g.mean()))


def apgr(curve: Curve) -> float:
    """Area under PGR over share 0..1; NaN when weak and strong are equally accurate."""
    return float(np.trapezoid(curve.pgr, curve.share))


def cpt(curve: Curve, target: float) -> float:
    """Smallest strong-call share reaching PGR ``target``; NaN if the curve never does."""
    pgr = curve.pgr
    if np.isnan(pgr).any():
        return float("nan")
    hits = np.nonzero(pgr >= target)[0]
    if len(hits) == 0:
        return float("nan")
    k = int(hits[0])
    if k == 0:
        return float(curve.share[0])
    x0, x1, y0, y1 = curve.share[k - 1], curve.share[k], pgr[k - 1], pgr[k]
    return float(x0 + (target - y0) * (x1 - x0) / (y1 - y0))


@dataclass(frozen=True, slots=True)
class RouterMetrics:
    n: int
    weak_accuracy: float
    strong_accuracy: float
    apgr: float
    cpt50: float
    cpt80: float


def summarize(curve: Curve, n: int) -> RouterMetrics:
    return RouterMetrics(
        n=n,
        weak_accuracy=curve.weak_accuracy,
        strong_accuracy=curve.strong_accuracy,
        apgr=apgr(curve),
        cpt50=cpt(curve, 0.5),
        cpt80=cpt(curve, 0.8),
    )
