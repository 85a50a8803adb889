"""``hybridgate catalog``: the models the planner knows, their licences, each fact's source."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from rich.console import Console
from rich.table import Table

from hybridgate.config import load_config
from hybridgate.errors import ConfigError
from hybridgate.planner.catalog import Catalog, CatalogEntry, CatalogFilter, load_catalog
from hybridgate.planner.check import check_counts, config_findings, stale_facts

app = typer.Typer(
    name="catalog",
    help="Model catalog: openness, licence terms, size, prices — every fact with its source.",
    no_args_is_help=True,
)

Format = Literal["table", "json"]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="hybridgate.yaml whose `catalog:` adds entries"),
]
FormatOpt = Annotated[str, typer.Option("--format", help="table or json")]


def catalog_from(config: Path | None) -> Catalog:
    """The shipped catalog plus the config's entries; errors exit 2 with the message."""
    try:
        extra = _config_catalog(config) if config else []
        return load_catalog(extra)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _config_catalog(config: Path) -> list[dict[str, Any]]:
    """The config's ``catalog:`` entries; a config whose keys are unset still yields them."""
    try:
        return load_config(config).catalog
    except ConfigError:
        try:
            raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError(f"{config}: cannot read: {exc}") from exc
        extra = raw.get("catalog") if isinstance(raw, dict) else None
        if extra is None:
            return []
        if not isinstance(extra, list):
            raise ConfigError(f"{config}: `catalog` must be a list") from None
        return extra


def _fmt(value: str) -> Format:
    if value not in ("table", "json"):
        typer.echo("--format must be table or json", err=True)
        raise typer.Exit(2)
    return "json" if value == "json" else "table"


def _mau(e: CatalogEntry) -> str:
    t = e.licence.mau_threshold
    return "?" if t is None else "none" if t == "none" else f"{t:,}"


def _yn(v: bool | None) -> str:
    return "?" if v is None else "yes" if v else "no"


def _b(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"


def summary_row(e: CatalogEntry) -> dict[str, Any]:
    p, pr = e.params, e.pricing
    return {
        "name": e.name,
        "organization": e.organization,
        "released": None if e.release is None or e.release.date is None else str(e.release.date),
        "openness": e.level,
        "licence": e.licence.id,
        "commercial": e.licence.commercial_use,
        "mau_threshold": e.licence.mau_threshold,
        "params_b": None if p is None else p.total_b,
        "active_b": None if p is None else p.active_b,
        "context": None if e.context is None else e.context.tokens,
        "input_per_mtok": None if pr is None else pr.input_per_mtok,
        "output_per_mtok": None if pr is None else pr.output_per_mtok,
        "api_id": None if e.api is None else e.api.id,
        "api_status": e.api_status(dt.date.today()),
        "training_on_outputs": None
        if e.output_terms is None
        else e.output_terms.training_other_models,
    }


@app.command("list")
def list_models(
    min_openness: Annotated[
        int | None, typer.Option(min=1, max=5, help="1 closed … 5 weights+code+data open")
    ] = None,
    commercial: Annotated[bool, typer.Option(help="only licences allowing commercial use")] = False,
    mau: Annotated[
        int | None,
        typer.Option(
            "--mau",
            "--max-mau-threshold",
            min=0,
            help="your monthly active users: keep models whose licence has no user threshold "
            "or one above this (an unknown threshold never qualifies)",
        ),
    ] = None,
    licence: Annotated[
        list[str] | None, typer.Option(help="licence id (repeatable), e.g. apache-2.0")
    ] = None,
    self_hostable: Annotated[
        bool | None,
        typer.Option("--self-hostable/--api-only", help="weights available, or API only"),
    ] = None,
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
) -> None:
    """List models, filtered by openness and licence terms."""
    out = _fmt(fmt)
    cat = catalog_from(config)
    flt = CatalogFilter(
        min_openness=min_openness,
        commercial=commercial,
        users=mau,
        licences=frozenset(licence or ()),
        self_hostable=self_hostable,
    )
    rows = [summary_row(e) for e in cat.filter(flt)]
    if out == "json":
        typer.echo(json.dumps(rows, indent=2))
        return
    t = Table(title=f"{len(rows)} of {len(cat)} models")
    for col in (
        "model",
        "org",
        "released",
        "open",
        "licence",
        "comm.",
        "MAU limit",
        "params B",
        "active B",
        "context",
        "$/Mtok in",
        "$/Mtok out",
        "API status",
    ):
        t.add_column(col, justify="right" if col[0] in "$pac" and col != "model" else "left")
    for r in rows:
        e = cat.get(r["name"])
        t.add_row(
            r["name"],
            r["organization"],
            r["released"] or "?",
            str(r["openness"]),
            r["licence"],
            _yn(r["commercial"]),
            _mau(e),
            _b(r["params_b"]),
            _b(r["active_b"]),
            "?" if r["context"] is None else f"{r['context']:,}",
            "-" if r["input_per_mtok"] is None else f"{r['input_per_mtok']:g}",
            "-" if r["output_per_mtok"] is None else f"{r['output_per_mtok']:g}",
            r["api_status"] or "-",
        )
    Console(width=170).print(t)
    typer.echo("? = not known (null in the catalog); - = not sold as an API in the catalog")


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="model name or alias")],
    fmt: FormatOpt = "table",
    config: ConfigOpt = None,
) -> None:
    """Every fact about one model, each with its source."""
    out = _fmt(fmt)
    cat = catalog_from(config)
    e = cat.find(name)
    if e is None:
        typer.echo(f"no model {name!r}; try `hybridgate catalog list`", err=True)
        raise typer.Exit(1)
    data = e.model_dump(mode="json")
    if out == "json":
        typer.echo(json.dumps(data, indent=2))
        return
    t = Table(title=f"{e.name} ({e.organization})", show_lines=False)
    t.add_column("fact")
    t.add_column("value")
    t.add_column("source", overflow="fold")
    t.add_row("aliases", ", ".join(e.aliases) or "-", e.source)
    groups = ("release", "openness", "licence", "params", "context", "architecture", "pricing")
    for group in (*groups, "api"):
        facts = data.get(group)
        if group == "api" and facts is None:
            continue
        if facts is None:
            t.add_row(group, "- (not sold as an API)" if group == "pricing" else "?", "")
            continue
        for key, value in facts.items():
            if key in ("source", "sources", "note", "output_use"):
                continue
            shown = (
                ("never" if key == "checked" else "?")
                if value is None
                else "; ".join(value)
                if isinstance(value, list)
                else value
            )
            src = facts["sources"].get(key, facts["source"])
            t.add_row(f"{group}.{key}", str(shown) if shown != [] else "-", src)
        if facts.get("note"):
            t.add_row(f"{group} note", facts["note"], "")
    ou = e.output_terms
    if ou is not None:
        where = "output_use" if e.output_use is not None else "licence.output_use"
        for key, value in ou.model_dump(mode="json").items():
            if key in ("source", "sources", "note") or value is None:
                continue
            t.add_row(f"{where}.{key}", str(value), ou.sources.get(key, ou.source))
    if e.api is not None:
        t.add_row("api.status today", e.api.status_on(dt.date.today()), e.api.source)
    for tp in e.throughput:
        t.add_row(f"throughput {tp.gpu} {tp.quant}", f"{tp.tokens_per_second:g} tok/s", tp.source)
    Console(width=160).print(t)


@app.command("check")
def check(
    max_age_days: Annotated[
        int, typer.Option(min=0, help="facts checked longer ago than this are listed")
    ] = 180,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="hybridgate.yaml: its `catalog:` entries and its routes' ids"
        ),
    ] = None,
    today: Annotated[str | None, typer.Option(help="judge as of this day (YYYY-MM-DD)")] = None,
    strict: Annotated[bool, typer.Option(help="exit 1 on stale facts too")] = False,
    fmt: FormatOpt = "table",
) -> None:
    """Facts due for re-checking, and retired or deprecated model ids in your config.

    Exit 1 when the config routes to a retired or deprecated id (or, with
    --strict, when any fact is stale); 0 otherwise.
    """
    out = _fmt(fmt)
    try:
        day = dt.date.fromisoformat(today) if today else dt.date.today()
    except ValueError as exc:
        typer.echo(f"--today: {exc}", err=True)
        raise typer.Exit(2) from exc
    cat = catalog_from(config)
    stale = stale_facts(cat, day, max_age_days)
    counts = check_counts(cat)
    findings = []
    if config is not None:
        try:
            raw = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            typer.echo(f"{config}: cannot read: {exc}", err=True)
            raise typer.Exit(2) from exc
        findings = config_findings(cat, raw, day)
    broken = [f for f in findings if f.severity in ("retired", "deprecated")]
    if out == "json":
        typer.echo(
            json.dumps(
                {
                    "today": str(day),
                    "max_age_days": max_age_days,
                    "stale": [
                        {
                            "model": s.model,
                            "group": s.group,
                            "checked": None if s.checked is None else str(s.checked),
                            "reason": s.reason,
                            "source": s.source,
                        }
                        for s in stale
                    ],
                    "config": [f.__dict__ for f in findings],
                    "checked": {
                        "fact_groups": counts.total,
                        "live": counts.live,
                        "stored_copy": counts.stored_copy,
                        "never": counts.unchecked,
                    },
                },
                indent=2,
            )
        )
    else:
        by_model: dict[str, tuple[list[str], list[str]]] = {}
        for s in stale:
            never, old = by_model.setdefault(s.model, ([], []))
            if s.checked is None and s.note is None:
                never.append(s.group)
            else:
                old.append(f"{s.group} ({s.reason})")
        if by_model:
            t = Table(title=f"Facts to re-check (older than {max_age_days} days or never checked)")
            t.add_column("model")
            t.add_column("never checked", overflow="fold")
            t.add_column("stale", overflow="fold")
            for model, (never, old) in by_model.items():
                t.add_row(model, ", ".join(never) or "-", "; ".join(old) or "-")
            Console(width=160).print(t)
        typer.echo(
            f"{len(stale)} fact group(s) in {len(by_model)} model(s) and GPU(s) due for "
            f"re-checking against their sources (as of {day})"
        )
        typer.echo(
            f"{counts.live + counts.stored_copy} of {counts.total} fact group(s) compared with "
            f"their source ({counts.stored_copy} against a stored copy of it, {counts.live} "
            f"live); {counts.unchecked} never"
        )
        for f in findings:
            typer.echo(f"route {f.route}: {f.severity}: {f.message}")
        if config is not None and not findings:
            typer.echo(f"{config}: every external route sends an active, pinned model id")
    if broken or (strict and stale):
        raise typer.Exit(1)
