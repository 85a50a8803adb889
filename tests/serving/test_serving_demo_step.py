"""The demo's adapters-as-tools step runs without torch and reports measured savings."""

from __future__ import annotations

import io

from rich.console import Console

from hybridgate.serving.demo_step import run_adapter_tools_step


def test_adapter_tools_step_passes_its_own_checks() -> None:
    out = io.StringIO()
    failures: list[str] = []
    run_adapter_tools_step(Console(file=out, width=200), failures)
    text = out.getvalue()
    assert failures == []
    assert "found 2 tools on /mcp" in text and "10 receipts fetched" in text
    assert "triage" in text and "extract" in text and "saved $" in text
