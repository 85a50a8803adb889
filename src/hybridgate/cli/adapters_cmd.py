"""``hybridgate adapters``: register, list, show and remove task adapters.

Works on the gateway's database whether or not the gateway is running; a
running gateway picks up changes within a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.adapters import Adapter, open_registry
from hybridgate.cli.common import ConfigOpt, HomeOpt, resolve_config
from hybridgate.errors import GatewayError

app = typer.Typer(help="Task adapters (LoRA) the gateway serves and offers as tools.")
console = Console()


def _load_schema(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        typer.echo(f"{path}: cannot read a JSON schema: {exc}", err=True)
        raise typer.Exit(2) from exc
    if not isinstance(data, dict):
        typer.echo(f"{path}: the schema must be a JSON object", err=True)
        raise typer.Exit(2)
    return data


def _show(a: Adapter) -> None:
    typer.echo(json.dumps(a.as_dict(), indent=2, sort_keys=True))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="tool name: a-z, 0-9, '_' or '-'")],
    path: Annotated[Path, typer.Argument(help="PEFT adapter directory or .gguf LoRA file")],
    base: Annotated[str, typer.Option("--base", help="base model it was trained on")],
    task: Annotated[str | None, typer.Option(help="what it does (the tool description)")] = None,
    schema: Annotated[
        Path | None, typer.Option(help="JSON schema of the tool's input (an object schema)")
    ] = None,
    replaces: Annotated[
        str | None, typer.Option(help="route its calls would otherwise go to (for savings)")
    ] = None,
    replace: Annotated[bool, typer.Option(help="replace an adapter of the same name")] = False,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Register an adapter: digest its files, store a copy, print its id."""
    cfg = resolve_config(config, home)
    input_schema = _load_schema(schema)
    reg, store = open_registry(cfg)
    try:
        a = reg.register(
            name,
            path,
            base=base,
            task=task,
            input_schema=input_schema,
            replaces=replaces,
            replace=replace,
        )
    except GatewayError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(f"{a.name} sha256:{a.sha256}")


@app.command("list")
def list_cmd(
    config: ConfigOpt = None,
    home: HomeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines")] = False,
) -> None:
    """List registered adapters."""
    reg, store = open_registry(resolve_config(config, home))
    try:
        rows = reg.list()
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in rows]))
        return
    t = Table("name", "id", "base", "format", "size", "task")
    for a in rows:
        t.add_row(a.name, a.short_id, a.base, a.format, f"{a.size_bytes:,}", a.task or "")
    console.print(t)


@app.command("show")
def show(name: str, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Show one adapter as JSON (id, base, task, input schema, stored path)."""
    reg, store = open_registry(resolve_config(config, home))
    try:
        a = reg.get(name)
    finally:
        store.close()
    if a is None:
        typer.echo(f"no adapter named {name!r}", err=True)
        raise typer.Exit(1)
    _show(a)


@app.command("remove")
def remove(name: str, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Unregister an adapter (a running gateway stops serving it within a second)."""
    reg, store = open_registry(resolve_config(config, home))
    try:
        a = reg.remove(name)
    except GatewayError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(f"removed {a.name} sha256:{a.sha256}")
