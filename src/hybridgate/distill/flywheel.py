"""One turn of the flywheel for a task: dataset -> LoRA -> evaluation -> registry -> manifest.

Works on a running gateway's services or on its home from the CLI, on either
store. On SQLite the receipt log serializes writers through the database, and
every writer re-reads the log's size before it appends. On PostgreSQL the CLI
queues its receipts in the shared log like any replica and leaves merging to
the sequencer a running replica elects: it never takes the sequencer's lock.
The adapter is registered in the adapter registry and the task's stage becomes
``registered``: it serves nothing until it is promoted to shadow.
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
from hybridgate.distill.provenance import (
    MANIFEST_FORMAT,
    ManifestEntry,
    PendingReceipts,
    await_manifest,
    covering_bundles,
    proved_index,
    publish,
)
from hybridgate.distill.service import student_route
from hybridgate.distill.store import DistillStore, TaskState
from hybridgate.distill.terms import TermsSource, entry_dict
from hybridgate.distill.train import ProgressFn, base_model_hash, train_lora
from hybridgate.errors import GatewayError
from hybridgate.ledger import KeyRing, Ledger
from hybridgate.store import Store, build_store


class FlywheelError(ValueError):
    """A turn cannot run (no base model, too few pairs...); the message says why."""


@dataclass
class Workspace:
    """What a turn needs from a gateway, running or not."""

    config: GatewayConfig
    #: the gateway's store (SQLite file or the shared PostgreSQL database)
    db: Store
    ledger: Ledger
    store: DistillStore
    sealer: Sealer
    terms: TermsSource

    @property
    def registry(self) -> AdapterRegistry:
        return AdapterRegistry(self.db, self.config.home_path)

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
    #: the manifest receipt's place in the log (pending while the shared log queues it)
    manifest: ManifestEntry


def run_turn(
    ws: Workspace,
    task: str,
    *,
    actor: str = "operator",
    device: str | None = None,
    progress: ProgressFn | None = None,
    min_pairs: int = 20,
    merge_wait_s: float = 0.0,
) -> TurnResult:
    """``merge_wait_s``: on the shared log, how long to wait for the sequencer to merge the
    manifest's receipt before returning it as pending (see :attr:`TurnResult.manifest`)."""
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
        queued = ws.store.count_pending(task)
        raise FlywheelError(
            f"task {task!r}: {len(train)} training and {len(held)} held-out pairs; "
            f"need at least {min_pairs} and 1"
            + (
                f" ({queued} more captured pairs wait for the shared log to merge their"
                " receipts: they have no log index yet)"
                if queued
                else ""
            )
        )
    # Proofs first (cheap, and a pair the log cannot prove must not cost a training run):
    # the manifest cites each training receipt's index as its verified proof gives it.
    try:
        note, bundles = covering_bundles(ws.ledger, [e.receipt_id for e in train])
    except (PendingReceipts, ValueError, RuntimeError) as exc:
        raise FlywheelError(f"task {task!r}: {exc}") from exc
    proved = {str(b["receipt"]["receipt_id"]): (proved_index(b), b) for b in bundles}
    moved = [e.receipt_id for e in train if proved[e.receipt_id][0] != e.log_index]
    if moved:
        raise FlywheelError(
            f"task {task!r}: the log proves {len(moved)} training receipts at other indices"
            f" than their pairs were read with (first: {moved[0]})"
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
    by_index = sorted(train, key=lambda e: e.log_index)
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
            "log_indices": [proved[e.receipt_id][0] for e in by_index],
            "receipt_ids": [e.receipt_id for e in by_index],
        },
        "checkpoint": note,
        "training": {**result.params, "device": result.device, "steps": result.steps},
        "evaluation": evaluation,
        "created_ns": str(time.time_ns()),
    }
    _, digest = publish(ws.ledger, manifest, run_dir, [proved[e.receipt_id][1] for e in by_index])
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
    entry = await_manifest(ws.ledger, run_dir, merge_wait_s)
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
        manifest=entry,
    )


def open_workspace(config: GatewayConfig) -> Workspace:
    """A workspace on a gateway's home and store, for the CLI; ``close_workspace`` when done.

    The home holds the deployment secret and the signing keys (every replica of a
    PostgreSQL deployment shares them); the store is the configured one. Nothing here
    touches Redis: no distill command reserves or settles a budget.
    """
    from hybridgate.distill.terms import ChainTerms, ListTerms, catalog_terms

    home = config.home_path
    secret_file = home / "deployment.secret"
    if not secret_file.is_file():
        raise FlywheelError(f"no deployment secret under {home}: not a gateway home")
    if config.store.kind != "postgres" and not config.database_path.is_file():
        raise FlywheelError(f"no gateway database at {config.database_path}")
    ring = KeyRing.load(home / "keys")
    secret = secret_file.read_bytes()
    db = build_store(config)
    try:
        ledger = _open_log(config, db, ring, secret)
    except GatewayError as exc:
        db.close()
        raise FlywheelError(f"cannot open the store: {exc.message}") from exc
    except BaseException:
        db.close()
        raise
    sources: list[TermsSource] = [ListTerms(config.distill.terms)]
    cat = catalog_terms(config)
    if cat is not None:
        sources.append(cat)
    return Workspace(config, db, ledger, DistillStore(db), Sealer(secret), ChainTerms(sources))


def _open_log(config: GatewayConfig, db: Store, ring: KeyRing, secret: bytes) -> Ledger:
    """SQLite: the home's log, appended to directly. PostgreSQL: the shared log, into whose
    queue this process only inserts (its sequencer is never started, so it never leads)."""
    parts = [*DistillStore.migrations(), *AdapterRegistry.migrations()]
    if config.store.kind != "postgres":
        db.open([*Ledger.migrations(), *parts])
        return Ledger(db, ring, config.ledger, secret)
    from hybridgate.ledger.shared import SharedLedger
    from hybridgate.store.postgres import PostgresStore

    assert isinstance(db, PostgresStore)
    db.open([*SharedLedger.migrations(), *parts])
    return SharedLedger(
        db, ring, config.ledger, secret, max_merge_delay_s=config.store.max_merge_delay_s
    )


def close_workspace(ws: Workspace) -> None:
    ws.db.close()
