"""``hybridgate usage report``: spend, tokens, latency and savings from the usage log."""

from __future__ import annotations

import json
import os
import sqlite3
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.accounting.usage import UsageLog
from hybridgate.config import GatewayConfig, load_config
from hybridgate.errors import ConfigError, GatewayError
from hybridgate.store.factory import build_store

app = typer.Typer(name="usage", help="Usage, cost and savings reports.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Usage, cost and savings reports from the gateway's usage log."""


class By(StrEnum):
    team = "team"
    route = "route"
    location = "location"
    day = "day"
    key = "key"
    model = "model"
    adapter = "adapter"


class Format(StrEnum):
    table = "table"
    json = "json"


def _config(home: Path | None, config: Path | None) -> GatewayConfig:
    """``--config`` names the store (SQLite ``database:`` or home, or PostgreSQL); else the
    home (``--home``, ``$HYBRIDGATE_HOME`` or ~/.hybridgate) and its gateway.db."""
    if config is not None:
        try:
            cfg = load_config(config)
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        if home is not None:
            cfg = cfg.model_copy(update={"home": str(home)})
        return cfg
    base = home or Path(os.environ.get("HYBRIDGATE_HOME") or "~/.hybridgate")
    return GatewayConfig(home=str(base.expanduser()))


def _money(v: str) -> str:
    return f"${v}"


def _num(v: float | None, unit: str = "") -> str:
    return "-" if v is None else f"{v:,.1f}{unit}"


def _render_table(console: Console, by: str | None, rows: list[dict[str, Any]]) -> None:
    t = Table(
        by or "scope",
        "requests",
        "ok",
        "refused",
        "errors",
        "tokens in",
        "tokens out",
        "cost",
        "baseline",
        "saved",
        "saved %",
        "avg latency",
        "time saved",
        title="hybridgate usage",
    )
    for r in rows:
        t.add_row(
            "(none)" if r["group"] is None else str(r["group"]),
            str(r["requests"]),
            str(r["ok"]),
            str(r["refused"]),
            str(r["errors"]),
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
            _money(r["cost_usd"]),
            _money(r["baseline_cost_usd"]),
            _money(r["saved_usd"]),
            "-" if r["saved_pct"] is None else f"{r['saved_pct']:.2f}%",
            _num(r["latency_ms_avg"], " ms"),
            "-" if r["time_saved_ms"] is None else f"{r['time_saved_ms'] / 1000:,.3f} s",
        )
    console.print(t)


@app.command()
def report(
    by: Annotated[By | None, typer.Option(help="group rows by this field")] = None,
    home: Annotated[
        Path | None,
        typer.Option("--home", help="gateway home (default: $HYBRIDGATE_HOME or ~/.hybridgate)"),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="hybridgate.yaml naming the database")
    ] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table or json")] = Format.table,
    since_days: Annotated[
        float | None, typer.Option(help="only the last N days (default: everything)", min=0)
    ] = None,
    key: Annotated[str | None, typer.Option(help="only this key id")] = None,
) -> None:
    """Spend, tokens, latency, and savings against sending everything to the strongest route.

    The baseline is the same tokens priced on the most expensive route of each
    request's virtual model; time saved compares that route's average observed
    latency with each answered request's actual latency. A task adapter registered
    with ``--replaces ROUTE`` is measured against that route instead, so
    ``--by adapter`` shows what each adapter's calls would have cost and taken
    on the frontier route it took over from.
    """
    cfg = _config(home, config)
    path = cfg.database_path
    if cfg.store.kind == "sqlite" and not path.exists():
        typer.echo(f"no gateway database at {path}", err=True)
        raise typer.Exit(1)
    since_ns = None if since_days is None else time.time_ns() - int(since_days * 86400e9)
    store = build_store(cfg)  # SQLite, or the PostgreSQL database every replica writes
    where = "PostgreSQL" if cfg.store.kind == "postgres" else str(path)
    try:
        store.open(UsageLog.migrations())
        log = UsageLog(store)
        summary = log.summary(key_id=key, since_ns=since_ns)
        rows = log.report(by=by.value, since_ns=since_ns, key_id=key) if by else []
    except GatewayError as exc:
        typer.echo(f"cannot read usage: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    except sqlite3.Error as exc:
        typer.echo(f"cannot read usage from {where}: {exc}", err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    if fmt is Format.json:
        out: dict[str, Any] = {"summary": summary}
        if by:
            out["by"] = by.value
            out["rows"] = rows
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console(width=200)
    if by:
        _render_table(console, by.value, rows)
    total = dict(summary, group="total")
    _render_table(console, "total" if by else None, [total])
    console.print(f"[dim]savings: {summary['savings_method']}[/dim]")
