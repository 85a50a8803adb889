"""The demo's flywheel step, short form: a frontier stand-in answers a narrow task,
the gateway captures it under policy, trains a LoRA on a tiny local base (when the
``local`` extra is installed), promotes it through shadow and canary, reports the
savings and verifies the adapter's provenance offline."""

from __future__ import annotations

import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
from rich.console import Console
from rich.table import Table

from hybridgate.app import create_app
from hybridgate.config import parse_config
from hybridgate.distill.tickets import LABELS
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import OpenAIUpstream


def _usd(v: Any) -> str:
    return f"${Decimal(str(v)):.6f}"


def _flywheel_config(home: Path, frontier: OpenAIUpstream, base: Path | None) -> Any:
    task: dict[str, Any] = {
        "model": "frontier-api",
        "check": {"kind": "label_set", "labels": list(LABELS)},
        "quality_floor": 0.5,
        "capture": {"teams": ["support"], "retention_days": 7, "competing": False},
        "train": {"seed": 0, "epochs": 20, "learning_rate": 0.01, "cpu_threads": 1},
        "promotion": {"canary_share": 0.3, "min_samples": 8, "audit_share": 0.5},
    }
    if base is not None:
        task["student"] = {"base_model": str(base), "max_new_tokens": 3}
    return parse_config(
        {
            "home": str(home),
            "ledger": {"checkpoint_interval_s": 3600},
            "routes": [
                {
                    "name": "frontier-api",
                    "provider": "openai",
                    "model": "gpt-4o",
                    "base_url": frontier.base_url,
                    "location": "external",
                    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
                }
            ],
            "distill": {"tasks": {"ticket-triage": task}},
        },
        source="<demo>",
    )


def run_flywheel_demo(console: Console, failures: list[str]) -> None:
    """Capture a narrow task's traffic, train a LoRA on a tiny local base, promote it
    through shadow and canary, report savings and verify the adapter's provenance.
    Without torch/peft (the ``local`` extra) the training and later steps are skipped."""
    import random

    from hybridgate.distill.dataset import load_examples
    from hybridgate.distill.service import DistillService
    from hybridgate.distill.tickets import teacher_label, ticket

    try:
        import peft  # noqa: F401
        import tokenizers  # noqa: F401
        import torch  # noqa: F401

        can_train = True
    except ImportError:
        can_train = False
    home = Path(tempfile.mkdtemp(prefix="hybridgate-flywheel-"))
    base: Path | None = None
    if can_train:
        from hybridgate.distill.tickets import vocabulary
        from hybridgate.distill.tiny import build_tiny_base

        base = build_tiny_base(home / "tiny-llama", vocabulary(), seed=0)
    console.print(
        "\n6. The flywheel: a frontier model triages support tickets; the gateway captures "
        "the task (masked, sealed), trains a LoRA on a tiny local base and moves the task to it."
    )
    with OpenAIUpstream(latency_s=0.05, respond=teacher_label) as frontier:
        app = create_app(_flywheel_config(home, frontier, base))
        gw: Gateway = app.state.gateway
        svc = gw.hook
        assert isinstance(svc, DistillService)
        with ServerThread(app) as server:
            key = gw.keys.create("support", name="helpdesk")
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
            rng = random.Random(5)

            def drive(n: int) -> list[dict[str, Any]]:
                out = []
                for _ in range(n):
                    raw = client.chat.completions.with_raw_response.create(
                        model="task:ticket-triage",
                        messages=[{"role": "user", "content": ticket(rng, with_contact=0.3)[0]}],
                    )
                    got = gw.ledger.get_receipt(raw.headers["x-hybridgate-receipt"])
                    out.append(got["receipt"] if got else {})
                deadline = time.monotonic() + 60
                while svc.busy and time.monotonic() < deadline:
                    time.sleep(0.02)
                return out

            drive(300)
            examples = load_examples(svc.store, svc.sealer, "ticket-triage")
            text = repr([(e.messages, e.answer) for e in examples])
            leaked = "@example.com" in text
            console.print(
                f"   captured {len(examples)} pairs from 300 requests; e-mail addresses in the "
                f"dataset: {'[bold red]YES[/]' if leaked else '[bold green]none[/] (placeholders)'}"
            )
            if leaked:
                failures.append("flywheel dataset holds an e-mail address")
            if not can_train:
                console.print(
                    "   [yellow]training skipped: torch/peft are not installed "
                    "(install the extra: .venv/bin/pip install -e '.\\[local]')[/]"
                )
                return
            _flywheel_train_and_promote(console, gw, svc, drive, failures)


def _flywheel_train_and_promote(
    console: Console, gw: Gateway, svc: Any, drive: Any, failures: list[str]
) -> None:
    import json

    from hybridgate.adapters import adapter_files
    from hybridgate.distill.events import transition
    from hybridgate.distill.flywheel import run_turn
    from hybridgate.distill.provenance import PROVENANCE_FILE, verify_provenance
    from hybridgate.distill.report import savings

    turn = run_turn(svc.workspace(), "ticket-triage", actor="demo", device="cpu")
    ev = turn.evaluation
    table = Table("held-out pairs", "agreement with teacher", "latency ms/call", "cost/call")
    for label, side in (
        ("LoRA adapter", ev["adapter"]),
        ("untrained base", ev["base_untrained"]),
        ("teacher (frontier)", ev["teacher"]),
    ):
        lat = side["latency_ms"]
        table.add_row(
            label,
            f"{side['quality']:.2f}",
            "-" if lat is None else f"{lat:.1f}",
            _usd(side["cost_usd"]) if side["cost_usd"] else "-",
        )
    console.print(table)
    console.print(
        f"   trained on {turn.train_pairs} pairs in {turn.train_seconds:.1f} s ({turn.device}); "
        f"adapter {turn.adapter_id[:12]} registered, not serving"
    )
    if ev["adapter"]["quality"] <= ev["base_untrained"]["quality"]:
        failures.append("the adapter did not beat the untrained base")
    transition(gw.ledger, svc.store, "ticket-triage", "shadow", reason="demo", actor="demo")
    stages = ["shadow"]
    served: list[dict[str, Any]] = []
    for _ in range(30):
        served += drive(10)
        st = svc.store.state("ticket-triage")
        if st is not None and st.stage != stages[-1]:
            stages.append(st.stage)
        if st is None or st.stage in ("full", "rolled_back"):
            break
    served += drive(10)
    by_adapter = sum(1 for r in served if r.get("route") == "adapter.ticket-triage")
    console.print(
        f"   promotion: {' -> '.join(stages)}; {by_adapter} of the last {len(served)} "
        "task requests answered by the adapter (every step a signed receipt)"
    )
    if stages[-1] != "full":
        failures.append("the adapter did not reach full promotion")
    s = savings(svc.store.calls("ticket-triage"))
    console.print(
        f"   savings: {s['adapter']['calls']} adapter calls saved {_usd(s['saved_usd'])}; "
        f"spent {_usd(s['total_cost_usd'])} instead of {_usd(s['teacher_only_cost_usd'])}"
    )
    doc = json.loads((turn.run_dir / PROVENANCE_FILE).read_text())
    keys = gw.ledger_verifiers()
    problems = verify_provenance(doc, keys, adapter_sha256=adapter_files(turn.run_dir).sha256)
    altered = json.loads(json.dumps(doc))
    altered["training_receipts"][0]["receipt"]["tokens_in"] += 1
    caught = bool(verify_provenance(altered, keys))
    console.print(
        "   distill verify (manifest signature, inclusion proofs of "
        f"{len(doc['training_receipts'])} training receipts, dataset hash): "
        + ("[bold green]ok[/]" if not problems else f"[bold red]{problems[0]}[/]")
        + "; with one training receipt altered: "
        + ("[bold green]fails, as it must[/]" if caught else "[bold red]passes![/]")
    )
    if problems or not caught:
        failures.append("adapter provenance check misbehaved")
