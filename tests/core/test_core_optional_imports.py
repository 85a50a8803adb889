"""`make demo` installs only the core and the `demo` extra: nothing on the path from the
CLI to a running gateway may import an optional extra at module level."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Modules that only extras provide (postgres, local, plots, console, clients).
OPTIONAL = ["psycopg", "psycopg_pool", "redis", "torch", "transformers", "peft", "matplotlib"]

BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
import hybridgate.cli.main, hybridgate.app, hybridgate.demo
print("ok")
"""


@pytest.mark.parametrize("blocked", [OPTIONAL, ["psycopg"], ["redis"]])
def test_cli_app_and_demo_import_without_optional_extras(blocked: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKER.format(blocked=set(blocked))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"
