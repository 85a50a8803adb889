"""``hybridgate router eval`` / ``train`` through Typer's runner."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hybridgate.cli.router_cmd import app

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _routellm_dir() -> Path:
    env = os.environ.get("HYBRIDGATE_DATA_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return base / "routellm"


def _slice(src: Path, dst: Path, rows: int) -> Path:
    """Every k-th row, so a small slice still spans several MMLU domains."""
    csv.field_size_limit(1 << 22)
    with src.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        fields = list(reader.fieldnames or [])
        all_rows = list(reader)
    step = max(1, len(all_rows) // rows)
    with dst.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(all_rows[::step][:rows])
    return dst


def _synthetic_csv(path: Path, n: int) -> Path:
    rng = random.Random(5)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "weak_correct", "strong_correct", "weak_response"])
        for i in range(n):
            hard = i % 4 == 0
            topic = "integral of a hard function" if hard else "capital of a country"
            weak = (not hard) and rng.random() < 0.8
            w.writerow([f"{topic} number {i}?", weak, hard or rng.random() < 0.8, "ignored"])
    return path


def test_eval_slice_writes_png(tmp_path: Path) -> None:
    src = _routellm_dir() / "mmlu_dev.csv"
    if not src.exists():
        pytest.skip(f"shared data not present at {src}")
    data = _slice(src, tmp_path / "mmlu_slice.csv", 400)
    png = tmp_path / "curve.png"
    res = runner.invoke(
        app,
        ["eval", "--data", str(data), "--holdout", "--holdout-domains", "2", "--plot", str(png)],
    )
    assert res.exit_code == 0, res.output
    assert "APGR" in res.output and "holdout" in res.output and "domains" in res.output
    assert png.read_bytes()[:8] == PNG_MAGIC


def test_train_then_eval_own_router(tmp_path: Path) -> None:
    data = _synthetic_csv(tmp_path / "syn.csv", 300)
    model = tmp_path / "router.npz"
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(model)])
    assert res.exit_code == 0, res.output
    assert model.stat().st_size < 1 << 20
    png = tmp_path / "syn.png"
    res = runner.invoke(
        app, ["eval", "--data", str(data), "--router", str(model), "--holdout", "--plot", str(png)]
    )
    assert res.exit_code == 0, res.output
    assert "TRAINED ON THESE ROWS" not in res.output
    assert png.read_bytes()[:8] == PNG_MAGIC
    # scoring every row includes the training rows: the CLI must say so
    res = runner.invoke(app, ["eval", "--data", str(data), "--router", str(model)])
    assert res.exit_code == 0 and "not a held-out result" in res.output


def test_eval_rejects_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,weak_correct\nhi,True\n", encoding="utf-8")
    res = runner.invoke(app, ["eval", "--data", str(bad)])
    assert res.exit_code == 2
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"junk")
    data = _synthetic_csv(tmp_path / "syn.csv", 20)
    res = runner.invoke(app, ["eval", "--data", str(data), "--router", str(junk)])
    assert res.exit_code == 2
    res = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2 and "cannot train" in res.output
