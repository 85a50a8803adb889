"""The agent CLIs from npm, unchanged, against a real gateway on loopback.

Claude Code runs with nothing but ``ANTHROPIC_BASE_URL`` and a virtual key set
(its default model name reaches the Anthropic route through a ``claude-*``
alias); Codex runs ``codex exec`` with a model provider pointed at the gateway
(the Responses API, native on the OpenAI route). The upstream's record shows
what each CLI's request looked like when it left the gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.npm_clis import cli
from gateway_harness import Harness, running_gateway

ALIASES = {"claude-*": "claude", "gpt-*": "gpt-4o", "o*": "gpt-4o"}


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw"), aliases=ALIASES) as harness:
        yield harness


def _env(home: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no credentials or settings of the machine running the tests."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), **extra}


def test_claude_code_print_mode(h: Harness, tmp_path: Path) -> None:
    claude = cli("claude")
    h.claude.clear()
    proc = subprocess.run(
        [str(claude), "-p", "say hi"],
        env=_env(tmp_path, ANTHROPIC_BASE_URL=h.url, ANTHROPIC_API_KEY=h.key),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "echo:" in proc.stdout and "say hi" in proc.stdout
    sent = [r for r in h.claude.requests if r.path == "/v1/messages"]
    assert sent, "Claude Code's request never reached the Anthropic upstream"
    body = sent[-1].body
    assert body["model"] == "claude-3-5-sonnet-latest"  # the route's model id
    # pass-through: what Claude Code sends arrives as it sent it
    assert "cache_control" in json.dumps(body)
    assert isinstance(body.get("system"), list)
    assert h.key not in h.claude.all_text()


def test_codex_exec(h: Harness, tmp_path: Path) -> None:
    codex = cli("codex")
    h.external.clear()
    codex_home = tmp_path / "codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(
        'model = "gpt-5-codex"\n'
        'model_provider = "hybridgate"\n\n'
        "[model_providers.hybridgate]\n"
        'name = "hybridgate"\n'
        f'base_url = "{h.url}/v1"\n'
        'env_key = "HYBRIDGATE_KEY"\n'
        'wire_api = "responses"\n'
    )
    proc = subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", "say hi"],
        env=_env(tmp_path, CODEX_HOME=str(codex_home), HYBRIDGATE_KEY=h.key),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "echo: say hi" in proc.stdout
    sent = [r for r in h.external.requests if r.path == "/v1/responses"]
    assert sent, "Codex's request never reached the OpenAI upstream's /v1/responses"
    body = sent[-1].body
    assert body["model"] == "gpt-4o"
    assert body["stream"] is True
    assert body["store"] is False
    assert "say hi" in json.dumps(body["input"])
    assert isinstance(body.get("tools"), list) and body["tools"]  # Codex's own tools, intact
