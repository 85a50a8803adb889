"""A serving process tunes its garbage collector once the app is built, before it serves."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import uvicorn

from hybridgate import server


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold() -> None:
    code = (
        "import gc\n"
        "from hybridgate.server import GC_YOUNG_THRESHOLD, tune_gc\n"
        "before = gc.get_threshold()\n"
        "assert gc.get_freeze_count() == 0\n"
        "tune_gc()\n"
        "after = gc.get_threshold()\n"
        "assert after == (GC_YOUNG_THRESHOLD, before[1], before[2]), after\n"
        "assert gc.get_freeze_count() > 1000, gc.get_freeze_count()\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_serve_forever_tunes_before_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    monkeypatch.setattr(server, "short_gil_switch", lambda: calls.append("gil"))
    monkeypatch.setattr(server, "tune_gc", lambda: calls.append("gc"))

    def run(self: Any) -> None:
        calls.append("serve")

    monkeypatch.setattr(uvicorn.Server, "run", run)

    async def app(scope: Any, receive: Any, send: Any) -> None:  # never called
        raise AssertionError

    server.serve_forever(app, "127.0.0.1", 0)
    assert calls == ["gil", "gc", "serve"]


def test_each_worker_tunes_once_its_app_is_built(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    import hybridgate.app
    from hybridgate import workers

    calls: list[str] = []
    cfg = tmp_path / "hybridgate.yaml"
    cfg.write_text(f"home: {tmp_path}\n")
    monkeypatch.setenv(workers.ENV_CONFIG, str(cfg))
    monkeypatch.delenv(workers.ENV_HOME, raising=False)
    monkeypatch.setattr(server, "short_gil_switch", lambda: calls.append("gil"))
    monkeypatch.setattr(server, "tune_gc", lambda: calls.append("gc"))
    built = object()

    def create_app(*_: Any, **__: Any) -> object:
        calls.append("app")
        return built

    monkeypatch.setattr(hybridgate.app, "create_app", create_app)
    assert workers.worker_app() is built
    assert calls == ["gil", "app", "gc"]
