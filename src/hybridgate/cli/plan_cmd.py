"""``hybridgate plan``: cost of ownership, hardware sizing and a recommended starting config."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.cli.catalog_cmd import ConfigOpt, catalog_from
from hybridgate.config import GatewayConfig, load_config
from hybridgate.errors import ConfigError
from hybridgate.planner.bundle import bundle_config, render_yaml
from hybridgate.planner.catalog import Catalog
from hybridgate.planner.hardware import (
    GIB,
    Assumptions,
    MissingFact,
    ModelShape,
    estimate_memory,
    resolve_precision,
)
from hybridgate.planner.options import (
    MeasuredLookup,
    SpecError,
    api_option,
    describe_keys,
    self_host_option,
)
from hybridgate.planner.recommend import (
    PROFILES,
    Constraints,
    Recommendation,
    RetiredModel,
    recommend,
)
from hybridgate.planner.tco import ApiOption, SelfHostOption, TcoReport, Workload, tco
from hybridgate.planner.usage_source import (
    UsageGroup,
    UsageSource,
    UsageUnavailable,
    measured_route_throughput,
    read_usage_sample,
    workload_from_sample,
)

app = typer.Typer(
    name="plan",
    help="Plan: total cost of ownership, GPU memory sizing, recommended bundles.",
    no_args_is_help=True,
)


def _fail(msg: str, code: int = 2) -> typer.Exit:
    typer.echo(msg, err=True)
    return typer.Exit(code)


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


@app.command("tco", epilog=describe_keys())
def tco_cmd(
    requests: Annotated[float | None, typer.Option(min=0, help="requests per month")] = None,
    input_tokens: Annotated[float | None, typer.Option(min=0, help="input tokens/request")] = None,
    output_tokens: Annotated[
        float | None, typer.Option(min=0, help="output tokens/request")
    ] = None,
    peak_factor: Annotated[float, typer.Option(min=1, help="peak over average load")] = 1.0,
    max_response_s: Annotated[
        float | None, typer.Option(help="latency need: seconds per response")
    ] = None,
    api: Annotated[list[str] | None, typer.Option(help="API option: MODEL[:in=X,out=Y]")] = None,
    self_host: Annotated[
        list[str] | None, typer.Option(help="self-hosted option: MODEL:gpus=..,hourly=..,tps=..")
    ] = None,
    explain: Annotated[bool, typer.Option(help="print every formula with its numbers")] = False,
    plot: Annotated[Path | None, typer.Option(help="write cost-vs-volume PNG here")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    from_usage: Annotated[
        bool, typer.Option(help="take the workload from the gateway's usage log")
    ] = False,
    by: Annotated[str | None, typer.Option(help="with --from-usage: team or model")] = None,
    group: Annotated[str | None, typer.Option(help="with --from-usage: the team/model")] = None,
    days: Annotated[float, typer.Option(min=0.01, help="with --from-usage: window")] = 30.0,
    home: Annotated[Path | None, typer.Option(help="gateway home (for --from-usage)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Monthly cost per option, cost per Mtok, break-even volume and month."""
    if fmt not in ("table", "json"):
        raise _fail("--format must be table or json")
    cat = catalog_from(config)
    if from_usage:
        if by not in (None, "team", "model"):
            raise _fail("--by must be team or model")
        db = _database(config, home)
        try:
            grouping: UsageGroup | None = "team" if by == "team" else "model" if by else None
            sample = read_usage_sample(db, by=grouping, group=group, days=days)
            w = workload_from_sample(sample, peak_factor=peak_factor, max_response_s=max_response_s)
        except UsageUnavailable as exc:
            raise _fail(str(exc), 1) from exc
    else:
        if requests is None or input_tokens is None or output_tokens is None:
            raise _fail("give --requests, --input-tokens and --output-tokens (or --from-usage)")
        try:
            w = Workload(requests, input_tokens, output_tokens, peak_factor, max_response_s)
        except ValueError as exc:
            raise _fail(str(exc)) from exc
    apis: list[ApiOption] = []
    hosts: list[SelfHostOption] = []
    notes: list[str] = []
    try:
        for spec in api or []:
            a, n = api_option(spec, cat)
            apis.append(a)
            notes += n
        for spec in self_host or []:
            s, n = self_host_option(spec, cat, w, _measured_lookup(config, home, days))
            hosts.append(s)
            notes += n
        if not apis and not hosts:
            raise SpecError("give at least one --api or --self-host option")
        report = tco(w, apis, hosts)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    if plot is not None:
        from hybridgate.planner.plot import plot_tco

        plot_tco(plot, w, apis, hosts, report)
    if fmt == "json":
        typer.echo(json.dumps(_report_json(report, notes, plot), indent=2))
        return
    _print_report(report, notes, explain)
    if plot is not None:
        typer.echo(f"plot written to {plot}")


def _measured_lookup(config: Path | None, home: Path | None, days: float) -> MeasuredLookup:
    """Reads a route's measured throughput from the usage log, only when a spec asks."""

    def lookup(route: str) -> tuple[float, str]:
        try:
            return measured_route_throughput(_database(config, home), route, days=days)
        except UsageUnavailable as exc:
            raise ValueError(str(exc)) from exc

    return lookup


def _database(config: Path | None, home: Path | None) -> UsageSource:
    """Where the usage log is: the home's SQLite file, or the configured PostgreSQL store."""
    try:
        cfg = load_config(config) if config else GatewayConfig()
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    if home is not None:
        cfg = cfg.model_copy(update={"home": str(home), "database": None})
    return cfg if cfg.store.kind == "postgres" else cfg.database_path


def _report_json(r: TcoReport, notes: list[str], plot: Path | None) -> dict[str, Any]:
    return {
        "workload": asdict(r.workload),
        "options": [asdict(c) for c in r.costs],
        "break_even": [asdict(b) for b in r.break_evens],
        "notes": [*r.notes, *notes],
        "plot": None if plot is None else str(plot),
    }


def _print_report(r: TcoReport, notes: list[str], explain: bool) -> None:
    console = Console(width=140)
    t = Table(title="Monthly cost per option")
    for col in ("option", "kind", "monthly", "per Mtok", "replicas", "latency ok"):
        t.add_column(col, justify="left" if col in ("option", "kind") else "right")
    for c in r.costs:
        lat = "?" if c.latency_ok is None else "yes" if c.latency_ok else "NO"
        t.add_row(
            c.name,
            c.kind,
            _money(c.monthly_usd),
            _money(c.per_mtok_usd),
            "-" if c.replicas is None else str(c.replicas),
            lat,
        )
    console.print(t)
    if r.break_evens:
        b = Table(title="Break-even: self-hosting vs each API")
        for col in ("self-hosted", "vs API", "first at req/mo", "always above", "payback month"):
            b.add_column(col, justify="left" if col in ("self-hosted", "vs API") else "right")
        for be in r.break_evens:
            b.add_row(
                be.self_host,
                be.api,
                "never" if be.first_volume is None else f"{be.first_volume:,.0f}",
                "never" if be.always_volume is None else f"{be.always_volume:,.0f}",
                "never" if be.payback_month is None else str(be.payback_month),
            )
        console.print(b)
    for line in [*r.notes, *notes]:
        typer.echo(f"note: {line}")
    for c in r.costs:
        if c.kind == "self_host":
            typer.echo(f"throughput: {c.formulas[0]}")
    if explain:
        typer.echo("\nformulas:")
        for c in r.costs:
            for f in c.formulas:
                typer.echo(f"  {f}")
        for be in r.break_evens:
            for f in be.formulas:
                typer.echo(f"  {f}")


@app.command("hardware")
def hardware_cmd(
    model: Annotated[str, typer.Option(help="catalog model name")],
    quant: Annotated[
        str,
        typer.Option(
            "--quant",
            "--precision",
            help="native (the format the weights ship in), bf16, fp16, fp8, int8, mxfp4 or int4",
        ),
    ] = "native",
    context: Annotated[int, typer.Option(min=1, help="tokens per sequence")] = 8192,
    batch: Annotated[int, typer.Option(min=1, help="concurrent sequences")] = 1,
    kv_bytes: Annotated[float, typer.Option(min=0.5, help="bytes per KV element")] = 2.0,
    activation_fraction: Annotated[
        float, typer.Option(min=0, help="activations as a fraction of weights + KV")
    ] = 0.10,
    runtime_gib: Annotated[float, typer.Option(min=0, help="fixed GiB per GPU")] = 1.0,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Weights, KV cache and overhead for serving a model, and the GPUs it fits on."""
    if fmt not in ("table", "json"):
        raise _fail("--format must be table or json")
    cat = catalog_from(config)
    entry = cat.find(model)
    if entry is None:
        raise _fail(f"no model {model!r} in the catalog", 1)
    try:
        quant, why = resolve_precision(entry, quant)
    except ValueError as exc:
        raise _fail(str(exc)) from exc
    a = Assumptions(kv_bytes, activation_fraction, runtime_gib)
    try:
        est = estimate_memory(ModelShape.from_entry(entry), quant, context, batch, a)
    except MissingFact as exc:
        raise _fail(f"cannot estimate: {exc} (add it under `catalog:` in your config)", 1) from exc
    if fmt == "json":
        typer.echo(
            json.dumps(
                {
                    "model": est.model,
                    "quant": quant,
                    "precision_reason": why,
                    "context": context,
                    "batch": batch,
                    "weights_gib": est.weights_bytes / GIB,
                    "kv_cache_gib": est.kv_bytes / GIB,
                    "activations_gib": est.activation_bytes / GIB,
                    "runtime_gib_per_gpu": est.runtime_bytes / GIB,
                    "total_gib_one_gpu": est.total_bytes / GIB,
                    "gpus": [
                        {
                            "gpu": f.gpu.name,
                            "memory_gib": f.gpu.memory_gib,
                            "count": f.count,
                            "decode_tokens_per_s_upper_bound": f.decode_tokens_per_s_bound,
                        }
                        for f in est.fits
                    ],
                    "formulas": list(est.formulas),
                    "assumptions": list(est.assumptions),
                },
                indent=2,
            )
        )
        return
    console = Console(width=140)
    typer.echo(f"precision: {why}")
    for f in est.formulas:
        typer.echo(f)
    t = Table(title=f"{est.model} at {quant}, {context:,} context × batch {batch}")
    for col in ("GPU", "memory", "GPUs needed", "decode tok/s upper bound"):
        t.add_column(col, justify="left" if col == "GPU" else "right")
    for fit in est.fits:
        t.add_row(
            fit.gpu.name,
            f"{fit.gpu.memory_gib:g} GB",
            "> 8 (no)" if fit.count is None else str(fit.count),
            "-"
            if fit.decode_tokens_per_s_bound is None
            else f"{fit.decode_tokens_per_s_bound:,.0f}",
        )
    console.print(t)
    for line in est.assumptions:
        typer.echo(f"assumption: {line}")
    typer.echo(
        "decode bound = batch × memory bandwidth × GPUs / (active weights + KV): "
        "a roofline ceiling, not a throughput to plan on"
    )


def _measured_from_config(config: Path | None, cat: Catalog) -> dict[str, float]:
    """Tokens/s per GPU the user measured: on-prem routes' ``price.tokens_per_second``.

    A route's figure is for the whole route; without a GPU count in the config
    it is taken as one GPU's (the conservative reading for sizing).
    """
    if config is None:
        return {}
    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise _fail(str(exc)) from exc
    out: dict[str, float] = {}
    for r in cfg.routes:
        tps = r.price.tokens_per_second
        if r.location == "on_prem" and tps:
            e = cat.find(r.model.removesuffix("-lora"))
            if e is not None and e.self_hostable:
                out[e.name] = tps
    return out


@app.command("recommend")
def recommend_cmd(
    profile: Annotated[str, typer.Option(help=f"one of: {', '.join(PROFILES)}")],
    volume: Annotated[int | None, typer.Option(min=0, help="requests per month, all work")] = None,
    no_external: Annotated[
        bool | None,
        typer.Option(
            "--no-external/--allow-external",
            help="residency: nothing may go to an external API (default: the profile's)",
        ),
    ] = None,
    fine_tune: Annotated[
        bool | None,
        typer.Option(
            "--fine-tune/--no-fine-tune",
            help="the small tier is fine-tuned: its licence must permit it (default: profile's)",
        ),
    ] = None,
    redistribute: Annotated[
        bool | None,
        typer.Option(
            "--redistribute/--no-redistribute",
            help="tuned weights are shipped to others: the licence must permit redistribution",
        ),
    ] = None,
    fine_tune_budget: Annotated[
        float | None, typer.Option(min=0, help="USD for one fine-tuning run of the small model")
    ] = None,
    fine_tune_examples: Annotated[
        int | None, typer.Option(min=1, help="training examples (for the fine-tuning cost)")
    ] = None,
    max_latency: Annotated[
        float | None,
        typer.Option(min=0.001, help="seconds per response, per stream (decode)"),
    ] = None,
    precision: Annotated[
        str, typer.Option(help="native (what the weights ship in), bf16, fp8, int8, mxfp4, int4")
    ] = "native",
    frontier: Annotated[
        str | None, typer.Option(help="your frontier API model (refused if retired)")
    ] = None,
    today: Annotated[
        str | None, typer.Option(help="judge API statuses on this day (YYYY-MM-DD)")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="write a starting hybridgate.yaml here")] = None,
    force: Annotated[bool, typer.Option(help="overwrite --out if it exists")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
    config: ConfigOpt = None,
) -> None:
    """Where each workload should run (frontier API, self-hosted, small tuned), by its numbers."""
    if profile not in PROFILES:
        raise _fail(f"unknown profile {profile!r}; one of: {', '.join(PROFILES)}")
    if fmt not in ("table", "json"):
        raise _fail("--format must be table or json")
    try:
        day = dt.date.fromisoformat(today) if today else None
    except ValueError as exc:
        raise _fail(f"--today: {exc}") from exc
    cat = catalog_from(config)
    c = Constraints(
        no_external=no_external,
        fine_tune=fine_tune,
        redistribute=redistribute,
        fine_tune_budget_usd=fine_tune_budget,
        fine_tune_examples=fine_tune_examples,
        max_latency_s=max_latency,
        precision=precision,
        frontier=frontier,
        today=day,
        measured_tps=_measured_from_config(config, cat),
    )
    try:
        rec = recommend(cat, profile, volume, c)
        data = bundle_config(rec)
    except RetiredModel as exc:
        raise _fail(f"refused: {exc}", 1) from exc
    except (LookupError, ValueError) as exc:
        raise _fail(str(exc), 1) from exc
    if out is not None:
        if out.exists() and not force:
            raise _fail(f"{out} exists; pass --force to overwrite", 1)
        out.write_text(render_yaml(rec, data), encoding="utf-8")
    if fmt == "json":
        typer.echo(json.dumps(_recommend_json(rec, data), indent=2))
        return
    _print_recommendation(rec)
    if out is not None:
        typer.echo(f"wrote {out} (check it with `hybridgate config check {out}`)")


def _recommend_json(rec: Recommendation, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "profile": rec.profile.name,
        "volume": rec.volume,
        "today": str(rec.today),
        "no_external": rec.no_external,
        "picks": {
            k: {
                "model": pk.model.name,
                "api_id": None if pk.gpus is not None or pk.model.api is None else pk.model.api.id,
                "gpus_per_replica": pk.gpus,
                "precision": pk.precision,
                "throughput": None
                if pk.throughput is None
                else {
                    "kind": pk.throughput.kind,
                    "tokens_per_second_per_gpu": pk.throughput.tokens_per_second_per_gpu,
                    "upper_bound": pk.throughput.upper_bound,
                    "source": pk.throughput.source,
                },
                "fine_tune_usd": pk.fine_tune_usd,
                "reasons": [asdict(r) for r in pk.reasons],
            }
            for k, pk in rec.picks.items()
        },
        "workloads": [
            {
                "workload": wp.workload.name,
                "tier": wp.workload.tier,
                "requests_per_month": wp.requests_per_month,
                "model": wp.model,
                "destination": wp.destination,
                "api_model": wp.api_model,
                "api_monthly_usd": wp.api_monthly_usd,
                "self_host_model": wp.self_host_model,
                "self_host_monthly_usd": wp.self_host_monthly_usd,
                "replicas": wp.replicas,
                "break_even_requests": wp.break_even_requests,
                "reasons": [asdict(r) for r in wp.reasons],
            }
            for wp in rec.workloads
        ],
        "assumptions": list(rec.assumptions),
        "config": data,
    }


def _print_recommendation(rec: Recommendation) -> None:
    console = Console(width=160)
    console.print(
        f"[bold]{rec.profile.name}[/bold]: {rec.profile.summary} — {rec.volume:,} requests/month"
        + (" — no external API" if rec.no_external else "")
    )
    t = Table(title="Workloads")
    for col in ("workload", "req/month", "goes to", "API $/mo", "self-host $/mo", "replicas"):
        t.add_column(col, justify="left" if col in ("workload", "goes to") else "right")
    for wp in rec.workloads:
        t.add_row(
            wp.workload.name,
            f"{wp.requests_per_month:,.0f}",
            f"{wp.model} ({wp.destination})",
            _money(wp.api_monthly_usd),
            _money(wp.self_host_monthly_usd),
            "-" if wp.replicas is None else str(wp.replicas),
        )
    console.print(t)
    for wp in rec.workloads:
        typer.echo(f"{wp.workload.name} -> {wp.model}")
        for r in wp.reasons:
            typer.echo(f"  - {r.kind}: {r.text}")
    for key, pk in rec.picks.items():
        typer.echo(f"{key}: {pk.model.name}")
        for r in pk.reasons:
            typer.echo(f"  - {r.kind}: {r.text}")
    for a in rec.assumptions:
        typer.echo(f"assumption: {a}")
