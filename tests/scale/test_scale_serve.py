"""One serving process per SQLite home; workers only where they can share state."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from hybridgate.cli.main import app
from hybridgate.store.lock import HomeLocked, lock_home
from hybridgate.testing.services import free_port
from scale.scale_harness import wait_ready


def _hold(home: str, ready: Any, done: Any) -> None:
    lock_home(Path(home))
    ready.set()
    done.wait(30)


def test_second_process_on_a_sqlite_home_is_refused(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(tmp_path), ready, done))
    p.start()
    try:
        assert ready.wait(30)
        with pytest.raises(HomeLocked, match=r"another hybridgate process \(pid \d+\)"):
            lock_home(tmp_path)
    finally:
        done.set()
        p.join(30)
    fd = lock_home(tmp_path)  # released when its holder exited (however it exited)
    assert fd >= 0


def test_workers_need_postgres(tmp_path: Path) -> None:
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(tmp_path / "home")}))
    r = CliRunner().invoke(app, ["serve", "--config", str(cfg), "--workers", "2"])
    assert r.exit_code == 2
    assert "store.kind: postgres" in r.output


def test_serve_refuses_a_locked_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cfg = tmp_path / "g.yaml"
    cfg.write_text(yaml.safe_dump({"home": str(home)}))
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    p = ctx.Process(target=_hold, args=(str(home), ready, done))
    p.start()
    try:
        assert ready.wait(30)
        r = CliRunner().invoke(app, ["serve", "--config", str(cfg)])
        assert r.exit_code == 2
        assert "is serving" in r.output
    finally:
        done.set()
        p.join(30)


def test_workers_close_a_connection_that_never_finishes_its_headers(
    tmp_path: Path, pg_dsn: str
) -> None:
    """The slowloris defence of a single `serve` holds in every `serve --workers` worker."""
    port = free_port()
    cfg = tmp_path / "g.yaml"
    raw = {
        "home": str(tmp_path / "home"),
        "store": {"kind": "postgres", "dsn": pg_dsn},
        "server": {"port": port, "header_timeout_s": 0.3, "log_level": "warning"},
    }
    cfg.write_text(yaml.safe_dump(raw))
    assert CliRunner().invoke(app, ["migrate", "--config", str(cfg)]).exit_code == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hybridgate", "serve", "--config", str(cfg), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, proc)
        # several slow clients, so both workers are likely to get one
        socks = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(4)]
        for s in socks:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: ")
        for s in socks:
            with s:
                assert s.recv(1024) == b""  # closed by the server, not by our timeout
        with httpx.Client(base_url=base) as client:
            for _ in range(4):
                assert client.get("/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()
