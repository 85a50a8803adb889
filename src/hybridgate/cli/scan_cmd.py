"""``hybridgate scan``: run the request scanner over text, a file or JSON lines.

Useful to check what the gateway would find before pointing apps at it, and
to tune deny-lists. ``--jsonl`` is the batch interface: one output line per
input line, in order; any line that could not be scanned yields an
``error`` line and a non-zero exit status at the end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hybridgate.config import ScannerConfig, load_config
from hybridgate.errors import ConfigError
from hybridgate.scan import Scanner, ScanResult, build_scanner
from hybridgate.scan.terms import load_terms_file


def _finding_rows(result: ScanResult) -> list[dict[str, Any]]:
    return [
        {
            "type": f.type,
            "class": f.data_class.value,
            "start": f.start,
            "end": f.end,
            "confidence": f.confidence,
        }
        for f in result.findings
    ]


def _build(config: Path | None, terms: Path | None) -> Scanner:
    try:
        cfg = load_config(config).scanner if config else ScannerConfig()
        if terms is not None:
            # --terms adds to whatever the config lists; the file's terms join cfg.terms.
            cfg = cfg.model_copy(update={"terms": [*cfg.terms, *load_terms_file(terms)]})
        return build_scanner(cfg)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc


def _jsonl(scanner: Scanner, path: Path) -> int:
    """Scan each line of ``path``; returns the number of lines that failed."""
    failures = 0
    try:
        handle = sys.stdin if str(path) == "-" else path.open(encoding="utf-8", errors="strict")
    except OSError as exc:
        typer.echo(f"{path}: cannot read: {exc}", err=True)
        raise typer.Exit(2) from exc
    with handle:
        lineno = 0
        while True:
            try:
                line = handle.readline()
            except UnicodeDecodeError:
                # The rest of the file cannot be decoded line by line: one error, then stop.
                typer.echo(json.dumps({"error": "input is not valid UTF-8", "findings": []}))
                return failures + 1
            if not line:
                break
            lineno += 1
            out: dict[str, Any]
            try:
                record = json.loads(line)
            except ValueError:
                out = {"error": f"line {lineno}: not valid JSON", "findings": []}
            else:
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    out = {"error": f"line {lineno}: missing string field 'text'", "findings": []}
                else:
                    result = scanner.scan(text)
                    if result.complete:
                        out = {"findings": _finding_rows(result)}
                    else:
                        reason = "; ".join(result.errors) or "scan incomplete"
                        out = {"error": f"line {lineno}: {reason}", "findings": []}
            if "error" in out:
                failures += 1
            typer.echo(json.dumps(out, ensure_ascii=False))
    return failures


def register(root: typer.Typer) -> None:
    @root.command("scan")
    def scan(
        text: Annotated[str | None, typer.Argument(help="text to scan")] = None,
        file: Annotated[
            Path | None, typer.Option("--file", "-f", help="scan this file as one text")
        ] = None,
        jsonl: Annotated[
            Path | None,
            typer.Option(
                "--jsonl", help='JSON lines {"text": ...}; one result line each ("-": stdin)'
            ),
        ] = None,
        fmt: Annotated[str, typer.Option("--format", help="table or json")] = "table",
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="hybridgate.yaml (scanner section)")
        ] = None,
        terms: Annotated[
            Path | None, typer.Option("--terms", help="deny-list file, one term per line")
        ] = None,
    ) -> None:
        """Show the sensitive data the gateway's scanner finds."""
        if fmt not in ("table", "json"):
            typer.echo("--format must be table or json", err=True)
            raise typer.Exit(2)
        sources = sum(x is not None for x in (text, file, jsonl))
        if sources != 1:
            typer.echo("give exactly one of TEXT, --file or --jsonl", err=True)
            raise typer.Exit(2)
        scanner = _build(config, terms)
        if jsonl is not None:
            failures = _jsonl(scanner, jsonl)
            if failures:
                typer.echo(f"{failures} line(s) could not be scanned", err=True)
                raise typer.Exit(1)
            return
        if file is not None:
            try:
                body = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                typer.echo(f"{file}: cannot read as UTF-8: {exc}", err=True)
                raise typer.Exit(2) from exc
        else:
            assert text is not None
            body = text
        result = scanner.scan(body)
        if fmt == "json":
            typer.echo(
                json.dumps(
                    {
                        "complete": result.complete,
                        "errors": list(result.errors),
                        "findings": _finding_rows(result),
                    },
                    ensure_ascii=False,
                )
            )
        else:
            table = Table(title=f"{len(result.findings)} finding(s)")
            for col in ("type", "class", "span", "confidence", "value"):
                table.add_column(col)
            for f in result.findings:
                value = body[f.start : f.end]
                shown = value if len(value) <= 48 else value[:45] + "..."
                table.add_row(
                    f.type, f.data_class.value, f"{f.start}-{f.end}", f"{f.confidence:.2f}", shown
                )
            Console().print(table)
            if not result.complete:
                typer.echo("scan incomplete: " + "; ".join(result.errors), err=True)
        if not result.complete:
            raise typer.Exit(1)
