"""Options and helpers shared by CLI commands that work on a gateway's home."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from hybridgate.config import GatewayConfig, load_config
from hybridgate.defaults import embedded_defaults
from hybridgate.errors import ConfigError

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="hybridgate.yaml (default: embedded defaults)")
]
HomeOpt = Annotated[
    Path | None,
    typer.Option("--home", help="gateway home (default: $HYBRIDGATE_HOME or ~/.hybridgate)"),
]


def resolve_config(config: Path | None, home: Path | None, *, probe: bool = False) -> GatewayConfig:
    """The config a command acts on; ``--home`` overrides the home in either source."""
    try:
        cfg = load_config(config) if config else embedded_defaults(dict(os.environ), probe=probe)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    if home is not None:
        cfg = cfg.model_copy(update={"home": str(home)})
    return cfg
