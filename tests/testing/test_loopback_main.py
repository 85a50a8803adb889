"""``python -m hybridgate.testing`` serves both upstreams until interrupted."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request

import pytest

from hybridgate.testing import OpenAIUpstream


def test_module_runner_serves_and_stops() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridgate.testing", "--reply", "fixed answer"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        openai_line = proc.stdout.readline()
        anthropic_line = proc.stdout.readline()
        base = openai_line.split()[-1]
        assert base.startswith("http://127.0.0.1:") and base.endswith("/v1")
        assert anthropic_line.split()[-1].startswith("http://127.0.0.1:")
        body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "x"}]}).encode()
        req = urllib.request.Request(
            base + "/chat/completions", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read())["choices"][0]["message"]["content"] == "fixed answer"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_port_validation_and_restart() -> None:
    with pytest.raises(ValueError):
        OpenAIUpstream(port=70000)
    up = OpenAIUpstream().start()
    port = up.port
    up.stop()
    up.start()  # same object, same port
    try:
        assert up.port == port
    finally:
        up.stop()
