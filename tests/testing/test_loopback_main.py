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
        code = proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
        assert code == 0


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


def _stream_body(base: str) -> bytes:
    body = json.dumps(
        {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a b c d"}]}
    ).encode()
    req = urllib.request.Request(
        base + "/chat/completions", data=body, headers={"content-type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return bytes(r.read())


def test_paced_stream_sends_the_same_events() -> None:
    """``chunk_interval_s`` only spaces the events out: same events, same end."""
    with OpenAIUpstream(reply="one two three four") as plain:
        expected = _stream_body(plain.base_url)
    with OpenAIUpstream(reply="one two three four", chunk_interval_s=0.005) as paced:
        got = _stream_body(paced.base_url)

    def events(raw: bytes) -> list[str]:
        out = []
        for frame in raw.decode().split("\n\n"):
            if frame.startswith("data: {"):
                ev = json.loads(frame[6:])
                ev.pop("id", None)
                ev.pop("created", None)
                out.append(json.dumps(ev, sort_keys=True))
            elif frame:
                out.append(frame)
        return out

    assert events(got) == events(expected)
    assert len(events(got)) > 3 and events(got)[-1] == "data: [DONE]"
