"""The budget hold taken before a request is sent.

The hold is an upper bound of what any route of the plan can bill, so a
fallback never spends more than was reserved; the exchange's close settles it
to the real cost (or releases it when nothing was sent).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hybridgate import fastjson
from hybridgate.accounting import Reservation, cost_usd
from hybridgate.pipeline.deps import PipelineDeps
from hybridgate.pipeline.exchange import Exchange
from hybridgate.providers.tokens import estimate_request_tokens
from hybridgate.routing import Plan

#: Completion tokens reserved when neither the request nor the route bounds them and no
#: limit caps the key's spend (the reservation is then only an estimate, as nothing bills
#: against a cap).
DEFAULT_COMPLETION_ESTIMATE = 1024

#: The output cap the gateway sends upstream for a spend-capped key whose request bounds
#: no output, on a route with no ``max_output_tokens`` of its own.
UNBOUNDED_OUTPUT_CAP = 4096


def cap_field(api: str, body: dict[str, Any]) -> str | None:
    """The field ``body`` carries its output-token limit in, or None if it makes no output.

    Decided by the body's shape as well as the client's API: a Responses
    request bound for a route without the Responses API is already a chat body.
    """
    if "messages" in body:
        return "max_tokens" if api == "anthropic.messages" else "max_completion_tokens"
    if api == "openai.responses" and "input" in body:
        return "max_output_tokens"
    return None  # embeddings and the like: nothing is generated


def asked_output(body: dict[str, Any], view: dict[str, Any]) -> int | None:
    """The output-token limit the client set, in whichever field its API uses."""
    for src, name in (
        (view, "max_completion_tokens"),
        (view, "max_tokens"),
        (body, "max_output_tokens"),
        (body, "max_tokens"),
    ):
        v = src.get(name)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def cap_output(
    d: PipelineDeps,
    ex: Exchange,
    body: dict[str, Any],
    sent: dict[str, Any],
    plan: Plan,
    estimate: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], int | None]:
    """``sent`` with the output cap the gateway must add, and that cap (None: none).

    A budget or token limit on the key or its team is only exact if the
    reservation bounds what the upstream can bill; without a client limit the
    completion is unbounded, so the gateway sends one, in the field the body's API
    reads: the largest ``max_output_tokens`` of the plan's routes (a route without
    one counts as :data:`UNBOUNDED_OUTPUT_CAP`). Keys without such limits are sent
    as asked.
    """
    field = cap_field(ex.api, body)
    view = estimate if estimate is not None else body
    if field is None or asked_output(body, view) is not None:
        return sent, None
    if not d.budgets.caps_spend(
        key_id=ex.key.key_id, team=ex.key.team, key_budget_usd=ex.key.budget_usd
    ):
        return sent, None
    routes = d.table.routes
    cap = max(routes[n].max_output_tokens or UNBOUNDED_OUTPUT_CAP for n in plan.routes)
    return {**sent, field: cap}, cap


async def reserve(
    d: PipelineDeps,
    ex: Exchange,
    body: dict[str, Any],
    plan: Plan,
    estimate: dict[str, Any] | None = None,
    cap: int | None = None,
) -> Reservation:
    """Hold an upper bound of what any route of the plan can bill for this request.

    Prompt: no tokenizer makes more tokens than the UTF-8 bytes of the text
    it is given, so the bytes of the body sent (plus the estimator's
    per-message and per-image allowances) bound it whatever the text.
    Completion: the client's limit, else the cap the gateway sent
    (:func:`cap_output`, bounded by the route's own ``max_output_tokens``), else
    the route's ``max_output_tokens``, else an estimate; times ``n``. Awaited:
    the shared budgets decide it in a batch with other requests' holds, off the loop.
    """
    sent_bytes = len(fastjson.dumps(body))  # compact UTF-8 JSON: every string, whole
    view = estimate if estimate is not None else body  # chat-shaped
    prompt_bound = sent_bytes + estimate_request_tokens(view)
    asked = asked_output(body, view)
    n_asked = view.get("n")
    n: int = n_asked if isinstance(n_asked, int) else 1
    routes = d.table.routes
    est = Decimal(0)
    completion_bound = 0
    for name in plan.routes:
        own = routes[name].max_output_tokens
        if asked is not None:
            out = asked
        elif cap is not None:
            out = min(cap, own) if own else cap
        else:
            out = own or DEFAULT_COMPLETION_ESTIMATE
        completion = out * n
        completion_bound = max(completion_bound, completion)
        est = max(est, cost_usd(routes[name].price, prompt_bound, completion))
    return await d.budgets.areserve(
        key_id=ex.key.key_id,
        team=ex.key.team,
        usd=est,
        tokens=prompt_bound + completion_bound,
        key_budget_usd=ex.key.budget_usd,
    )
