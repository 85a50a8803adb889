"""The ``hybridgate`` command. Each concern registers its own commands here."""

from __future__ import annotations

import typer

from hybridgate.cli import core_cmd

app = typer.Typer(
    name="hybridgate",
    help="Self-hosted gateway between your apps and every model they use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
core_cmd.register(app)


def main() -> None:
    app()
