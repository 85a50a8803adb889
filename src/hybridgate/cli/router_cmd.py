"""``hybridgate router``: evaluate and (re)train the learned quality router."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.routing.quality import QualityRouter, save_model
from hybridgate.routing.quality_data import DEFAULT_HOLDOUT, DEFAULT_SEED, Dataset, load_csv
from hybridgate.routing.quality_eval import (
    FileResult,
    default_train_config,
    evaluate_domains,
    evaluate_router,
    plot_curves,
)
from hybridgate.routing.quality_train import TrainConfig, train

app = typer.Typer(
    name="router",
    help="The learned quality router: evaluate it (RouteLLM metrics) or retrain it.",
    no_args_is_help=True,
)
console = Console()
err = Console(stderr=True)

DataOpt = Annotated[
    list[Path],
    typer.Option(
        "--data",
        help="CSV with prompt, weak_correct, strong_correct (domain optional); repeatable",
        exists=True,
        dir_okay=False,
        readable=True,
    ),
]


def _load_all(paths: list[Path]) -> list[Dataset]:
    out: list[Dataset] = []
    for p in paths:
        try:
            out.append(load_csv(p))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            err.print(f"[red]cannot read {p}: {exc}[/red]")
            raise typer.Exit(2) from exc
    return out


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x * 100:.1f}%"


def _table(results: list[FileResult]) -> Table:
    t = Table(title="quality router: PGR over strong-call share, every threshold swept")
    for col in ("file", "split", "n", "weak", "strong", "APGR", "CPT50", "CPT80"):
        t.add_column(col, justify="left" if col in ("file", "split") else "right", no_wrap=True)
    for r in results:
        m = r.metrics
        t.add_row(
            r.name,
            r.mode + (f" [red]{r.note}[/red]" if "TRAINED" in r.note else ""),
            str(m.n),
            _pct(m.weak_accuracy),
            _pct(m.strong_accuracy),
            "n/a" if math.isnan(m.apgr) else f"{m.apgr:.3f}",
            _pct(m.cpt50),
            _pct(m.cpt80),
        )
    return t


@app.command("eval")
def eval_cmd(
    data: DataOpt,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="write strong share vs accuracy PNG here")
    ] = None,
    router: Annotated[
        Path | None, typer.Option("--router", help="router file (default: the shipped one)")
    ] = None,
    holdout: Annotated[
        bool,
        typer.Option(
            "--holdout", help="score only each file's fixed held-out split (router never saw it)"
        ),
    ] = False,
    holdout_domains: Annotated[
        int,
        typer.Option(
            "--holdout-domains",
            min=0,
            max=57,
            help="also hold out whole domains: K folds, a fresh model per fold (files with "
            "a domain column); 0 = off",
        ),
    ] = 0,
) -> None:
    """Weak/strong accuracy, APGR, CPT(50%) and CPT(80%) per file, as RouteLLM defines them.

    Without --holdout every row is scored: use that for files the router never trained on.
    """
    if holdout_domains == 1:
        raise typer.BadParameter("--holdout-domains needs at least 2 folds")
    datasets = _load_all(data)
    try:
        qr = QualityRouter.load(router)
    except (OSError, ValueError) as exc:
        err.print(f"[red]cannot load router: {exc}[/red]")
        raise typer.Exit(2) from exc
    start = time.perf_counter()
    results: list[FileResult] = []
    for d in datasets:
        results.append(evaluate_router(qr, d, holdout=holdout))
        if holdout_domains and d.domains is not None:
            cfg = default_train_config(qr)
            with console.status(f"{d.name}: training leave-domains-out models"):
                results.append(evaluate_domains(d, holdout_domains, cfg))
    console.print(_table(results))
    for r in results:
        if "TRAINED" in r.note:
            err.print(
                f"[red]warning: {r.name} ({r.mode}) includes rows this router was trained on; "
                "these numbers are not a held-out result[/red]"
            )
    console.print(f"evaluated in {time.perf_counter() - start:.1f}s")
    if plot is not None:
        plot_curves(results, plot)
        console.print(f"plot written to {plot}")


@app.command("train")
def train_cmd(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="router file to write (.npz)")],
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            min=0.0,
            max=0.9,
            help="fraction of each file kept out of training for `eval --holdout` (0 = all)",
        ),
    ] = DEFAULT_HOLDOUT,
    seed: Annotated[str, typer.Option("--seed", help="split seed")] = DEFAULT_SEED,
) -> None:
    """Train a router on labelled CSVs; the shipped one is made by this command."""
    datasets = _load_all(data)
    cfg = TrainConfig(holdout=holdout, seed=seed)
    start = time.perf_counter()
    try:
        with console.status("training") as status:
            model = train(datasets, cfg, progress=lambda msg: status.update(msg))
    except ValueError as exc:
        err.print(f"[red]cannot train: {exc}[/red]")
        raise typer.Exit(2) from exc
    save_model(model, out)
    files = model.meta.get("files", [])
    for f in files if isinstance(files, list) else []:
        console.print(
            f"{f['name']}: trained on {f['train_rows']}/{f['rows']} rows, "
            f"out-of-fold APGR {f['oof_apgr']:.3f}"
        )
    console.print(
        f"wrote {out} ({out.stat().st_size // 1024} KiB) in {time.perf_counter() - start:.1f}s"
    )
