"""Evaluate an adapter on held-out captured pairs, beside the untrained base and the teacher.

Each held-out pair's teacher answer is the reference; the adapter's and the
base's answers are judged by the task's check for agreement with it. The
teacher's own quality is the share of its answers the check accepts. Cost
and latency per call for the teacher come from the pairs' signed receipts;
for the adapter, latency is measured here and cost comes from the student's
configured price (self-hosted: hourly cost spread over throughput).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hybridgate.distill.checks import OutputCheck
from hybridgate.distill.dataset import Example
from hybridgate.distill.train import pick_device, prompt_text


@dataclass(frozen=True)
class SideReport:
    quality: float  # agreement with the teacher (for the teacher: share its check accepts)
    valid: float  # share of answers the check accepts
    latency_ms: float | None  # mean per call
    cost_usd: str | None  # mean per call
    calls: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def generate(
    base_model: str | Path,
    adapter: str | Path | None,
    examples: Sequence[Example],
    *,
    max_new_tokens: int,
    device: str | None = None,
) -> tuple[list[str], list[float]]:
    """Greedy answers (as the local provider gives them) and per-call latency in ms."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = pick_device(device)
    tok = AutoTokenizer.from_pretrained(str(base_model), local_files_only=True)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(base_model), local_files_only=True, dtype=torch.float32
    )
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    model.to(dev)
    model.eval()
    templated = bool(getattr(tok, "chat_template", None))
    answers: list[str] = []
    times: list[float] = []
    for ex in examples:
        enc = tok(
            prompt_text(tok, ex.messages), return_tensors="pt", add_special_tokens=not templated
        ).to(dev)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        times.append((time.perf_counter() - t0) * 1000)
        n = int(enc["input_ids"].shape[-1])
        answers.append(str(tok.decode(out[0][n:], skip_special_tokens=True)).strip())
    return answers, times


def side_report(
    check: OutputCheck,
    answers: Sequence[str],
    references: Sequence[str],
    latencies: Sequence[float],
    cost_per_call: Decimal | None,
) -> SideReport:
    n = len(answers)
    agree = sum(check.agree(a, r) for a, r in zip(answers, references, strict=True))
    valid = sum(check.judge(a).valid for a in answers)
    return SideReport(
        quality=agree / n if n else 0.0,
        valid=valid / n if n else 0.0,
        latency_ms=sum(latencies) / len(latencies) if latencies else None,
        cost_usd=None if cost_per_call is None else str(cost_per_call),
        calls=n,
    )


def teacher_report(
    check: OutputCheck, heldout: Sequence[Example], receipts: Sequence[dict[str, Any] | None]
) -> SideReport:
    """The teacher's side, from its answers and the signed receipts of those calls."""
    answers = [e.answer for e in heldout]
    got = [r for r in receipts if r is not None]
    lat = [float(r["latency_ms"]) for r in got if isinstance(r.get("latency_ms"), int | float)]
    costs = [Decimal(str(r["cost_usd"])) for r in got if r.get("cost_usd") is not None]
    n = len(answers)
    valid = sum(check.judge(a).valid for a in answers)
    return SideReport(
        quality=valid / n if n else 0.0,
        valid=valid / n if n else 0.0,
        latency_ms=sum(lat) / len(lat) if lat else None,
        cost_usd=str(sum(costs, Decimal(0)) / len(costs)) if costs else None,
        calls=n,
    )
