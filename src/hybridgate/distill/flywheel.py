"""One turn of the flywheel for a task: dataset -> LoRA -> evaluation -> registry -> manifest.

Works on a running gateway's services or on its home from the CLI (the
receipt log serializes writers through SQLite, and every writer re-reads the
log's size before it appends). The adapter is registered in the adapter
registry and the task's stage becomes ``registered``: it serves nothing until
it is promoted to shadow.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hybridgate.accounting import cost_usd
from hybridgate.adapters import AdapterRegistry
from hybridgate.config import GatewayConfig
from hybridgate.distill.checks import OutputCheck
from hybridgate.distill.crypto import Sealer
from hybridgate.distill.dataset import dataset_hash, load_examples, split
from hybridgate.distill.evaluate import generate, side_report, teacher_report
from hybridgate.distill.events import transition
from hybridgate.distill.provenance import MANIFEST_FORMAT, covering_bundles, publish
from hybridgate.distill.service import student_route
from hybridgate.distill.store import DistillStore, TaskState
from hybridgate.distill.terms import TermsSource, entry_dict
from hybridgate.distill.train import ProgressFn, base_model_hash, train_lora
from hybridgate.ledger import Ledger
from hybridgate.store.base import Store
from hybridgate.store.sqlite import SQLiteStore


class FlywheelError(ValueError):
    """A turn cannot run (no base model, too few pairs...); the message says why."""


@dataclass
class Workspace:
    """What a turn needs from a gateway, running or not."""

    config: GatewayConfig
    sqlite: Store
    ledger: Ledger
    store: DistillStore
    sealer: Sealer
    terms: TermsSource

    @property
    def registry(self) -> AdapterRegistry:
        return AdapterRegistry(self.sqlite, self.config.home_path)

    def runs_dir(self, task: str) -> Path:
        root = self.config.distill.adapters_dir
        base = Path(root).expanduser() if root else self.config.home_path / "distill"
        return base / task


@dataclass(frozen=True)
class TurnResult:
    task: str
    adapter_id: str
    adapter_name: str
    run_dir: Path
    manifest_sha256: str
    train_pairs: int
    heldout_pairs: int
    evaluation: dict[str, Any]
    train_seconds: float
    final_loss: float
    device: str


def run_turn(
    ws: Workspace,
    task: str,
    *,
    actor: str = "operator",
    device: str | None = None,
    progress: ProgressFn | None = None,
    min_pairs: int = 20,
) -> TurnResult:
    cfg = ws.config.distill.tasks.get(task)
    if cfg is None:
        raise FlywheelError(f"task {task!r} is not configured under distill.tasks")
    base = cfg.student.base_model
    if not base or not Path(base).expanduser().is_dir():
        raise FlywheelError(f"task {task!r}: student.base_model must name a local model directory")
    base_path = Path(base).expanduser()
    examples = load_examples(ws.store, ws.sealer, task)
    train, held = split(examples, cfg.train.holdout, cfg.train.seed)
    if len(train) < min_pairs or not held:
        raise FlywheelError(
            f"task {task!r}: {len(train)} training and {len(held)} held-out pairs; "
            f"need at least {min_pairs} and 1"
        )
    run_dir = ws.runs_dir(task) / f"run-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}"
    suffix = 0
    while run_dir.exists():
        suffix += 1
        run_dir = run_dir.with_name(run_dir.name.split(".")[0] + f".{suffix}")
    result = train_lora(base_path, train, cfg.train, run_dir, device=device, progress=progress)

    # -- evaluate on held-out pairs, beside the base and the teacher -----------------
    check = OutputCheck(cfg.check)
    refs = [e.answer for e in held]
    n_new = cfg.student.max_new_tokens
    base_answers, base_ms = generate(base_path, None, held, max_new_tokens=n_new, device=device)
    ad_answers, ad_ms = generate(base_path, run_dir, held, max_new_tokens=n_new, device=device)
    receipts = []
    for e in held:
        got = ws.ledger.get_receipt(e.receipt_id)
        receipts.append(got["receipt"] if got else None)
    teacher = teacher_report(check, held, receipts)
    student_price = student_route(
        task, cfg, TaskState(task, "registered", "x", str(run_dir), None, 0)
    )
    per_call: Decimal | None = None
    if student_price is not None:
        toks = [(int(r["tokens_in"]), int(r["tokens_out"])) for r in receipts if r is not None]
        if toks:
            total = sum((cost_usd(student_price.price, i, o) for i, o in toks), Decimal(0))
            per_call = total / len(toks)
    adapter_side = side_report(check, ad_answers, refs, ad_ms, per_call)
    base_side = side_report(check, base_answers, refs, base_ms, per_call)
    evaluation = {
        "heldout_pairs": len(held),
        "adapter": adapter_side.as_dict(),
        "base_untrained": base_side.as_dict(),
        "teacher": teacher.as_dict(),
        "quality_floor": cfg.quality_floor,
    }

    # -- register (not serving) ----------------------------------------------------
    adapter_name = task
    adapter = ws.registry.register(
        adapter_name,
        run_dir,
        base=base_path.name,
        task=f"Distilled adapter for task {task!r}",
        replaces=cfg.model,
        replace=True,
    )

    # -- provenance ----------------------------------------------------------------
    teachers = sorted({e.teacher_model for e in train})
    note, bundles = covering_bundles(ws.ledger, [e.receipt_id for e in train])
    overrides = sorted({o for m in teachers if (o := ws.store.override(task, m)) is not None})
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "task": task,
        "adapter": {"name": adapter.name, "sha256": adapter.sha256, "format": adapter.format},
        "base_model": {"name": base_path.name, "sha256": base_model_hash(base_path)},
        "teacher": {
            "models": teachers,
            "terms": [entry_dict(ws.terms.output_terms(m)) for m in teachers],
            "purpose": cfg.capture.purpose,
            "overrides": overrides,
        },
        "dataset": {
            "sha256": dataset_hash(train),
            "pairs": len(train),
            "heldout": len(held),
            "split": {"holdout": cfg.train.holdout, "seed": cfg.train.seed},
        },
        "training_receipts": {
            "log_indices": [e.log_index for e in sorted(train, key=lambda e: e.log_index)],
            "receipt_ids": [e.receipt_id for e in sorted(train, key=lambda e: e.log_index)],
        },
        "checkpoint": note,
        "training": {**result.params, "device": result.device, "steps": result.steps},
        "evaluation": evaluation,
        "created_ns": str(time.time_ns()),
    }
    order = {e.receipt_id: i for i, e in enumerate(train)}
    by_index = sorted(train, key=lambda e: e.log_index)
    ordered = [bundles[order[e.receipt_id]] for e in by_index]
    _, digest = publish(ws.ledger, manifest, run_dir, ordered)
    transition(
        ws.ledger,
        ws.store,
        task,
        "registered",
        reason=(
            f"trained on {len(train)} pairs; held-out agreement "
            f"{adapter_side.quality:.3f} (untrained base {base_side.quality:.3f})"
        ),
        actor=actor,
        adapter_id=adapter.sha256,
        adapter_path=adapter.path,
        manifest_sha256=digest,
    )
    return TurnResult(
        task=task,
        adapter_id=adapter.sha256,
        adapter_name=adapter.name,
        run_dir=run_dir,
        manifest_sha256=digest,
        train_pairs=len(train),
        heldout_pairs=len(held),
        evaluation=evaluation,
        train_seconds=result.seconds,
        final_loss=result.final_loss,
        device=result.device,
    )


def open_workspace(config: GatewayConfig) -> Workspace:
    """A workspace on a gateway's home, for the CLI; ``close_workspace`` when done."""
    from hybridgate.distill.terms import ChainTerms, ListTerms, catalog_terms
    from hybridgate.ledger import KeyRing

    if config.store.kind != "sqlite":
        raise FlywheelError(
            "the distill commands run on the embedded SQLite store only; this configuration"
            f" uses {config.store.kind}: its gateways capture pairs, but training,"
            " promotion and reports from the command line are not available on it yet"
        )
    home = config.home_path
    secret_file = home / "deployment.secret"
    if not secret_file.is_file():
        raise FlywheelError(f"no deployment secret under {home}: not a gateway home")
    db = config.database_path
    if not db.is_file():
        raise FlywheelError(f"no gateway database at {db}")
    ring = KeyRing.load(home / "keys")
    sqlite = SQLiteStore(db, durability=config.ledger.durability)
    sqlite.open([*Ledger.migrations(), *DistillStore.migrations(), *AdapterRegistry.migrations()])
    ledger = Ledger(sqlite, ring, config.ledger, secret_file.read_bytes())
    sources: list[TermsSource] = [ListTerms(config.distill.terms)]
    cat = catalog_terms(config)
    if cat is not None:
        sources.append(cat)
    return Workspace(
        config,
        sqlite,
        ledger,
        DistillStore(sqlite),
        Sealer(secret_file.read_bytes()),
        ChainTerms(sources),
    )


def close_workspace(ws: Workspace) -> None:
    ws.sqlite.close()
