from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from hybridgate.cli import scan_cmd


def _app() -> typer.Typer:
    app = typer.Typer()
    scan_cmd.register(app)

    @app.callback()
    def _root() -> None:
        """Root so `scan` stays a subcommand."""

    return app


def test_scan_text_json() -> None:
    r = CliRunner().invoke(_app(), ["scan", "card 4111 1111 1111 1111", "--format", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["complete"] is True
    assert out["findings"] == [
        {"type": "CREDIT_CARD", "class": "financial", "start": 5, "end": 24, "confidence": 0.99}
    ]


def test_scan_table_and_file(tmp_path: Path) -> None:
    f = tmp_path / "p.txt"
    f.write_text("mail jane@example.com", encoding="utf-8")
    r = CliRunner().invoke(_app(), ["scan", "--file", str(f)])
    assert r.exit_code == 0 and "EMAIL_ADDRESS" in r.output


def test_scan_jsonl_one_line_per_input_and_failure_exit(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "ssn 536-22-4817"}),
        "not json",
        json.dumps({"text": "nothing here"}),
        json.dumps({"txt": "missing"}),
        json.dumps({"text": "bad \ud800 surrogate"}),
        json.dumps({"text": 42}),
    ]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    r = CliRunner().invoke(_app(), ["scan", "--jsonl", str(f)])
    assert r.exit_code == 1
    out = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(out) == len(lines)
    assert out[0] == {
        "findings": [
            {"type": "US_SSN", "class": "government_id", "start": 4, "end": 15, "confidence": 0.95}
        ]
    }
    assert out[1]["findings"] == [] and "not valid JSON" in out[1]["error"]
    assert out[2] == {"findings": []}
    assert "error" in out[3] and "error" in out[4] and "error" in out[5]


def test_scan_jsonl_all_good_exits_zero(tmp_path: Path) -> None:
    f = tmp_path / "in.jsonl"
    f.write_text(json.dumps({"text": "a@b.com"}) + "\n", encoding="utf-8")
    r = CliRunner().invoke(_app(), ["scan", "--jsonl", str(f)])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["findings"][0]["type"] == "EMAIL_ADDRESS"


def test_scan_terms_and_config(tmp_path: Path) -> None:
    terms = tmp_path / "terms.txt"
    terms.write_text("Project Falcon\n", encoding="utf-8")
    cfg = tmp_path / "hg.yaml"
    cfg.write_text("scanner:\n  terms: [Bluebird]\n  disabled: [email]\n", encoding="utf-8")
    text = "Project Falcon and Bluebird, mail a@b.com"
    r = CliRunner().invoke(
        _app(), ["scan", text, "--terms", str(terms), "--config", str(cfg), "--format", "json"]
    )
    assert r.exit_code == 0, r.output
    assert [f["type"] for f in json.loads(r.output)["findings"]] == ["ORG_TERM", "ORG_TERM"]


def test_scan_usage_errors(tmp_path: Path) -> None:
    assert CliRunner().invoke(_app(), ["scan"]).exit_code == 2
    assert CliRunner().invoke(_app(), ["scan", "x", "--format", "xml"]).exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("scanner:\n  disabled: [nope]\n", encoding="utf-8")
    assert CliRunner().invoke(_app(), ["scan", "x", "--config", str(bad)]).exit_code == 2
