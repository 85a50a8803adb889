"""Core commands: serve, keys, config."""

from __future__ import annotations

import json
import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.cli.common import ConfigOpt, HomeOpt, resolve_config
from hybridgate.config import config_schema, load_config
from hybridgate.errors import ConfigError, GatewayError
from hybridgate.keys import KeyStore
from hybridgate.runtime import load_or_create_secret
from hybridgate.store import Store, build_store

keys_app = typer.Typer(
    help="Virtual API keys: shown once, stored only as a hash.", no_args_is_help=True
)
config_app = typer.Typer(help="Validate configuration and print its schema.", no_args_is_help=True)
console = Console()


def register(root: typer.Typer) -> None:
    @root.command()
    def serve(
        config: ConfigOpt = None,
        home: HomeOpt = None,
        host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1)")] = None,
        port: Annotated[int | None, typer.Option(help="port (default 4000)")] = None,
        workers: Annotated[
            int,
            typer.Option(help="worker processes (more than 1 needs store.kind: postgres)"),
        ] = 1,
    ) -> None:
        """Run the gateway. With no --config it starts on embedded defaults.

        On the embedded SQLite store one process serves a home: a second `serve` on the
        same home is refused. With store.kind: postgres any number of workers and
        replicas share budgets, rate limits and one receipt log."""
        from hybridgate.app import create_app
        from hybridgate.server import serve_forever
        from hybridgate.store.lock import lock_home
        from hybridgate.workers import check_workers, serve_workers

        cfg = resolve_config(config, home, probe=True)
        logging.basicConfig(
            level=cfg.server.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
        )
        h = host or cfg.server.host
        p = cfg.server.port if port is None else port
        try:
            check_workers(cfg, workers)
            if workers > 1 and config is None:
                raise ConfigError("--workers needs --config (each worker loads the file)")
            if cfg.store.kind == "sqlite":
                lock_home(cfg.home_path)  # held until this process exits
        except ConfigError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
        console.print(
            f"hybridgate on http://{h}:{p}  "
            f"routes: {', '.join(r.name for r in cfg.routes) or 'none'}"
            f"  home: {cfg.home_path}  store: {cfg.store.kind}"
            + (f"  workers: {workers}" if workers > 1 else "")
        )
        if workers > 1:
            assert config is not None
            serve_workers(
                config, home, h, p, workers, cfg.server.log_level, cfg.server.header_timeout_s
            )
            return
        app = create_app(cfg, config_path=str(config) if config else None, handle_sighup=True)
        serve_forever(app, h, p, cfg.server.log_level, cfg.server.header_timeout_s)

    @root.command()
    def migrate(config: ConfigOpt = None, home: HomeOpt = None) -> None:
        """Apply every schema migration to the configured store, and create the home's
        deployment secret and signing keys if missing. Run once before starting replicas
        (the Helm chart's migration Job); replicas starting together also migrate safely."""
        from hybridgate.ledger import KeyRing
        from hybridgate.runtime import all_migrations

        cfg = resolve_config(config, home)
        load_or_create_secret(cfg.home_path)
        ring = KeyRing.load_or_create(cfg.home_path / "keys", cfg.ledger.origin)
        store = build_store(cfg)
        try:
            store.open(all_migrations(cfg))
            applied = store.query("SELECT count(*) FROM schema_migrations")[0][0]
        except GatewayError as exc:
            typer.echo(f"cannot migrate: {exc.message}", err=True)
            raise typer.Exit(1) from None
        finally:
            store.close()
        console.print(
            f"{cfg.store.kind} store at schema ({applied} steps applied);"
            f" home {cfg.home_path}, signing key {ring.active.key_id}"
        )

    root.add_typer(keys_app, name="keys")
    root.add_typer(config_app, name="config")


def _key_store(config: Path | None, home: Path | None) -> tuple[KeyStore, Store]:
    cfg = resolve_config(config, home)
    store = build_store(cfg)
    store.open(KeyStore.migrations())
    return KeyStore(store, pepper=load_or_create_secret(cfg.home_path)), store


@keys_app.command("create")
def keys_create(
    team: Annotated[str, typer.Option(help="team the key belongs to")],
    budget_usd: Annotated[str | None, typer.Option(help="lifetime spend cap in USD")] = None,
    name: Annotated[str | None, typer.Option(help="label")] = None,
    config: ConfigOpt = None,
    home: HomeOpt = None,
) -> None:
    """Create a key. It is printed once; only its hash is stored."""
    try:
        budget = None if budget_usd is None else Decimal(budget_usd)
    except InvalidOperation:
        typer.echo("--budget-usd must be a number", err=True)
        raise typer.Exit(2) from None
    ks, store = _key_store(config, home)
    try:
        key = ks.create(team, name=name, budget_usd=budget)
    except GatewayError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(2) from exc
    finally:
        store.close()
    typer.echo(key)


@keys_app.command("list")
def keys_list(config: ConfigOpt = None, home: HomeOpt = None, as_json: bool = False) -> None:
    """List keys (ids, teams, budgets; never the keys)."""
    ks, store = _key_store(config, home)
    rows = ks.list()
    store.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "key_id": k.key_id,
                        "team": k.team,
                        "name": k.name,
                        "budget_usd": None if k.budget_usd is None else str(k.budget_usd),
                        "revoked": k.revoked_ns is not None,
                    }
                    for k in rows
                ]
            )
        )
        return
    t = Table("key id", "team", "name", "budget USD", "status")
    for k in rows:
        t.add_row(
            k.key_id,
            k.team,
            k.name or "",
            "" if k.budget_usd is None else str(k.budget_usd),
            "revoked" if k.revoked_ns else "active",
        )
    console.print(t)


@keys_app.command("revoke")
def keys_revoke(key_id: str, config: ConfigOpt = None, home: HomeOpt = None) -> None:
    """Revoke a key by id (a running gateway stops accepting it within 2 s)."""
    ks, store = _key_store(config, home)
    try:
        ks.revoke(key_id)
    except GatewayError as exc:
        typer.echo(exc.message, err=True)
        raise typer.Exit(1) from exc
    finally:
        store.close()
    typer.echo(f"revoked {key_id}")


@config_app.command("schema")
def config_schema_cmd() -> None:
    """Print the JSON Schema of hybridgate.yaml."""
    typer.echo(json.dumps(config_schema(), indent=2))


@config_app.command("check")
def config_check(file: Path) -> None:
    """Validate a config file; errors name the file, the key path and what is wrong."""
    try:
        cfg = load_config(file)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{file}: ok ({len(cfg.routes)} routes, {len(cfg.models)} virtual models)")
