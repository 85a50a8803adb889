"""``hybridgate distill``: train, promote, report on and verify task adapters.

    hybridgate distill status [TASK]
    hybridgate distill train TASK [--device cpu|cuda]
    hybridgate distill promote TASK --to shadow|canary|full|rolled_back --reason TEXT
    hybridgate distill override TASK MODEL --reason TEXT --operator NAME
    hybridgate distill report TASK
    hybridgate distill provenance ADAPTER_DIR [--wait SECONDS]
    hybridgate distill verify ADAPTER_DIR --key KEY [--base MODEL_DIR]

Every command but ``verify`` opens the configured store, SQLite or PostgreSQL.
On PostgreSQL the receipts they write are queued in the shared log and merged
by the sequencer of a running replica; until then they have no log index, and
the commands say so (``pending``) instead of citing one. ``provenance`` adds
the manifest receipt's inclusion proof once it is merged. ``verify`` needs
nothing but the adapter's directory (its files, ``manifest.json`` and
``provenance.json``) and the gateway's public key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from hybridgate.cli.common import ConfigOpt, HomeOpt, resolve_config
from hybridgate.config import GatewayConfig

if TYPE_CHECKING:
    from hybridgate.distill.flywheel import Workspace

app = typer.Typer(
    help="The flywheel: move a repetitive task from a frontier model to a small adapter.",
    no_args_is_help=True,
)

STAGES = ("shadow", "canary", "full", "rolled_back", "registered")


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def _workspace(cfg: GatewayConfig) -> Workspace:
    from hybridgate.distill.flywheel import FlywheelError, open_workspace

    try:
        return open_workspace(cfg)
    except (FlywheelError, OSError, ValueError) as exc:
        raise _fail(f"cannot open the gateway's home: {exc}", 2) from None


def _task(cfg: GatewayConfig, task: str) -> None:
    if task not in cfg.distill.tasks:
        known = ", ".join(sorted(cfg.distill.tasks)) or "none"
        raise _fail(f"task {task!r} is not configured (configured: {known})", 2)


@app.command()
def status(
    task: Annotated[str | None, typer.Argument(help="one task (default: all)")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Each task's stage, adapter and captured pairs."""
    from hybridgate.distill.flywheel import close_workspace

    cfg = resolve_config(config, home)
    tasks = [task] if task else sorted(cfg.distill.tasks)
    for t in tasks:
        _task(cfg, t)
    ws = _workspace(cfg)
    try:
        table = Table("task", "stage", "adapter", "pairs", "pending", "floor")
        for t in tasks:
            st = ws.store.state(t)
            table.add_row(
                t,
                st.stage if st else "off",
                (st.adapter_id or "")[:12] if st else "",
                str(ws.store.count(t)),
                str(ws.store.count_pending(t)),
                str(cfg.distill.tasks[t].quality_floor),
            )
        _out().print(table)
    finally:
        close_workspace(ws)


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="configured task name")],
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto (GPU when present)")] = "auto",
    wait: Annotated[
        float | None,
        typer.Option(
            help="PostgreSQL: seconds to wait for the shared log to merge the manifest's"
            " receipt (default: store.max_merge_delay_s)",
            min=0,
        ),
    ] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Train a LoRA adapter on the task's captured pairs; evaluate; register (not serving)."""
    from hybridgate.distill.flywheel import FlywheelError, close_workspace, run_turn

    cfg = resolve_config(config, home)
    _task(cfg, task)
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise _fail(
            "training needs the 'local' extra: pip install 'hybridgate[local]'", 2
        ) from None
    merge_wait = wait if wait is not None else _default_wait(cfg)
    ws = _workspace(cfg)
    out = _out()
    try:
        with Progress(
            TextColumn("[bold]training[/] {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=out,
        ) as bar:
            job = bar.add_task(task, total=None, loss=float("nan"))

            def progress(step: int, total: int, loss: float) -> None:
                bar.update(job, completed=step, total=total, loss=loss)

            result = run_turn(
                ws, task, actor="cli", device=device, progress=progress, merge_wait_s=merge_wait
            )
    except FlywheelError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        close_workspace(ws)
    ev = result.evaluation
    table = Table("on held-out pairs", "agreement", "valid", "latency ms/call", "cost/call")
    for label, side in (
        ("adapter", ev["adapter"]),
        ("untrained base", ev["base_untrained"]),
        ("teacher", ev["teacher"]),
    ):
        lat = side["latency_ms"]
        table.add_row(
            label,
            f"{side['quality']:.3f}",
            f"{side['valid']:.3f}",
            "-" if lat is None else f"{lat:.1f}",
            side["cost_usd"] or "-",
        )
    out.print(table)
    out.print(
        f"adapter {result.adapter_id[:12]} registered as {result.adapter_name!r} (stage: "
        f"registered, not serving); {result.train_pairs} pairs, {result.heldout_pairs} held out, "
        f"{result.train_seconds:.1f} s on {result.device}; manifest {result.manifest_sha256[:12]}"
    )
    out.print(f"files: {result.run_dir}")
    out.print(result.manifest.describe())
    if result.manifest.pending:
        out.print(f"once it is merged: hybridgate distill provenance {result.run_dir}")


def _default_wait(cfg: GatewayConfig) -> float:
    return cfg.store.max_merge_delay_s if cfg.store.kind == "postgres" else 0.0


@app.command()
def promote(
    task: Annotated[str, typer.Argument()],
    to: Annotated[str, typer.Option("--to", help="shadow, canary, full, rolled_back")],
    reason: Annotated[str, typer.Option(help="why (logged in the signed event)")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Move the task's adapter to a stage; the step is a signed receipt in the log."""
    from hybridgate.distill.events import transition
    from hybridgate.distill.flywheel import close_workspace

    cfg = resolve_config(config, home)
    _task(cfg, task)
    if to not in STAGES:
        raise _fail(f"--to must be one of {', '.join(STAGES)}", 2)
    ws = _workspace(cfg)
    try:
        st = ws.store.state(task)
        if st is None or st.adapter_id is None:
            raise _fail(f"task {task!r} has no trained adapter: run distill train first", 2)
        new = transition(ws.ledger, ws.store, task, to, reason=reason, actor="cli")
    finally:
        close_workspace(ws)
    _out().print(f"{task}: {st.stage} -> {new.stage}")


@app.command()
def override(
    task: Annotated[str, typer.Argument()],
    model: Annotated[str, typer.Argument(help="teacher model id whose terms are overridden")],
    reason: Annotated[str, typer.Option(help="the legal basis (logged)")],
    operator: Annotated[str, typer.Option(help="who decides (logged)")],
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Record an operator override of a teacher's output-use terms (a signed receipt)."""
    from hybridgate.distill.events import record_override
    from hybridgate.distill.flywheel import close_workspace

    cfg = resolve_config(config, home)
    _task(cfg, task)
    ws = _workspace(cfg)
    try:
        rid = record_override(ws.ledger, ws.store, task, model, reason, operator)
    except ValueError as exc:
        raise _fail(str(exc), 2) from None
    finally:
        close_workspace(ws)
    _out().print(f"override recorded in receipt {rid}")


@app.command()
def report(
    task: Annotated[str, typer.Argument()],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Savings (adapter vs teacher) and the task's signed promotion history."""
    from hybridgate.distill.flywheel import close_workspace
    from hybridgate.distill.report import history, savings

    cfg = resolve_config(config, home)
    _task(cfg, task)
    ws = _workspace(cfg)
    try:
        s = savings(ws.store.calls(task))
        events = history(ws.db, task)
    finally:
        close_workspace(ws)
    if as_json:
        typer.echo(json.dumps({"savings": s, "events": events}, indent=2))
        return
    out = _out()
    table = Table("served by", "calls", "cost USD", "teacher would cost", "mean latency ms")
    for side in ("teacher", "adapter"):
        row = s[side]
        table.add_row(
            side,
            str(row["calls"]),
            row["cost_usd"],
            row["teacher_cost_usd"],
            "-" if row["mean_latency_ms"] is None else str(row["mean_latency_ms"]),
        )
    out.print(table)
    out.print(
        f"saved {s['saved_usd']} USD; {s['total_cost_usd']} spent instead of "
        f"{s['teacher_only_cost_usd']} (adapter share {s['adapter_share']:.1%})"
    )
    for e in events:
        where = "pending (queued in the shared log)" if e["log_index"] is None else e["log_index"]
        out.print(
            f"#{where} {e['event']}: {e.get('from_stage')} -> {e.get('to_stage')} "
            f"({e.get('reason') or ''})"
        )


@app.command()
def provenance(
    adapter: Annotated[Path, typer.Argument(help="the adapter's directory (with provenance.json)")],
    wait: Annotated[
        float, typer.Option(help="seconds to wait for the shared log to merge it", min=0)
    ] = 0.0,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Where the adapter's manifest receipt stands in the log. On PostgreSQL, once the
    shared log merged it, its inclusion proof replaces the promise in provenance.json.
    Exit 0 when proved, 3 while it is pending."""
    from hybridgate.distill.flywheel import close_workspace
    from hybridgate.distill.provenance import await_manifest

    cfg = resolve_config(config, home)
    ws = _workspace(cfg)
    try:
        entry = await_manifest(ws.ledger, adapter, wait)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _fail(f"{adapter}: {exc}", 2) from None
    finally:
        close_workspace(ws)
    out = _out()
    out.print(entry.describe())
    if entry.pending:
        if entry.overdue_s > 0:
            out.print(
                f"the promised merge time passed {entry.overdue_s:.0f} s ago:"
                " is a gateway replica (its sequencer) running on this database?"
            )
        raise typer.Exit(3)


@app.command()
def verify(
    adapter: Annotated[Path, typer.Argument(help="the adapter's directory (with provenance.json)")],
    key: Annotated[
        str | None,
        typer.Option("--key", help="the gateway's verifier key string, or a file of them"),
    ] = None,
    base: Annotated[
        Path | None, typer.Option(help="also check the base model directory's hash")
    ] = None,
) -> None:
    """Check an adapter's provenance offline: manifest signature, its log entry, every
    training receipt's signature and inclusion proof, the dataset hash, the adapter's files."""
    from hybridgate.adapters import adapter_files
    from hybridgate.cli.ledger_cmd import parse_keys
    from hybridgate.distill.provenance import PROVENANCE_FILE, proved_index, verify_provenance
    from hybridgate.distill.train import base_model_hash
    from hybridgate.errors import GatewayError

    if key is None:
        raise _fail("--key is required: the gateway's public key (GET /v1/log/public-key)", 2)
    try:
        keys = parse_keys(key)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read --key: {exc}", 2) from None
    prov = adapter / PROVENANCE_FILE
    try:
        doc = json.loads(prov.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {prov}: {exc}", 2) from None
    try:
        ad_sha = adapter_files(adapter).sha256
    except GatewayError as exc:
        raise _fail(f"{adapter}: {exc.message}", 2) from None
    base_sha = base_model_hash(base) if base is not None else None
    problems = verify_provenance(doc, keys, adapter_sha256=ad_sha, base_sha256=base_sha)
    out = _out()
    if problems:
        for p in problems:
            out.print(f"FAIL {p}")
        raise typer.Exit(1)
    m = doc["manifest"]["receipt"]
    out.print(
        f"OK adapter {ad_sha[:12]} for task {m['task']!r}: manifest signed and in the log"
        f" at index {proved_index(doc['manifest_receipt'])}; "
        f"{m['dataset']['pairs']} training receipts verified against checkpoint "
        f"{m['checkpoint'].splitlines()[1]}; dataset {m['dataset']['sha256'][:12]}; "
        f"teacher {', '.join(m['teacher']['models'])}"
    )
