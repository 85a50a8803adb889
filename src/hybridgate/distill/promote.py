"""Promotion of a task's adapter, as a pure state machine.

``registered`` (trained, not serving) -> ``shadow`` (the adapter answers in
parallel; only compared) -> ``canary`` (a share of the task's traffic) ->
``full``. While it serves, a share of its answers is also put to the teacher
and compared, so quality keeps being measured; whenever the last
``min_samples`` comparisons of the current stage fall under the task's
quality floor, the stage rolls back to ``rolled_back`` (teacher only).
Every transition is a signed receipt in the log (the service appends it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hybridgate.distill.config import PromotionConfig
from hybridgate.distill.store import Comparison

STAGES = ("registered", "shadow", "canary", "full", "rolled_back")
_NEXT = {"registered": "shadow", "shadow": "canary", "canary": "full"}
SERVING = frozenset({"canary", "full"})
MEASURED = frozenset({"shadow", "canary", "full"})


def next_stage(stage: str) -> str | None:
    return _NEXT.get(stage)


@dataclass(frozen=True, slots=True)
class StageJudgement:
    verdict: Literal["hold", "advance", "rollback"]
    quality: float | None
    samples: int
    reason: str


def judge_stage(
    stage: str, recent: Sequence[Comparison], floor: float, cfg: PromotionConfig
) -> StageJudgement:
    """``recent`` holds the stage's comparisons, newest first."""
    window = list(recent[: cfg.min_samples])
    n = len(window)
    if stage not in MEASURED or n < cfg.min_samples:
        return StageJudgement("hold", _quality(window), n, f"{n}/{cfg.min_samples} comparisons")
    q = _quality(window)
    assert q is not None
    if q < floor:
        return StageJudgement(
            "rollback", q, n, f"quality {q:.3f} over the last {n} is under the floor {floor}"
        )
    if cfg.auto_advance and next_stage(stage) is not None:
        return StageJudgement(
            "advance", q, n, f"quality {q:.3f} over the last {n} meets the floor {floor}"
        )
    return StageJudgement("hold", q, n, f"quality {q:.3f} meets the floor")


def _quality(window: Sequence[Comparison]) -> float | None:
    return sum(c.agree for c in window) / len(window) if window else None


def draw(request_id: str, salt: str) -> float:
    """A uniform number in [0, 1) from the request id: the same request draws the same."""
    h = hashlib.sha256(f"{salt}:{request_id}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def adapter_serves(stage: str, request_id: str, canary_share: float) -> bool:
    if stage == "full":
        return True
    if stage == "canary":
        return draw(request_id, "canary") < canary_share
    return False
