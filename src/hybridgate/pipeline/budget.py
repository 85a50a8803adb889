"""The budget hold taken before a request is sent.

The hold is an upper bound of what any route of the plan can bill, so a
fallback never spends more than was reserved; the exchange's close settles it
to the real cost (or releases it when nothing was sent).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hybridgate.accounting import Reservation, cost_usd
from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange
from hybridgate.providers.tokens import estimate_request_tokens
from hybridgate.routing import Plan

#: Completion tokens reserved when neither the request nor the route bounds them.
DEFAULT_COMPLETION_ESTIMATE = 1024


def reserve(
    d: PipelineDeps,
    ex: Exchange,
    body: dict[str, Any],
    plan: Plan,
    estimate: dict[str, Any] | None = None,
) -> Reservation:
    """Hold an upper bound of what any route of the plan can bill for this request.

    Prompt: no tokenizer makes more tokens than the UTF-8 bytes of the text
    it is given, so the bytes of the body sent (plus the estimator's
    per-message and per-image allowances) bound it whatever the text.
    Completion: ``max_completion_tokens`` / ``max_tokens``, else the route's
    ``max_output_tokens``, else an estimate; times ``n``.
    """
    sent_bytes = len(json.dumps(body, ensure_ascii=False).encode("utf-8", "replace"))
    view = estimate if estimate is not None else body  # chat-shaped
    prompt_bound = sent_bytes + estimate_request_tokens(view)
    asked = (
        view.get("max_completion_tokens")
        or view.get("max_tokens")
        or body.get("max_output_tokens")
        or body.get("max_tokens")
    )
    n_asked = view.get("n")
    n: int = n_asked if isinstance(n_asked, int) else 1
    routes = d.table.routes
    est = Decimal(0)
    completion_bound = 0
    for name in plan.routes:
        out = asked if isinstance(asked, int) else routes[name].max_output_tokens
        completion = (out or DEFAULT_COMPLETION_ESTIMATE) * n
        completion_bound = max(completion_bound, completion)
        est = max(est, cost_usd(routes[name].price, prompt_bound, completion))
    return d.budgets.reserve(
        key_id=ex.key.key_id,
        team=ex.key.team,
        usd=est,
        tokens=prompt_bound + completion_bound,
        key_budget_usd=ex.key.budget_usd,
    )
