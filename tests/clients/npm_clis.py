"""Installs the agent CLIs under test (Claude Code, Codex) from npm into an ignored folder.

The versions are pinned so a run is reproducible; an installed folder is reused.
A test is skipped, with a message that says so, only when npm itself is missing
or the npm registry cannot be reached; any other install failure fails the test.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: ignored by git (see .gitignore)
PREFIX = ROOT / ".cache" / "npm-clients"
PACKAGES = {
    "@anthropic-ai/claude-code": "2.1.197",
    "@openai/codex": "0.171.0",
}
BINARIES = {"claude": "@anthropic-ai/claude-code", "codex": "@openai/codex"}


def _installed(pkg: str, version: str) -> bool:
    manifest = PREFIX / "node_modules" / pkg / "package.json"
    try:
        return bool(json.loads(manifest.read_text()).get("version") == version)
    except (OSError, ValueError):
        return False


def _registry_reachable(npm: str) -> bool:
    try:
        subprocess.run(
            [npm, "ping"], check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError):
        return False
    return True


def cli(name: str) -> Path:
    """Path of the installed CLI ``name`` (``claude`` or ``codex``), installing it first."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed: cannot install {BINARIES[name]} to test it")
    PREFIX.mkdir(parents=True, exist_ok=True)
    with open(PREFIX / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test workers install once
        missing = [f"{p}@{v}" for p, v in PACKAGES.items() if not _installed(p, v)]
        if missing:
            if not _registry_reachable(npm):
                pytest.skip(f"the npm registry cannot be reached: cannot install {missing}")
            subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(PREFIX), *missing],
                check=True,
                capture_output=True,
                timeout=900,
                stdin=subprocess.DEVNULL,
            )
    path = PREFIX / "node_modules" / ".bin" / name
    assert path.exists(), f"{name} was not installed at {path}"
    return path
