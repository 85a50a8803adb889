"""``hybridgate policy``: the policy's hash, and what it would decide for a request.

``explain`` runs the same scan and evaluation the gateway runs, on a prompt or
a request file, and sends nothing anywhere. It prints finding types, classes
and positions, the decision and its reasons, and (for ``redact``) the request
as it would leave, with placeholders; it never prints the sensitive values.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.cli.common import ConfigOpt, resolve_config
from hybridgate.config import GatewayConfig
from hybridgate.errors import ConfigError, GatewayError
from hybridgate.pipeline import decide, scan_body
from hybridgate.policy import Decision, Principal, RouteFacts, mask_request, policy_hash
from hybridgate.policy.model import Action
from hybridgate.routing.table import RouteTable
from hybridgate.scan import build_scanner, path_str
from hybridgate.scan.findings import RequestScan, Segment

app = typer.Typer(
    name="policy", help="Inspect the policy: its hash and its decisions.", no_args_is_help=True
)

#: Request files larger than this are refused (the gateway's own default body limit).
MAX_REQUEST_BYTES = 4 * 1024 * 1024


class Format(StrEnum):
    table = "table"
    json = "json"


@app.callback()
def _group() -> None:
    """Inspect the policy: its hash and what it decides, without sending anything."""


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(2)


@app.command("hash")
def hash_cmd(config: ConfigOpt = None) -> None:
    """Print the SHA-256 of the policy's canonical JSON (the hash receipts carry)."""
    cfg = resolve_config(config, None)
    typer.echo(policy_hash(cfg.policy))


def _request(model: str, text: str | None, file: Path | None) -> dict[str, Any]:
    if (text is None) == (file is None):
        raise _fail("give exactly one of --text or --file")
    if text is not None:
        return {"model": model, "messages": [{"role": "user", "content": text}]}
    assert file is not None
    try:
        if file.stat().st_size > MAX_REQUEST_BYTES:
            raise _fail(f"{file}: larger than {MAX_REQUEST_BYTES} bytes")
        body = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _fail(f"{file}: cannot read a JSON request: {exc}") from exc
    if not isinstance(body, dict):
        raise _fail(f"{file}: the request must be a JSON object")
    return {**body, "model": model}


def _candidates(cfg: GatewayConfig, model: str) -> list[RouteFacts]:
    """The virtual model's routes, from the same route table the pipeline uses."""
    return list(RouteTable.from_config(cfg).candidates.get(model, ()))


def _scan(cfg: GatewayConfig, body: dict[str, Any]) -> tuple[list[Segment], RequestScan]:
    try:
        scanner = build_scanner(cfg.scanner)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    return scan_body(scanner, body)  # the pipeline's own scan: fail closed the same way


def _report(
    model: str,
    body: dict[str, Any],
    segments: list[Segment],
    scan: RequestScan,
    candidates: list[RouteFacts],
    decision: Decision,
) -> dict[str, Any]:
    findings = [
        {"path": path_str(segments[sf.segment].path), **f.as_dict()}
        for sf in scan.segments
        for f in sf.findings
    ]
    out: dict[str, Any] = {
        "model": model,
        "action": decision.action.value,
        "candidates": [r.name for r in candidates],
        "permitted": list(decision.permitted),
        "data_classes": list(decision.data_classes),
        "scan_complete": scan.complete and not scan.unscannable,
        "unscannable": list(scan.unscannable),
        "findings": findings,
        "masks": [
            {
                "path": path_str(segments[m.segment].path),
                "start": m.start,
                "end": m.end,
                "type": m.type,
            }
            for m in decision.masks
        ],
        "reasons": list(decision.reasons),
        "policy_hash": decision.policy_hash,
        "log_prompts": decision.log_prompts,
    }
    if decision.action is Action.REDACT and decision.masks:
        try:
            masked, _ = mask_request(body, segments, decision)
        except GatewayError as exc:
            out["masked_request_error"] = exc.message
        else:
            out["masked_request"] = masked
    return out


def _print_table(report: dict[str, Any], console: Console) -> None:
    summary = Table(title=f"policy decision for model {report['model']!r}", show_header=False)
    summary.add_column("field", style="bold")
    summary.add_column("value")
    summary.add_row("action", report["action"])
    summary.add_row("data classes", ", ".join(report["data_classes"]) or "none")
    summary.add_row("scan complete", "yes" if report["scan_complete"] else "NO (fail closed)")
    summary.add_row("candidates", ", ".join(report["candidates"]) or "none configured")
    summary.add_row("permitted", ", ".join(report["permitted"]) or "none")
    summary.add_row("masked findings", str(len(report["masks"])))
    summary.add_row("log prompts", "yes" if report["log_prompts"] else "no")
    summary.add_row("policy hash", report["policy_hash"])
    console.print(summary)
    if report["findings"]:
        ft = Table(title="findings (values not shown)")
        for col in ("path", "type", "class", "span", "detector"):
            ft.add_column(col)
        for f in report["findings"]:
            ft.add_row(f["path"], f["type"], f["class"], f"{f['start']}-{f['end']}", f["detector"])
        console.print(ft)
    console.print("[bold]reasons[/bold]")
    for r in report["reasons"]:
        console.print(f"  - {r}", markup=False, highlight=False)
    if "masked_request" in report:
        console.print("[bold]would send (masked)[/bold]")
        console.print_json(json.dumps(report["masked_request"], ensure_ascii=False))


@app.command("explain")
def explain(
    model: Annotated[str, typer.Option("--model", "-m", help="virtual model or route name")],
    text: Annotated[str | None, typer.Option("--text", "-t", help="a user prompt")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="an OpenAI chat request (JSON)")
    ] = None,
    config: ConfigOpt = None,
    team: Annotated[str | None, typer.Option(help="team whose overrides apply")] = None,
    key_id: Annotated[
        str | None, typer.Option("--key-id", help="key whose overrides apply")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="output format")] = Format.table,
) -> None:
    """Scan a request and show what the policy decides, without sending anything."""
    cfg = resolve_config(config, None)
    body = _request(model, text, file)
    segments, scan = _scan(cfg, body)
    candidates = _candidates(cfg, model)
    try:
        decision = decide(
            scan,
            Principal(key_id=key_id, team=team),
            candidates,
            cfg.policy,
            policy_hash(cfg.policy),
        )
    except GatewayError as exc:
        raise _fail(exc.message) from exc
    report = _report(model, body, segments, scan, candidates, decision)
    if fmt is Format.json:
        typer.echo(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        _print_table(report, Console())
