"""The ``hybridgate`` command. Each concern registers its own commands here."""

from __future__ import annotations

import typer

from hybridgate.cli import (
    adapters_cmd,
    approvals_cmd,
    catalog_cmd,
    core_cmd,
    distill_cmd,
    governance_cmd,
    ledger_cmd,
    plan_cmd,
    policy_cmd,
    router_cmd,
    scan_cmd,
    usage_cmd,
)

app = typer.Typer(
    name="hybridgate",
    help="Self-hosted gateway between your apps and every model they use.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
core_cmd.register(app)
scan_cmd.register(app)
governance_cmd.register(policy_cmd.app)
app.add_typer(policy_cmd.app, name="policy")
app.add_typer(ledger_cmd.receipt_app, name="receipt")
app.add_typer(ledger_cmd.log_app, name="log")
app.add_typer(router_cmd.app, name="router")
app.add_typer(usage_cmd.app, name="usage")
app.add_typer(approvals_cmd.app, name="approvals")
app.add_typer(catalog_cmd.app, name="catalog")
app.add_typer(plan_cmd.app, name="plan")
app.add_typer(distill_cmd.app, name="distill")
app.add_typer(adapters_cmd.app, name="adapters")


@app.command()
def demo() -> None:
    """End-to-end demo on embedded defaults with loopback stand-ins: no keys, no network."""
    from hybridgate.extras import MissingExtra, require

    try:
        require("openai", "demo")
        require("httpx", "demo")
    except MissingExtra as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    from hybridgate.demo import run_demo

    raise typer.Exit(run_demo())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
