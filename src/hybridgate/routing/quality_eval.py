"""Evaluating a quality router on labelled files: metrics per file and the share/accuracy plot.

Three honest modes, never the training rows themselves:

* ``all rows`` of a file the router never trained on (any held-out CSV);
* ``holdout``: the fixed 20 % split of each file that the shipped router was trained
  without (the split is recomputed from the file, see ``quality_data.holdout_mask``);
* ``domains``: for files with a ``domain`` column, whole subjects held out: the data is cut
  into folds of domains and a fresh model is trained on the other folds, so every score comes
  from a model that never saw that subject at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from hybridgate.extras import require
from hybridgate.routing.quality import QualityRouter
from hybridgate.routing.quality_data import (
    DEFAULT_HOLDOUT,
    DEFAULT_SEED,
    Dataset,
    domain_folds,
    holdout_mask,
)
from hybridgate.routing.quality_features import featurize_many
from hybridgate.routing.quality_metrics import Curve, RouterMetrics, summarize, sweep
from hybridgate.routing.quality_train import TrainConfig, fit_scores, targets

Mode = Literal["all", "holdout", "domains"]
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class FileResult:
    name: str
    mode: Mode
    metrics: RouterMetrics
    curve: Curve
    note: str = ""


def router_holdout(router: QualityRouter) -> tuple[float, str, bool]:
    """(fraction, seed, whether the router was trained without that split)."""
    h = router.meta.get("holdout")
    if isinstance(h, dict):
        return float(h.get("fraction", DEFAULT_HOLDOUT)), str(h.get("seed", DEFAULT_SEED)), True
    return DEFAULT_HOLDOUT, DEFAULT_SEED, False


def trained_on(router: QualityRouter, data: Dataset) -> bool:
    """Whether this exact file (by content hash) was part of the router's training data."""
    files = router.meta.get("files")
    if not isinstance(files, list):
        return False
    return any(isinstance(f, dict) and f.get("sha256") == data.sha256 for f in files)


def _result(
    name: str, mode: Mode, scores: npt.NDArray[np.float64], d: Dataset, note: str
) -> FileResult:
    curve = sweep(scores, d.weak, d.strong)
    return FileResult(name, mode, summarize(curve, len(d)), curve, note)


def evaluate_router(router: QualityRouter, data: Dataset, *, holdout: bool) -> FileResult:
    """Score the file (or its held-out split) with a trained router."""
    if holdout:
        fraction, seed, excluded = router_holdout(router)
        part = data.subset(holdout_mask(data, fraction, seed))
        note = "" if excluded or not trained_on(router, data) else "TRAINED ON THESE ROWS"
        return _result(data.name, "holdout", router.score_many(part.prompts), part, note)
    note = "TRAINED ON THESE ROWS" if trained_on(router, data) else ""
    return _result(data.name, "all", router.score_many(data.prompts), data, note)


def evaluate_domains(
    data: Dataset, folds: int, cfg: TrainConfig | None = None, progress: Progress | None = None
) -> FileResult:
    """Leave-domains-out: out-of-fold scores from models that never saw those subjects.

    Trains on every row of the other domain folds and scores the fold's rows.
    """
    cfg = cfg or TrainConfig()
    say = progress or (lambda _msg: None)
    fold_of = domain_folds(data, folds, cfg.seed)
    say(f"{data.name}: featurizing")
    x = featurize_many(data.prompts, cfg.spec)
    target = targets(data, cfg)
    scores = np.zeros(len(data), dtype=np.float64)
    for k in range(folds):
        say(f"{data.name}: domain fold {k + 1}/{folds}")
        held = np.nonzero(fold_of == k)[0]
        scores[held] = fit_scores(x, target, np.nonzero(fold_of != k)[0], held, cfg)
    return _result(data.name, "domains", scores, data, f"{folds} folds of whole domains")


def default_train_config(router: QualityRouter) -> TrainConfig:
    """Retrain with the router's own hyperparameters where its metadata records them."""
    cfg = TrainConfig()
    l2 = router.meta.get("l2")
    iters = router.meta.get("iterations")
    return replace(
        cfg,
        l2=float(l2) if isinstance(l2, int | float) else cfg.l2,
        iterations=int(iters) if isinstance(iters, int) else cfg.iterations,
        spec=router.model.spec,
    )


def plot_curves(results: list[FileResult], out: Path) -> None:
    """Strong-call share vs accuracy per file, with the weak/strong lines and random routing.

    Uses the object-oriented Agg canvas, not pyplot, so no global figure state is touched.
    """
    require("matplotlib", "plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = max(1, len(results))
    fig = Figure(figsize=(5.2 * n, 4.2))
    FigureCanvasAgg(fig)
    for i, r in enumerate(results):
        ax = fig.add_subplot(1, n, i + 1)
        m = r.metrics
        ax.plot(
            r.curve.share * 100,
            r.curve.accuracy * 100,
            color="tab:blue",
            label=f"quality router (APGR {m.apgr:.3f})",
        )
        ax.plot(
            [0, 100],
            [m.weak_accuracy * 100, m.strong_accuracy * 100],
            color="grey",
            linestyle=":",
            label="random (APGR 0.5)",
        )
        ax.axhline(m.weak_accuracy * 100, color="tab:orange", linestyle="--", label="weak only")
        ax.axhline(m.strong_accuracy * 100, color="tab:red", linestyle="--", label="strong only")
        ax.set_title(f"{r.name} ({r.mode}, n={m.n})")
        ax.set_xlabel("strong model calls (%)")
        ax.set_ylabel("accuracy (%)")
        ax.set_xlim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
