"""One serving process per SQLite home; workers only where they can share state."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from hybridgate.cli.main import app
from hybridgate.store.lock import HomeLocked, lock_home


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
