"""``hybridgate receipt …`` and ``hybridgate log …``: verify receipts and the whole log.

Verification commands never need the gateway running, and the ones given
``--dir``/a bundle file never need its database either: an auditor verifies
on another machine with nothing but the exported files and the public key.
Exit codes: 0 valid, 1 invalid (the reason is printed), 2 unusable input.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console

from hybridgate.cli.common import ConfigOpt, HomeOpt, resolve_config
from hybridgate.config import GatewayConfig
from hybridgate.errors import ServiceUnavailable
from hybridgate.ledger import (
    KeyRing,
    Ledger,
    NoteError,
    ProofError,
    VerifierKey,
    export_log,
    verify_bundle,
    verify_checkpoint,
    verify_log,
    verify_receipt_signature,
)
from hybridgate.ledger.canonical import b64decode
from hybridgate.ledger.merkle import verify_consistency
from hybridgate.store import Store, build_store
from hybridgate.store.sqlite import SQLiteStore

receipt_app = typer.Typer(name="receipt", help="Verify receipts offline.", no_args_is_help=True)
log_app = typer.Typer(
    name="log", help="Verify, export and prove the receipt log.", no_args_is_help=True
)

MAX_BUNDLE_BYTES = 4 * 1024 * 1024
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        "-k",
        help="verifier key string, or a file holding one or more (one per line)",
    ),
]


def _out() -> Console:
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(message)
    return typer.Exit(code)


def parse_keys(value: str) -> list[VerifierKey]:
    """``value`` is a key string or a file of them; blank lines and '#' comments are skipped."""
    path = Path(value)
    text = value
    if len(value) < 4096 and path.is_file():
        if path.stat().st_size > 1 << 20:
            raise ValueError(f"{path} is too large to be a key file")
        text = path.read_text(encoding="utf-8")
    keys = [
        VerifierKey.parse(line.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not keys:
        raise ValueError("no verifier key given")
    return keys


def _keys_or_exit(value: str) -> list[VerifierKey]:
    try:
        return parse_keys(value)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read --key: {exc}", 2) from None


def _home_keys(cfg: GatewayConfig) -> list[VerifierKey]:
    try:
        return KeyRing.load(cfg.home_path / "keys").verifiers()
    except (OSError, ValueError) as exc:
        raise _fail(
            f"no gateway keys under {cfg.home_path / 'keys'} ({exc}); pass --key", 2
        ) from None


def _db(cfg: GatewayConfig) -> Path:
    db = cfg.database_path
    if not db.is_file():
        raise _fail(f"no receipt log at {db} (use --home or --config)", 2)
    return db


def _open_ledger(cfg: GatewayConfig) -> tuple[Store, Ledger]:
    """The log as the gateway sees it, for commands that issue checkpoints. Such a command
    never appends, so running it beside a live gateway is safe (SQLite serializes writers)."""
    try:
        ring = KeyRing.load(cfg.home_path / "keys")
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot load the gateway's keys: {exc}", 2) from None
    secret_file = cfg.home_path / "deployment.secret"
    secret = secret_file.read_bytes() if secret_file.is_file() else os.urandom(32)
    if cfg.store.kind == "postgres":  # the shared log: read what the sequencer signed
        from hybridgate.ledger.shared import SharedLedger
        from hybridgate.runtime import all_migrations
        from hybridgate.store.postgres import PostgresStore

        pg = build_store(cfg)
        assert isinstance(pg, PostgresStore)
        try:
            pg.open(all_migrations(cfg))
        except ServiceUnavailable as exc:
            raise _fail(f"cannot open the store: {exc.message}", 2) from None
        return pg, SharedLedger(pg, ring, cfg.ledger, secret)
    store = SQLiteStore(_db(cfg), durability=cfg.ledger.durability)
    store.open(Ledger.migrations())
    try:
        return store, Ledger(store, ring, cfg.ledger, secret)
    except ServiceUnavailable as exc:
        store.close()
        raise _fail(f"receipt log is inconsistent: {exc.message}") from None


@receipt_app.callback()
def _receipt_group() -> None:
    """Verify receipts offline (a group, so `receipt verify` reads the same everywhere)."""


# -- receipt verify -------------------------------------------------------------------
def check_receipt_document(doc: Any, keys: list[VerifierKey]) -> tuple[str | None, str]:
    """(problem, description) for a bundle, a signed receipt, or an action-gate answer
    (``{"receipt": signed, "bundle": bundle}``)."""
    if isinstance(doc, dict) and isinstance(doc.get("bundle"), dict):
        doc = doc["bundle"]
    if not isinstance(doc, dict) or not isinstance(doc.get("receipt"), dict):
        return "not a receipt or receipt bundle", ""
    body: dict[str, Any] = doc["receipt"]
    desc = _describe(body)
    if "promise" in doc:
        problem = verify_bundle(doc, keys)
        if problem is None:
            p = doc["promise"]
            desc += (
                f" (promise of inclusion in {p.get('log_origin')}: durable at"
                f" {p.get('timestamp_ns')} ns, merged within {p.get('max_merge_delay_s')} s;"
                " fetch the receipt again then for its inclusion proof)"
            )
        return problem, desc
    if "checkpoint" in doc or "inclusion_proof" in doc:
        if "log_index" not in body and isinstance(doc.get("log_index"), int):
            desc = desc.replace("at index None", f"at index {doc['log_index']}")
        return verify_bundle(doc, keys), desc
    problem = verify_receipt_signature(doc, keys)
    if problem is None:
        desc += " (signature only: no inclusion proof in this file)"
    return problem, desc


def _describe(body: dict[str, Any]) -> str:
    rid, idx, kind = body.get("receipt_id"), body.get("log_index"), body.get("kind")
    parts = [f"receipt {rid} at index {idx}, kind {kind}"]
    if kind == "action":
        parts.append(
            f"action {body.get('action')} for agent {body.get('agent_id')}: {body.get('outcome')}"
        )
        exp = body.get("expires_at_ns")
        if isinstance(exp, str) and exp.isdigit():
            left = (int(exp) - time.time_ns()) / 1e9
            parts.append("expired" if left <= 0 else f"expires in {left:.0f}s")
    else:
        parts.append(
            f"{body.get('outcome')} via {body.get('route')} ({body.get('location')}),"
            f" action {body.get('action')}"
        )
    return "; ".join(parts)


@receipt_app.command("verify")
def receipt_verify(
    bundle: Annotated[Path, typer.Argument(help="bundle JSON from GET /v1/receipts/{id}")],
    key: KeyOpt = None,
    action: Annotated[
        str | None, typer.Option(help="action receipts: the action it must authorize")
    ] = None,
    params: Annotated[
        str | None, typer.Option(help="action receipts: the exact params, as JSON")
    ] = None,
) -> None:
    """Check a receipt offline: signature, inclusion proof, and the signed checkpoint.

    For an action receipt, --action and --params also check that it authorizes exactly
    that action with exactly those parameters, and that it has not expired."""
    if key is None:
        raise _fail("--key is required: the gateway's public key (GET /v1/log/public-key)", 2)
    keys = _keys_or_exit(key)
    try:
        if bundle.stat().st_size > MAX_BUNDLE_BYTES:
            raise _fail(f"{bundle} is larger than {MAX_BUNDLE_BYTES} bytes", 2)
        doc = json.loads(bundle.read_bytes())
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read {bundle}: {exc}", 2) from None
    problem, desc = check_receipt_document(doc, keys)
    if problem is not None:
        raise _fail(f"INVALID: {problem}")
    if action is not None or params is not None:
        problem = _check_action_binding(doc, keys, action, params)
        if problem is not None:
            raise _fail(f"INVALID: {problem}")
        desc += f"; authorizes {action} with exactly these params"
    _out().print(f"valid: {desc}")


def _check_action_binding(
    doc: Any, keys: list[VerifierKey], action: str | None, params: str | None
) -> str | None:
    """The executor's check (``hybridgate.verify_action``), offline."""
    from hybridgate.actions.verify import verify_action

    if action is None or params is None:
        raise _fail("--action and --params go together", 2)
    try:
        parsed = json.loads(params)
    except ValueError as exc:
        raise _fail(f"--params is not JSON: {exc}", 2) from None
    if not isinstance(parsed, dict):
        raise _fail("--params must be a JSON object", 2)
    if isinstance(doc, dict) and isinstance(doc.get("bundle"), dict):
        doc = doc["bundle"]
    check = verify_action(doc, action, parsed, keys)
    return None if check.ok else f"{check.verdict}: {check.reason}"


# -- log verify / export / checkpoint / consistency ------------------------------------------
@log_app.command("verify")
def log_verify(
    directory: Annotated[
        Path | None, typer.Option("--dir", help="an export folder instead of the database")
    ] = None,
    key: KeyOpt = None,
    workers: Annotated[int, typer.Option(help="processes checking signatures")] = 0,
    signatures: Annotated[
        str,
        typer.Option(
            help="'all': check every receipt's signature; 'uncovered': only those after the"
            " checkpoint (the ones it covers are authenticated by its signed root)"
        ),
    ] = "all",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Check every receipt's signature and position and that the tree matches the checkpoint."""
    n = workers if workers > 0 else (os.cpu_count() or 1)
    if signatures not in ("all", "uncovered"):
        raise _fail("--signatures must be 'all' or 'uncovered'", 2)
    mode: Literal["all", "uncovered"] = "all" if signatures == "all" else "uncovered"
    if directory is not None:
        if not directory.is_dir():
            raise _fail(f"{directory} is not a folder", 2)
        if key is None:
            raise _fail("--key is required with --dir (do not trust keys shipped with the data)", 2)
        keys = _keys_or_exit(key)
        report = verify_log(directory, keys, workers=n, signatures=mode)
    else:
        cfg = resolve_config(config, home)
        keys = _keys_or_exit(key) if key is not None else _home_keys(cfg)
        if cfg.store.kind == "postgres":
            report = verify_log(build_store(cfg), keys, workers=n, signatures=mode)
        else:
            report = verify_log(_db(cfg), keys, workers=n, signatures=mode)
    if not report.ok:
        raise _fail(f"INVALID: {report.error}")
    out = _out()
    out.print(
        f"ok: {report.size} receipts verified in {report.seconds:.2f}s;"
        f" root {report.root} (checkpoint size {report.checkpoint_size})"
    )
    if report.note:
        out.print(f"note: {report.note}")


@log_app.command("export")
def log_export(
    directory: Annotated[Path, typer.Argument(help="folder to write receipts.jsonl etc. into")],
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write the receipts, a checkpoint covering them and the public keys for offline audit."""
    cfg = resolve_config(config, home)
    store, ledger = _open_ledger(cfg)
    try:
        note = ledger.checkpoint()
        keys = ledger.verifiers()
        count = export_log(store, directory, note, keys)
    finally:
        store.close()
    _out().print(f"exported {count} receipts to {directory}")
    _out().print(
        f"verify with: hybridgate log verify --dir {directory} --key '{keys[0].to_string()}'"
    )


@log_app.command("checkpoint")
def log_checkpoint(
    issue: Annotated[bool, typer.Option(help="issue one if the latest is stale")] = True,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Print the latest signed checkpoint (keep it: `log consistency --old` proves growth)."""
    cfg = resolve_config(config, home)
    store, ledger = _open_ledger(cfg)
    try:
        note = ledger.checkpoint(issue_if_stale=issue)
    finally:
        store.close()
    typer.echo(note, nl=False)


@log_app.command("public-key")
def log_public_key(home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Print the verifier keys, the active one first."""
    cfg = resolve_config(config, home)
    for k in _home_keys(cfg):
        typer.echo(k.to_string())


@log_app.command("consistency")
def log_consistency(
    old: Annotated[Path, typer.Option("--old", help="a checkpoint kept earlier")],
    key: KeyOpt = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Prove the current log extends an earlier checkpoint (detects rollback and forks)."""
    cfg = resolve_config(config, home)
    keys = _keys_or_exit(key) if key is not None else _home_keys(cfg)
    try:
        old_cp = verify_checkpoint(old.read_text(encoding="utf-8"), keys)
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {old}: {exc}", 2) from None
    except NoteError as exc:
        raise _fail(f"INVALID: old checkpoint: {exc}") from None
    store, ledger = _open_ledger(cfg)
    try:
        new_cp = verify_checkpoint(ledger.checkpoint(), keys)
        if new_cp.origin != old_cp.origin:
            raise _fail(
                f"INVALID: old checkpoint is for log {old_cp.origin!r}, not {new_cp.origin!r}"
            )
        if old_cp.size > new_cp.size:
            raise _fail(
                f"INVALID: rollback: the log has {new_cp.size} entries,"
                f" the old checkpoint {old_cp.size}"
            )
        proof = ledger.consistency(old_cp.size, new_cp.size) if old_cp.size else None
    finally:
        store.close()
    if proof is not None:
        try:
            verify_consistency(
                old_cp.size,
                new_cp.size,
                old_cp.root,
                new_cp.root,
                [b64decode(p) for p in proof["proof"]],
            )
        except ProofError as exc:
            raise _fail(f"INVALID: fork: {exc}") from None
    _out().print(
        f"consistent: size {old_cp.size} -> {new_cp.size};"
        " the current log extends the old checkpoint"
    )


__all__ = ["check_receipt_document", "log_app", "parse_keys", "receipt_app"]
