"""Training the quality router: logistic regression on hashed features, in plain numpy.

Target. For each prompt the label is ``need = strong_correct and not weak_correct``: the only
case where paying for the strong route changes the answer. Per-prompt labels are noisy (a
model gets a question right by luck), so where a file has a ``domain`` column the target is
blended with the smoothed domain rate of ``need``. The domain is used only as a *training
target*: at routing time the model must infer "what subject is this" from the text, which the
n-grams do well.

Calibration. 5-fold out-of-fold scores over the training rows give an honest picture of how
the model scores prompts it has not seen; from them come the share -> threshold and
share -> expected-PGR tables stored in the model file (see ``QualityRouter.threshold``).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from hybridgate.routing.quality import QualityModel
from hybridgate.routing.quality_data import (
    DEFAULT_HOLDOUT,
    DEFAULT_SEED,
    Dataset,
    holdout_mask,
    row_folds,
)
from hybridgate.routing.quality_features import FeatureSpec, SparseRows, featurize_many
from hybridgate.routing.quality_metrics import apgr, sweep

FloatArray = npt.NDArray[np.float64]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    """Chosen on the training split by held-out APGR (see docs/router.md)."""

    l2: float = 2e-5
    iterations: int = 150
    learning_rate: float = 0.05
    domain_blend: float = 0.5  # weight of the smoothed domain rate in the target
    domain_smoothing: float = 10.0  # pseudo-rows of the file-wide rate per domain
    oof_folds: int = 5
    calib_points: int = 201
    holdout: float = DEFAULT_HOLDOUT  # rows kept out of training entirely (0 = use all)
    seed: str = DEFAULT_SEED
    spec: FeatureSpec = field(default_factory=FeatureSpec)


def targets(data: Dataset, cfg: TrainConfig) -> FloatArray:
    """Soft labels in [0, 1]: ``need``, blended with its domain rate where domains exist."""
    need: FloatArray = data.strong * (1.0 - data.weak)
    if data.domains is None or cfg.domain_blend <= 0:
        return need
    overall = float(need.mean())
    sums: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for d, y in zip(data.domains, need, strict=True):
        sums[d] += float(y)
        counts[d] += 1
    m = cfg.domain_smoothing
    rate = {d: (sums[d] + m * overall) / (counts[d] + m) for d in sums}
    prior = np.asarray([rate[d] for d in data.domains], dtype=np.float64)
    out: FloatArray = (1.0 - cfg.domain_blend) * need + cfg.domain_blend * prior
    return out


def fit_logistic(x: SparseRows, y: FloatArray, cfg: TrainConfig) -> tuple[FloatArray, float]:
    """L2-regularized logistic regression with soft labels, by Adam (full batch).

    Full-batch Adam over ~10k sparse rows converges in ~150 steps and needs nothing but
    numpy; the bias is not regularized.
    """
    if x.n_rows != len(y) or x.n_rows == 0:
        raise ValueError("features and targets disagree")
    w = np.zeros(x.dims, dtype=np.float64)
    b = 0.0
    mw = np.zeros_like(w)
    vw = np.zeros_like(w)
    mb = vb = 0.0
    b1, b2, eps, lr = 0.9, 0.999, 1e-8, cfg.learning_rate
    # start the bias at the base rate so early steps go into the weights
    base = float(np.clip(y.mean(), 1e-4, 1 - 1e-4))
    b = math.log(base / (1 - base))
    n = float(len(y))
    row_of = np.repeat(np.arange(x.n_rows), np.diff(x.indptr))  # hoisted out of the loop
    for t in range(1, cfg.iterations + 1):
        z = np.bincount(row_of, weights=x.values * w[x.indices], minlength=x.n_rows) + b
        p = 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))
        g = (p - y) / n
        gw: FloatArray = (
            np.bincount(x.indices, weights=x.values * g[row_of], minlength=x.dims) + cfg.l2 * w
        )
        gb = float(g.sum())
        mw = b1 * mw + (1 - b1) * gw
        vw = b2 * vw + (1 - b2) * gw * gw
        mb = b1 * mb + (1 - b1) * gb
        vb = b2 * vb + (1 - b2) * gb * gb
        c1, c2 = 1 - b1**t, 1 - b2**t
        w -= lr * (mw / c1) / (np.sqrt(vw / c2) + eps)
        b -= lr * (mb / c1) / (math.sqrt(vb / c2) + eps)
    return w, b


@dataclass(frozen=True, slots=True)
class _Pooled:
    prompts: list[str]
    weak: FloatArray
    strong: FloatArray
    target: FloatArray


def _pool(parts: list[Dataset], cfg: TrainConfig) -> _Pooled:
    return _Pooled(
        prompts=[p for d in parts for p in d.prompts],
        weak=np.concatenate([d.weak for d in parts]),
        strong=np.concatenate([d.strong for d in parts]),
        target=np.concatenate([targets(d, cfg) for d in parts]),
    )


def training_rows(data: Dataset, cfg: TrainConfig) -> Dataset:
    """The rows a model may learn from: everything but the fixed held-out split."""
    if cfg.holdout <= 0:
        return data
    return data.subset(~holdout_mask(data, cfg.holdout, cfg.seed))


def fit_scores(
    x: SparseRows,
    target: FloatArray,
    fit_rows: npt.NDArray[np.int64],
    score_rows: npt.NDArray[np.int64],
    cfg: TrainConfig,
) -> FloatArray:
    """Fit on some rows of a featurized batch, score others; used by cross-validation."""
    w, b = fit_logistic(x.take(fit_rows), target[fit_rows], cfg)
    return x.take(score_rows).dot(w) + b


def calibration(
    scores: FloatArray, weak: FloatArray, strong: FloatArray, points: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(share grid, threshold per share, expected PGR per share) from out-of-fold scores."""
    share = np.linspace(0.0, 1.0, points)
    # threshold for share s: the (1 - s) quantile, so a fraction s scores at or above it
    thresholds = np.quantile(scores, 1.0 - share, method="higher")
    thresholds[0] = np.nextafter(thresholds[0], np.inf)  # share 0: above every score
    curve = sweep(scores, weak, strong)
    pgr = np.interp(share, curve.share, curve.pgr)
    return share, thresholds.astype(np.float64), pgr.astype(np.float64)


def train(
    datasets: list[Dataset], cfg: TrainConfig | None = None, progress: Progress | None = None
) -> QualityModel:
    """Train on the non-held-out rows of every file; calibrate on out-of-fold scores."""
    cfg = cfg or TrainConfig()
    say = progress or (lambda _msg: None)
    parts = [training_rows(d, cfg) for d in datasets]
    pooled = _pool(parts, cfg)
    if len(pooled.prompts) < 10 * cfg.oof_folds:
        raise ValueError(f"need at least {10 * cfg.oof_folds} training rows")
    say(f"featurizing {len(pooled.prompts)} training prompts")
    x = featurize_many(pooled.prompts, cfg.spec)

    folds = row_folds(pooled.prompts, cfg.oof_folds, cfg.seed)
    oof = np.zeros(len(pooled.prompts), dtype=np.float64)
    for k in range(cfg.oof_folds):
        say(f"out-of-fold model {k + 1}/{cfg.oof_folds}")
        fit_rows = np.nonzero(folds != k)[0]
        held = np.nonzero(folds == k)[0]
        oof[held] = fit_scores(x, pooled.target, fit_rows, held, cfg)
    say("final model")
    w, b = fit_logistic(x, pooled.target, cfg)

    share, thresholds, pgr = calibration(oof, pooled.weak, pooled.strong, cfg.calib_points)
    offset = 0
    per_file: list[dict[str, object]] = []
    for src, part in zip(datasets, parts, strict=True):
        sl = slice(offset, offset + len(part))
        offset += len(part)
        per_file.append(
            {
                "name": src.name,
                "sha256": src.sha256,
                "rows": len(src),
                "train_rows": len(part),
                "oof_apgr": round(apgr(sweep(oof[sl], part.weak, part.strong)), 4),
            }
        )
    meta: dict[str, object] = {
        "trained_at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": per_file,
        "holdout": {"fraction": cfg.holdout, "seed": cfg.seed} if cfg.holdout > 0 else None,
        "target": "need=strong_correct&!weak_correct, domain_blend="
        f"{cfg.domain_blend}, smoothing={cfg.domain_smoothing}",
        "l2": cfg.l2,
        "iterations": cfg.iterations,
        "oof_folds": cfg.oof_folds,
    }
    return QualityModel(
        spec=cfg.spec,
        weights=w,
        bias=b,
        calib_share=share,
        calib_threshold=thresholds,
        calib_pgr=pgr,
        meta=meta,
    )
