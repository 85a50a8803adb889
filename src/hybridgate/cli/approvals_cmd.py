"""``hybridgate approvals``: list held actions and approve or reject them.

The decision is signed here, on the approver's machine, with the approver's
own key (``--approver-key``); only the signature travels to the gateway, so
the private key never leaves the person it identifies. Before signing, the
parameter hash is recomputed from the parameters shown, so an approver never
signs a hash that does not match what they read.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.actions.model import approval_payload, params_hash, valid_approval_id, valid_name
from hybridgate.ledger import SigningKey

app = typer.Typer(help="Approve or reject agent actions held for a person.", no_args_is_help=True)

UrlOpt = Annotated[str, typer.Option("--url", help="gateway base URL")]
AdminKeyOpt = Annotated[
    str | None,
    typer.Option("--admin-key", envvar="HYBRIDGATE_ADMIN_KEY", help="admin key (or env)"),
]
KeyFileOpt = Annotated[
    Path,
    typer.Option("--approver-key", help="your private approver key file (from keygen)"),
]
DEFAULT_URL = "http://127.0.0.1:4000"


class ApiError(Exception):
    pass


def _request(
    url: str, admin_key: str | None, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    if not admin_key:
        raise ApiError("an admin key is needed: pass --admin-key or set HYBRIDGATE_ADMIN_KEY")
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ApiError(f"--url must be an http(s) URL, got {url!r}")
    data = None if body is None else json.dumps(body).encode("utf-8")
    req = urllib.request.Request(
        url.rstrip("/") + path,
        data=data,
        method=method,
        headers={"authorization": f"Bearer {admin_key}", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read(4 * 1024 * 1024) or b"null")
    except urllib.error.HTTPError as exc:
        raw = exc.read(64 * 1024)
        try:
            message = json.loads(raw)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = raw.decode("utf-8", "replace")[:300]
        raise ApiError(f"gateway answered {exc.code}: {message}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ApiError(f"cannot reach the gateway at {url}: {exc}") from None


def _fail(msg: str) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {msg}")
    return typer.Exit(1)


@app.command("list")
def list_cmd(
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
    status: Annotated[
        str | None, typer.Option(help="pending, approved, rejected or expired (default: all)")
    ] = "pending",
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show held actions (pending ones by default), newest first."""
    query = f"?status={urllib.parse.quote(status)}" if status and status != "all" else ""
    try:
        data = _request(url, admin_key, "GET", "/v1/admin/approvals" + query)["data"]
    except (ApiError, KeyError, TypeError) as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    table = Table("approval", "status", "action", "agent", "team", "params")
    for a in data:
        params = a.get("params")
        table.add_row(
            str(a.get("approval_id")),
            str(a.get("status")),
            str(a.get("action")),
            str(a.get("agent_id")),
            str(a.get("team")),
            json.dumps(params, sort_keys=True) if params is not None else "(not held here)",
        )
    Console(width=200).print(table)


def _decide(
    decision: str, approval_id: str, url: str, admin_key: str | None, key_file: Path
) -> None:
    if not valid_approval_id(approval_id):
        raise _fail(f"{approval_id!r} is not an approval id")
    try:
        key = SigningKey.load(key_file)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot load approver key {key_file}: {exc}") from None
    if not valid_name(key.name):
        raise _fail(f"approver key name {key.name!r} is not a valid approver name")
    try:
        held = _request(url, admin_key, "GET", f"/v1/admin/approvals/{approval_id}")
        if held.get("status") != "pending":
            raise ApiError(f"approval {approval_id} is {held.get('status')}, not pending")
        params = held.get("params")
        if not isinstance(params, dict) or params_hash(params) != held.get("params_hash"):
            raise ApiError("the gateway's params do not match their hash; refusing to sign")
        payload = approval_payload(
            approval_id=approval_id,
            decision=decision,
            action=str(held["action"]),
            params_hash=str(held["params_hash"]),
            agent_id=str(held["agent_id"]),
        )
        sig = base64.b64encode(key.sign(payload)).decode("ascii")
        out = _request(
            url,
            admin_key,
            "POST",
            f"/v1/admin/approvals/{approval_id}",
            {"decision": decision, "approver": key.name, "signature": sig},
        )
    except (ApiError, KeyError, TypeError, AttributeError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(
        f"{out.get('status')} {approval_id}: {held['action']} by {held['agent_id']} "
        f"{json.dumps(params, sort_keys=True)} (signed by {key.name}, "
        f"logged as receipt {out.get('receipt_id')})"
    )


@app.command()
def approve(
    approval_id: Annotated[str, typer.Argument(help="id from `approvals list`")],
    approver_key: KeyFileOpt,
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Approve a held action; the gateway then issues its receipt."""
    _decide("approve", approval_id, url, admin_key, approver_key)


@app.command()
def reject(
    approval_id: Annotated[str, typer.Argument(help="id from `approvals list`")],
    approver_key: KeyFileOpt,
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Reject a held action; the agent is told DENY."""
    _decide("reject", approval_id, url, admin_key, approver_key)


@app.command()
def keygen(
    name: Annotated[str, typer.Option(help="approver name (letters, digits, _ . -)")],
    out: Annotated[Path, typer.Option(help="folder for NAME.key (private) and NAME.pub")],
) -> None:
    """Make an approver key pair. Give NAME.pub to the gateway; keep NAME.key to yourself."""
    if not valid_name(name):
        raise _fail("names are 1-64 letters, digits, '_', '.' or '-', not starting with '.'")
    out.mkdir(parents=True, exist_ok=True)
    private, public = out / f"{name}.key", out / f"{name}.pub"
    if private.exists() or public.exists():
        raise _fail(f"{private} or {public} already exists; not overwriting a key")
    key = SigningKey.generate(name)
    key.save(private)
    public.write_text(key.verifier().to_string() + "\n", encoding="utf-8")
    typer.echo(f"private key: {private} (mode 0600, keep it secret)")
    typer.echo(f"public key:  {public} -> copy into the gateway's approvers_dir")
    typer.echo(f"key id:      {key.key_id}")


@app.command()
def register(
    public_key: Annotated[Path, typer.Argument(help="an approver's NAME.pub file")],
    url: UrlOpt = DEFAULT_URL,
    admin_key: AdminKeyOpt = None,
) -> None:
    """Register an approver's public key with the running gateway (admin API)."""
    try:
        text = public_key.read_text(encoding="utf-8").strip()
        out = _request(url, admin_key, "POST", "/v1/admin/approvers", {"public_key": text})
    except (OSError, UnicodeDecodeError, ApiError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"registered approver {out.get('name')} (key id {out.get('key_id')})")
