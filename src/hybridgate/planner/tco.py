"""Total cost of ownership: a closed API against self-hosting, per month and at break-even.

The model, in the units a reader can check by hand:

* **API.** Cost per request ``c = (input × price_in + output × price_out) / 10⁶``;
  a month costs ``R × c`` for ``R`` requests. Linear in volume.
* **Self-hosting.** A *replica* is the GPUs one copy of the model needs. One
  replica serves ``K = gpus × tokens/s per GPU × utilization × 2,628,000 s``
  tokens a month (730 hours); a workload of ``T`` tokens a month with a
  peak-to-average ratio ``p`` needs ``replicas = max(1, ceil(T × p / K))``.
  A month costs ``F + replicas × G``: ``F`` is operations plus engineering
  (paid once whatever the fleet), ``G`` the GPUs of one replica — rented
  (``gpus × $/h × 730``, always on) or bought (``gpus × price / months``
  amortized). A staircase in volume.
* **Break-even volume.** The first monthly volume at which self-hosting costs
  no more than the API, and the volume above which it stays so (the staircase
  can climb back above the API line just after adding a replica).
* **Break-even month.** Cash view: a purchase and the setup cost are paid up
  front, then each month saves ``API − (F + rented GPUs)``; payback is the
  first month whose cumulative saving covers the up-front cost.

Throughput (tokens per second per GPU, input and output tokens alike) is the
figure everything self-hosted rests on; each option says where it came from.
Counting input and output tokens alike matches how the gateway apportions an
hourly price per token (:func:`hybridgate.accounting.pricing.per_token_usd`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

HOURS_PER_MONTH = 730.0  # 8760 / 12
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0  # 2,628,000
MTOK = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Workload:
    requests_per_month: float
    input_tokens: float
    output_tokens: float
    peak_factor: float = 1.0
    max_response_s: float | None = None
    source: str = "user-supplied"

    def __post_init__(self) -> None:
        if self.requests_per_month < 0 or self.input_tokens < 0 or self.output_tokens < 0:
            raise ValueError("volumes and token counts must not be negative")
        if self.input_tokens + self.output_tokens <= 0:
            raise ValueError("a request must have some tokens")
        if self.peak_factor < 1:
            raise ValueError("peak_factor is peak over average load: at least 1")

    @property
    def tokens_per_request(self) -> float:
        return self.input_tokens + self.output_tokens

    @property
    def tokens_per_month(self) -> float:
        return self.requests_per_month * self.tokens_per_request


@dataclass(frozen=True, slots=True)
class ApiOption:
    name: str
    input_per_mtok: float
    output_per_mtok: float
    price_source: str

    def cost_per_request(self, w: Workload) -> float:
        return (
            w.input_tokens * self.input_per_mtok + w.output_tokens * self.output_per_mtok
        ) / MTOK


@dataclass(frozen=True, slots=True)
class SelfHostOption:
    """One model on ``gpus_per_replica`` GPUs, rented by the hour or bought."""

    name: str
    model: str
    gpus_per_replica: int
    tokens_per_second_per_gpu: float
    throughput_source: str
    gpu_hourly_usd: float | None = None
    gpu_purchase_usd: float | None = None
    amortize_months: int = 36
    utilization: float = 0.5
    ops_per_month: float = 0.0
    engineering_per_month: float = 0.0
    setup_usd: float = 0.0
    stream_tokens_per_second: float | None = None
    gpu: str | None = None
    #: the throughput is a ceiling (roofline or peak benchmark): replicas are a minimum
    throughput_upper_bound: bool = False

    def __post_init__(self) -> None:
        if (self.gpu_hourly_usd is None) == (self.gpu_purchase_usd is None):
            raise ValueError(f"{self.name}: give exactly one of an hourly or a purchase price")
        if self.gpus_per_replica < 1 or self.tokens_per_second_per_gpu <= 0:
            raise ValueError(f"{self.name}: needs at least one GPU and a positive throughput")
        if not 0 < self.utilization <= 1:
            raise ValueError(f"{self.name}: utilization must be in (0, 1]")
        if self.amortize_months < 1:
            raise ValueError(f"{self.name}: amortize over at least one month")
        for v in (self.ops_per_month, self.engineering_per_month, self.setup_usd):
            if v < 0:
                raise ValueError(f"{self.name}: costs must not be negative")

    @property
    def fixed_monthly(self) -> float:
        """F: operations and engineering, whatever the fleet size."""
        return self.ops_per_month + self.engineering_per_month

    @property
    def replica_monthly(self) -> float:
        """G: one replica's GPUs per month (rent, or purchase amortized)."""
        if self.gpu_hourly_usd is not None:
            return self.gpus_per_replica * self.gpu_hourly_usd * HOURS_PER_MONTH
        assert self.gpu_purchase_usd is not None
        return self.gpus_per_replica * self.gpu_purchase_usd / self.amortize_months

    @property
    def replica_tokens_per_month(self) -> float:
        """K: tokens one replica serves in a month at the stated utilization."""
        return (
            self.gpus_per_replica
            * self.tokens_per_second_per_gpu
            * self.utilization
            * SECONDS_PER_MONTH
        )

    def replica_requests_per_month(self, w: Workload) -> float:
        """Kr: requests one replica carries, leaving headroom for the peak."""
        return self.replica_tokens_per_month / (w.tokens_per_request * w.peak_factor)

    def replicas(self, w: Workload) -> int:
        needed = w.requests_per_month / self.replica_requests_per_month(w)
        return max(1, math.ceil(needed - 1e-12))

    def monthly(self, w: Workload) -> float:
        return self.fixed_monthly + self.replicas(w) * self.replica_monthly


@dataclass(frozen=True)
class OptionCost:
    name: str
    kind: Literal["api", "self_host"]
    monthly_usd: float
    per_mtok_usd: float | None
    replicas: int | None
    latency_ok: bool | None
    formulas: tuple[str, ...]


@dataclass(frozen=True)
class BreakEven:
    self_host: str
    api: str
    first_volume: float | None  # requests/month where self-hosting first costs <= the API
    always_volume: float | None  # ... and above which it always does
    payback_month: int | None  # at the workload's volume; None: never pays back
    formulas: tuple[str, ...]


@dataclass(frozen=True)
class TcoReport:
    workload: Workload
    costs: tuple[OptionCost, ...]
    break_evens: tuple[BreakEven, ...]
    notes: tuple[str, ...] = field(default=())


def api_cost(opt: ApiOption, w: Workload) -> OptionCost:
    c = opt.cost_per_request(w)
    monthly = w.requests_per_month * c
    formulas = (
        f"{opt.name}: price ${opt.input_per_mtok:g} in / ${opt.output_per_mtok:g} out "
        f"per Mtok ({opt.price_source})",
        f"{opt.name}: c = ({w.input_tokens:g} × {opt.input_per_mtok:g} + {w.output_tokens:g} × "
        f"{opt.output_per_mtok:g}) / 1e6 = ${c:.6g} per request",
        f"{opt.name}: monthly = {w.requests_per_month:,.0f} × ${c:.6g} = ${monthly:,.2f}",
    )
    return OptionCost(opt.name, "api", monthly, _per_mtok(monthly, w), None, None, formulas)


def self_host_cost(opt: SelfHostOption, w: Workload) -> OptionCost:
    k = opt.replica_tokens_per_month
    n = opt.replicas(w)
    g = opt.replica_monthly
    monthly = opt.fixed_monthly + n * g
    if opt.gpu_hourly_usd is not None:
        g_text = f"G = {opt.gpus_per_replica} × ${opt.gpu_hourly_usd:g}/h × 730 h = ${g:,.2f}"
    else:
        g_text = (
            f"G = {opt.gpus_per_replica} × ${opt.gpu_purchase_usd:,.0f} / "
            f"{opt.amortize_months} months = ${g:,.2f}"
        )
    latency_ok = None
    lat = []
    if w.max_response_s is not None and opt.stream_tokens_per_second is not None:
        t = w.output_tokens / opt.stream_tokens_per_second
        latency_ok = t <= w.max_response_s
        lat.append(
            f"{opt.name}: response time ≈ output / stream tokens/s = {w.output_tokens:g} / "
            f"{opt.stream_tokens_per_second:g} = {t:.2f} s "
            f"({'within' if latency_ok else 'over'} {w.max_response_s:g} s; decode only)"
        )
    formulas = (
        f"{opt.name}: throughput {opt.tokens_per_second_per_gpu:g} tokens/s per GPU "
        f"({opt.throughput_source})",
        f"{opt.name}: K = {opt.gpus_per_replica} GPUs × {opt.tokens_per_second_per_gpu:g} × "
        f"{opt.utilization:g} × 2,628,000 s = {k:,.0f} tokens per replica-month",
        f"{opt.name}: replicas = max(1, ceil(T × peak / K)) = max(1, ceil({w.tokens_per_month:,.0f}"
        f" × {w.peak_factor:g} / {k:,.0f})) = {n}"
        + (" (at least: the throughput is an upper bound)" if opt.throughput_upper_bound else ""),
        f"{opt.name}: {g_text}; F = ops ${opt.ops_per_month:,.2f} + engineering "
        f"${opt.engineering_per_month:,.2f} = ${opt.fixed_monthly:,.2f}",
        f"{opt.name}: monthly = F + replicas × G = ${opt.fixed_monthly:,.2f} + {n} × ${g:,.2f} = "
        f"${monthly:,.2f}",
        *lat,
    )
    return OptionCost(
        opt.name, "self_host", monthly, _per_mtok(monthly, w), n, latency_ok, formulas
    )


def break_even_volume(
    fixed: float, replica: float, replica_capacity: float, cost_per_request: float
) -> tuple[float | None, float | None]:
    """(first, always) monthly request volumes where ``F + ceil(v/Kr)·G <= c·v``.

    With ``k`` replicas (volumes in ``(Kr(k−1), Kr·k]``) self-hosting is no
    dearer once ``v >= (F + kG)/c``, which lies inside the step when
    ``k(c·Kr − G) >= F``. So if one replica's full load earns less than it
    costs (``c·Kr <= G``) there is no break-even; otherwise the first is at
    ``k* = max(1, ceil(F/(c·Kr − G)))``, ``v = (F + k*·G)/c``. Self-hosting is
    cheaper from the very start of step ``j`` when ``F + jG <= c·Kr·(j−1)``,
    i.e. from ``j0 = ceil((F + c·Kr)/(c·Kr − G))`` on; the last crossing is then
    in step ``j0 − 1`` at ``(F + (j0−1)·G)/c``.
    """
    c, kr, f, g = cost_per_request, replica_capacity, fixed, replica
    margin = c * kr - g
    if c <= 0 or margin <= 0:
        return None, None
    k_first = max(1, math.ceil(f / margin - 1e-12))
    first = (f + k_first * g) / c
    j0 = max(2, math.ceil((f + c * kr) / margin - 1e-12))
    always = max(first, (f + (j0 - 1) * g) / c)
    return first, always


def payback_month(opt: SelfHostOption, api_monthly: float, w: Workload) -> tuple[int | None, str]:
    """First month whose cumulative saving covers what was paid up front (cash, not amortized)."""
    n = opt.replicas(w)
    bought = opt.gpu_purchase_usd is not None
    upfront = opt.setup_usd + (n * opt.gpus_per_replica * (opt.gpu_purchase_usd or 0.0))
    running = opt.fixed_monthly + (0.0 if bought else n * opt.replica_monthly)
    saving = api_monthly - running
    head = (
        f"{opt.name}: payback: up-front U = setup ${opt.setup_usd:,.2f}"
        + (f" + {n * opt.gpus_per_replica} GPUs × ${opt.gpu_purchase_usd:,.0f}" if bought else "")
        + f" = ${upfront:,.2f}; running cash/month = ${running:,.2f}; "
        f"saving S = ${api_monthly:,.2f} − ${running:,.2f} = ${saving:,.2f}"
    )
    if saving <= 0:
        return None, head + "; S <= 0: never pays back at this volume"
    month = max(1, math.ceil(upfront / saving - 1e-12))
    text = head + f"; month = max(1, ceil(U / S)) = {month}"
    if bought and month > opt.amortize_months:
        text += f" — after the {opt.amortize_months}-month life the purchase was amortized over"
    return month, text


def break_even(opt: SelfHostOption, api: ApiOption, w: Workload) -> BreakEven:
    c = api.cost_per_request(w)
    kr = opt.replica_requests_per_month(w)
    f, g = opt.fixed_monthly, opt.replica_monthly
    first, always = break_even_volume(f, g, kr, c)
    api_monthly = w.requests_per_month * c
    month, pay = payback_month(opt, api_monthly, w)
    lines = [
        f"{opt.name} vs {api.name}: Kr = K / (tokens per request × peak) = "
        f"{opt.replica_tokens_per_month:,.0f} / ({w.tokens_per_request:g} × {w.peak_factor:g}) "
        f"= {kr:,.0f} requests per replica-month; c = ${c:.6g}",
    ]
    if first is None or always is None:
        lines.append(
            f"{opt.name} vs {api.name}: c × Kr = ${c * kr:,.2f} <= G = ${g:,.2f}: a full replica "
            "earns less than it costs, so there is no break-even volume"
        )
    else:
        lines.append(
            f"{opt.name} vs {api.name}: first break-even v = (F + k*·G) / c with "
            f"k* = max(1, ceil(F / (c·Kr − G))) = {first:,.0f} requests/month; "
            f"cheaper at every volume above {always:,.0f}"
        )
    lines.append(pay)
    return BreakEven(opt.name, api.name, first, always, month, tuple(lines))


def tco(w: Workload, apis: Sequence[ApiOption], self_hosts: Sequence[SelfHostOption]) -> TcoReport:
    names = [o.name for o in apis] + [o.name for o in self_hosts]
    if len(set(names)) != len(names):
        raise ValueError("option names must be unique")
    costs = [api_cost(a, w) for a in apis] + [self_host_cost(s, w) for s in self_hosts]
    bes = [break_even(s, a, w) for s in self_hosts for a in apis]
    notes = [
        f"workload: {w.requests_per_month:,.0f} requests/month × ({w.input_tokens:g} in + "
        f"{w.output_tokens:g} out) tokens = T = {w.tokens_per_month:,.0f} tokens/month "
        f"({w.source})",
        "cost per Mtok = monthly cost / (T / 1e6)",
        "a month is 730 hours (8760 / 12); rented GPUs are billed for all of it",
    ]
    return TcoReport(w, tuple(costs), tuple(bes), tuple(notes))


def cost_curve(
    w: Workload,
    apis: Sequence[ApiOption],
    self_hosts: Sequence[SelfHostOption],
    volumes: Sequence[float],
) -> dict[str, list[float]]:
    """Monthly cost of each option at each request volume (same token mix as ``w``)."""
    out: dict[str, list[float]] = {}
    for a in apis:
        c = a.cost_per_request(w)
        out[a.name] = [v * c for v in volumes]
    for s in self_hosts:
        out[s.name] = [s.monthly(_at(w, v)) for v in volumes]
    return out


def _at(w: Workload, volume: float) -> Workload:
    return Workload(volume, w.input_tokens, w.output_tokens, w.peak_factor, w.max_response_s)


def _per_mtok(monthly: float, w: Workload) -> float | None:
    t = w.tokens_per_month
    return None if t <= 0 else monthly / (t / MTOK)
