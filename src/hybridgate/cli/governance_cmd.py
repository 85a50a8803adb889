"""``hybridgate policy propose|sign|apply|history`` and ``policy governance-sign``.

Proposing, signing and applying talk to the running gateway's admin API.
Signing happens here, on the approver's machine, with the approver's own key
(the ``approvals keygen`` format): the command fetches the proposal, recomputes
the policy's hash from the policy it shows, and signs only if it matches, so
an approver never signs a hash that differs from what they read.
``history`` reads only the receipt log (the database or an export folder) and
needs neither the gateway nor its database with ``--dir``.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from hybridgate.cli.approvals_cmd import DEFAULT_URL, AdminKeyOpt, ApiError, UrlOpt
from hybridgate.cli.approvals_cmd import _request as api_request
from hybridgate.cli.common import ConfigOpt, HomeOpt, resolve_config
from hybridgate.cli.ledger_cmd import KeyOpt, parse_keys
from hybridgate.governance.audit import Trace, trace_governance
from hybridgate.governance.model import (
    GovernanceDoc,
    GovernanceError,
    Signature,
    governance_payload,
    proposal_payload,
    valid_proposal_id,
)
from hybridgate.ledger import SigningKey, verify_log
from hybridgate.policy.holder import policy_hash
from hybridgate.policy.model import PolicyConfig

MAX_POLICY_BYTES = 1024 * 1024


def _fail(msg: str, code: int = 1) -> typer.Exit:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"error: {msg}")
    return typer.Exit(code)


def _load_key(path: Path) -> SigningKey:
    try:
        return SigningKey.load(path)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot load key {path}: {exc}", 2) from None


def _read_yaml(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise _fail(f"{path} is larger than {MAX_POLICY_BYTES} bytes", 2)
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise _fail(f"cannot read {path}: {exc}", 2) from None


def propose(
    file: Annotated[Path, typer.Argument(help="the complete new policy (YAML or JSON)")],
    note: Annotated[str, typer.Option(help="why, for the approvers")] = "",
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Record a proposal: the full new policy, its hash and its diff against the active one."""
    raw = _read_yaml(file)
    if isinstance(raw, dict) and set(raw) == {"policy"}:
        raw = raw["policy"]
    try:
        out = api_request(
            url, admin_key, "POST", "/v1/admin/policy/proposals", {"policy": raw, "note": note}
        )
    except ApiError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"proposal {out['proposal_id']}")
    typer.echo(f"policy hash {out['policy_hash']} (replacing {out['base_policy_hash']})")
    typer.echo(f"needs {out['threshold']} signature(s)", nl=False)
    typer.echo(
        "; tightens only: one approver may apply it as an emergency change"
        if out.get("tightens_only")
        else ""
    )
    typer.echo(out.get("diff") or "(no textual difference)")


def sign(
    proposal: Annotated[str, typer.Argument(help="proposal id (prop_...)")],
    key: Annotated[Path, typer.Option("--key", help="your approver key file (NAME.key)")],
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Sign a proposal with your approver key, after checking the hash of what you read."""
    if not valid_proposal_id(proposal):
        raise _fail(f"{proposal!r} is not a proposal id", 2)
    signer = _load_key(key)
    try:
        p = api_request(url, admin_key, "GET", f"/v1/admin/policy/proposals/{proposal}")
        if p.get("status") != "open":
            raise ApiError(f"proposal is {p.get('status')}, not open")
        if policy_hash(PolicyConfig.model_validate(p["policy"])) != p["policy_hash"]:
            raise ApiError("the gateway's policy does not match its hash; refusing to sign")
        payload = proposal_payload(
            proposal_id=proposal,
            policy_hash=p["policy_hash"],
            base_policy_hash=p["base_policy_hash"],
        )
        sig = base64.b64encode(signer.sign(payload)).decode("ascii")
        out = api_request(
            url,
            admin_key,
            "POST",
            f"/v1/admin/policy/proposals/{proposal}/signatures",
            {"approver": signer.name, "signature": sig},
        )
    except (ApiError, KeyError, TypeError, ValueError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"signed {proposal} as {signer.name}: {len(out['valid_signers'])} of"
        f" {out['threshold']} signature(s) ({', '.join(out['valid_signers'])})"
    )


def apply(
    proposal: Annotated[str, typer.Argument(help="proposal id (prop_...)")],
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Make a proposal the active policy (M signatures, or one for a tightening)."""
    if not valid_proposal_id(proposal):
        raise _fail(f"{proposal!r} is not a proposal id", 2)
    try:
        out = api_request(
            url, admin_key, "POST", f"/v1/admin/policy/proposals/{proposal}/apply", {}
        )
    except ApiError as exc:
        raise _fail(str(exc)) from None
    kind = "EMERGENCY (tightening) change" if out["approval"] == "emergency" else "change"
    typer.echo(
        f"applied {kind}: policy {out['policy_hash']} signed by {', '.join(out['signers'])};"
        f" receipt {out['receipt_id']}"
    )


def governance_sign(
    file: Annotated[Path, typer.Argument(help="the new governance document (YAML or JSON)")],
    key: Annotated[Path, typer.Option("--key", help="your approver key file (NAME.key)")],
) -> None:
    """Add your signature to a new governance document (rotation needs M of N current ones)."""
    signer = _load_key(key)
    raw = _read_yaml(file)
    try:
        doc = GovernanceDoc.parse(raw)
    except GovernanceError as exc:
        raise _fail(str(exc), 2) from None
    sig = base64.b64encode(signer.sign(governance_payload(doc.hash()))).decode("ascii")
    sigs = [s for s in doc.signatures if s.approver != signer.name]
    sigs.append(Signature(approver=signer.name, key_id=signer.key_id, sig=sig))
    new = doc.model_copy(update={"signatures": sigs})
    text = yaml.safe_dump(new.model_dump(mode="json"), sort_keys=False)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, file)
    typer.echo(f"signed governance version {doc.version} ({doc.hash()}) as {signer.name}")


def _bodies(db: Path | None, directory: Path | None) -> Iterator[dict[str, Any]]:
    if directory is not None:
        with (directory / "receipts.jsonl").open("rb") as fh:
            for line in fh:
                yield json.loads(line)["receipt"]
        return
    assert db is not None
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        for (data,) in conn.execute("SELECT data FROM ledger_entries ORDER BY idx"):
            yield json.loads(bytes(data))["receipt"]
    finally:
        conn.close()


def _print_trace(trace: Trace, receipt: str | None, phash: str | None) -> None:
    out = Console(highlight=False, soft_wrap=True, width=200)
    for version, h, rid in trace.governance:
        out.print(f"governance v{version} {h} (receipt {rid})")
    table = Table("log index", "applied (UTC ns)", "policy hash", "approval", "signed by")
    for p in trace.policies:
        who = ", ".join(f"{s['approver']} ({s['key_id']}) at {s['signed_ns']}" for s in p.signers)
        table.add_row(
            str(p.log_index), str(p.applied_ns), p.policy_hash, p.approval, who or "(none)"
        )
    out.print(table)
    target = phash
    if receipt is not None:
        target = trace.by_receipt.get(receipt)
        if target is None:
            raise _fail(f"receipt {receipt} is not a request or action receipt after governance")
    if target is not None:
        found = trace.approval_of(target)
        if found is None:
            raise _fail(f"policy {target} was never approved in this log")
        who = ", ".join(f"{s['approver']} at {s['signed_ns']}" for s in found.signers)
        lead = f"receipt {receipt}: " if receipt else ""
        out.print(
            f"{lead}policy {target} applied at log index {found.log_index}"
            f" ({found.approval}, governance v{found.governance_version},"
            f" proposal {found.proposal_id}); approved by {who or 'nobody (bootstrap)'}"
        )


def history(
    verify: Annotated[bool, typer.Option(help="verify every receipt and the tree first")] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="an export folder instead of the database")
    ] = None,
    key: KeyOpt = None,
    root: Annotated[
        str | None, typer.Option(help="pinned hash of the first governance document")
    ] = None,
    receipt: Annotated[str | None, typer.Option(help="trace this receipt's policy")] = None,
    policy: Annotated[str | None, typer.Option("--policy-hash", help="trace this policy")] = None,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Every applied policy with who approved it and when, replayed from the receipt log.

    Offline: each approval's signatures are checked against the governance in force,
    emergency changes are re-checked to only tighten, and every receipt's policy hash
    must be an approved policy applied before it."""
    db: Path | None = None
    if directory is None:
        cfg = resolve_config(config, home)
        db = cfg.database_path
        if not db.is_file():
            raise _fail(f"no receipt log at {db}", 2)
    if verify:
        if key is None and directory is not None:
            raise _fail("--key is required with --dir (do not trust keys shipped with the data)", 2)
        try:
            if key is not None:
                keys = parse_keys(key)
            else:
                from hybridgate.ledger import KeyRing

                keys = KeyRing.load(resolve_config(config, home).home_path / "keys").verifiers()
        except (OSError, ValueError) as exc:
            raise _fail(f"cannot read keys: {exc}", 2) from None
        report = verify_log(directory if directory is not None else db, keys)  # type: ignore[arg-type]
        if not report.ok:
            raise _fail(f"INVALID log: {report.error}")
        typer.echo(f"log ok: {report.size} receipts, root {report.root}")
    try:
        trace = trace_governance(_bodies(db, directory), pinned_root=root)
    except (OSError, ValueError, KeyError, sqlite3.Error) as exc:
        raise _fail(f"cannot read the log: {exc}", 2) from None
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if not trace.governance and trace.ok:
        raise _fail("no governance document in this log", 1)
    if trace.governance:
        _print_trace(trace, receipt, policy)
    if not trace.ok:
        for p in trace.problems[:20]:
            err.print(f"INVALID: {p}")
        raise typer.Exit(1)
    typer.echo(
        f"ok: {len(trace.policies)} approved policies; {trace.receipts_checked} receipts"
        " decided under an approved policy"
    )


def register(app: typer.Typer) -> None:
    app.command("propose")(propose)
    app.command("sign")(sign)
    app.command("apply")(apply)
    app.command("history")(history)
    app.command("governance-sign")(governance_sign)
