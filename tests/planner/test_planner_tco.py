"""TCO formulas against values computed by hand (the arithmetic is in each comment)."""

from __future__ import annotations

import math

import pytest

from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.options import SpecError, api_option, parse_spec, self_host_option
from hybridgate.planner.tco import (
    ApiOption,
    SelfHostOption,
    Workload,
    break_even_volume,
    cost_curve,
    payback_month,
    tco,
)
from planner.planner_samples import good_entry

W = Workload(requests_per_month=1_000_000, input_tokens=1000, output_tokens=300)
GPT4O = ApiOption("gpt-4o", 2.50, 10.00, "test")
MINI = ApiOption("mini", 0.15, 0.60, "test")


def host(**kw: object) -> SelfHostOption:
    base: dict[str, object] = {
        "name": "h",
        "model": "llama-3-70b",
        "gpus_per_replica": 2,
        "tokens_per_second_per_gpu": 1200.0,
        "throughput_source": "test",
        "gpu_hourly_usd": 2.5,
        "utilization": 0.5,
        "ops_per_month": 1000.0,
    }
    base.update(kw)
    return SelfHostOption(**base)  # type: ignore[arg-type]


def test_api_cost_by_hand() -> None:
    # c = (1000 × 2.50 + 300 × 10.00) / 1e6 = (2500 + 3000) / 1e6 = 0.0055
    assert GPT4O.cost_per_request(W) == pytest.approx(0.0055)
    r = tco(W, [GPT4O], [])
    # monthly = 1e6 × 0.0055 = 5500; tokens = 1e6 × 1300 = 1.3e9 → per Mtok = 5500 / 1300 = 4.2308
    assert r.costs[0].monthly_usd == pytest.approx(5500.0)
    assert r.costs[0].per_mtok_usd == pytest.approx(5500 / 1300)


def test_self_host_cost_by_hand_rented() -> None:
    h = host()
    # K = 2 GPUs × 1200 tok/s × 0.5 × 2,628,000 s = 3,153,600,000 tokens per replica-month
    assert h.replica_tokens_per_month == pytest.approx(3_153_600_000)
    # T = 1.3e9 < K → 1 replica; G = 2 × 2.5 × 730 = 3650; monthly = 1000 + 3650 = 4650
    assert h.replicas(W) == 1
    assert h.replica_monthly == pytest.approx(3650.0)
    c = tco(W, [], [h]).costs[0]
    assert c.monthly_usd == pytest.approx(4650.0)
    assert c.per_mtok_usd == pytest.approx(4650 / 1300)


def test_self_host_cost_by_hand_purchased_and_scaled() -> None:
    h = host(gpu_hourly_usd=None, gpu_purchase_usd=30_000.0, amortize_months=36, ops_per_month=0)
    # G = 2 × 30000 / 36 = 1666.67
    assert h.replica_monthly == pytest.approx(60_000 / 36)
    # 5e6 requests × 1300 tokens × peak 2 = 1.3e10 tokens; / 3.1536e9 = 4.12 → 5 replicas
    w = Workload(5_000_000, 1000, 300, peak_factor=2.0)
    assert h.replicas(w) == 5
    assert h.monthly(w) == pytest.approx(5 * 60_000 / 36)


def test_replicas_at_exact_capacity_do_not_round_up() -> None:
    h = host()
    kr = h.replica_requests_per_month(W)  # 3,153,600,000 / 1300 = 2,425,846.15
    assert kr == pytest.approx(3_153_600_000 / 1300)
    assert h.replicas(Workload(kr, 1000, 300)) == 1
    assert h.replicas(Workload(kr * 1.001, 1000, 300)) == 2


def test_break_even_volume_simple() -> None:
    # F = 0, G = 100, c = 1, Kr = 150: first at G / c = 100. Step 2 (150, 300] costs 200:
    # API at 150+ is below it until 200. j0 = ceil((0 + 150) / (150 − 100)) = 3 → always
    # above (0 + 2 × 100) / 1 = 200.
    first, always = break_even_volume(0.0, 100.0, 150.0, 1.0)
    assert first == pytest.approx(100.0)
    assert always == pytest.approx(200.0)


def test_break_even_volume_needs_several_replicas() -> None:
    # F = 475, G = 100, c = 1, Kr = 150: margin c·Kr − G = 50; k* = ceil(475/50) = 10 →
    # first = (475 + 10 × 100) / 1 = 1475, inside step 10 = (1350, 1500].
    # j0 = ceil((475 + 150) / 50) = 13 → always = (475 + 12 × 100) / 1 = 1675.
    first, always = break_even_volume(475.0, 100.0, 150.0, 1.0)
    assert first == pytest.approx(1475.0)
    assert always == pytest.approx(1675.0)
    # F/margin a whole number: the break-even is exactly the top of a step, a single point
    assert break_even_volume(500.0, 100.0, 150.0, 1.0)[0] == pytest.approx(1500.0)


def test_break_even_volume_never_when_a_full_replica_loses_money() -> None:
    # c × Kr = 1 × 100 = 100 <= G = 100: never
    assert break_even_volume(0.0, 100.0, 100.0, 1.0) == (None, None)
    assert break_even_volume(10.0, 1.0, 100.0, 0.0) == (None, None)


@pytest.mark.parametrize(
    ("f", "g", "kr", "c"),
    [(0.0, 100.0, 150.0, 1.0), (475.0, 100.0, 150.0, 1.0), (1000.0, 3650.0, 2_425_846.0, 0.0055)],
)
def test_break_even_matches_a_brute_force_sweep(f: float, g: float, kr: float, c: float) -> None:
    first, always = break_even_volume(f, g, kr, c)
    assert first is not None and always is not None

    def cheaper(v: float) -> bool:
        return f + max(1, math.ceil(v / kr - 1e-12)) * g <= c * v + 1e-9

    top = always * 3
    step = top / 200_000
    vs = [i * step for i in range(1, 200_001)]
    first_brute = next(v for v in vs if cheaper(v))
    last_dearer = max(v for v in vs if not cheaper(v))
    assert first_brute == pytest.approx(first, abs=step)
    assert last_dearer == pytest.approx(always, abs=step)


def test_break_even_in_report_and_payback_by_hand() -> None:
    h = host(setup_usd=5000.0)
    r = tco(W, [GPT4O, MINI], [h])
    be = {b.api: b for b in r.break_evens}
    # F = 1000, G = 3650, c = 0.0055, Kr = 2,425,846: k* = 1 → v = (1000 + 3650) / 0.0055
    assert be["gpt-4o"].first_volume == pytest.approx(4650 / 0.0055)
    # payback: U = 5000, running = 4650, S = 5500 − 4650 = 850 → ceil(5.88) = 6
    assert be["gpt-4o"].payback_month == 6
    # mini: c × Kr = 0.00033 × 2,425,846 = 800.5 < 3650 → never
    assert be["mini"].first_volume is None and be["mini"].payback_month is None


def test_payback_counts_a_purchase_up_front() -> None:
    h = host(gpu_hourly_usd=None, gpu_purchase_usd=20_000.0, ops_per_month=500.0, setup_usd=0)
    # U = 2 GPUs × 20000 = 40000; running cash = ops 500; S = 5500 − 500 = 5000 → 8 months
    month, text = payback_month(h, 5500.0, W)
    assert month == 8
    assert "40,000.00" in text


def test_payback_without_up_front_cost_is_month_one() -> None:
    month, _ = payback_month(host(ops_per_month=0.0), 5500.0, W)
    assert month == 1


def test_latency_check() -> None:
    w = Workload(1000, 1000, 300, max_response_s=5.0)
    # 300 tokens / 50 tok/s = 6 s > 5 s
    slow = tco(w, [], [host(stream_tokens_per_second=50.0)]).costs[0]
    assert slow.latency_ok is False
    fast = tco(w, [], [host(stream_tokens_per_second=100.0)]).costs[0]  # 3 s
    assert fast.latency_ok is True
    assert tco(w, [], [host()]).costs[0].latency_ok is None


def test_cost_curve_is_linear_for_apis_and_steps_for_self_hosting() -> None:
    h = host(ops_per_month=0)
    kr = h.replica_requests_per_month(W)
    curves = cost_curve(W, [GPT4O], [h], [1000.0, kr, kr * 1.5])
    assert curves["gpt-4o"] == pytest.approx([5.5, kr * 0.0055, kr * 1.5 * 0.0055])
    assert curves["h"] == pytest.approx([3650.0, 3650.0, 7300.0])


def test_formulas_show_the_numbers() -> None:
    r = tco(W, [GPT4O], [host()])
    text = "\n".join(r.costs[0].formulas + r.costs[1].formulas + r.break_evens[0].formulas)
    assert "(1000 × 2.5 + 300 × 10) / 1e6 = $0.0055" in text
    assert "2 × $2.5/h × 730 h = $3,650.00" in text
    assert "throughput 1200 tokens/s per GPU (test)" in text


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        host(gpu_purchase_usd=1.0)
    with pytest.raises(ValueError, match="utilization"):
        host(utilization=1.5)
    with pytest.raises(ValueError):
        Workload(-1, 1, 1)
    with pytest.raises(ValueError, match="peak"):
        Workload(1, 1, 1, peak_factor=0.5)
    with pytest.raises(ValueError, match="unique"):
        tco(W, [GPT4O, GPT4O], [])


def test_option_specs() -> None:
    cat = load_catalog()
    a, _ = api_option("gpt-4o", cat)
    assert (a.input_per_mtok, a.output_per_mtok) == (2.5, 10.0)
    assert "catalog" in a.price_source and "openai.com" in a.price_source
    b, _ = api_option("mine:in=1,out=2", cat)
    assert (b.name, b.input_per_mtok, b.output_per_mtok, b.price_source) == (
        "mine",
        1.0,
        2.0,
        "user-supplied",
    )
    s, notes = self_host_option("llama-3-70b:gpus=2,hourly=2.5,tps=1200,ops=100", cat)
    assert s.gpus_per_replica == 2 and s.throughput_source == "user-supplied"
    assert any("700,000,000" in n for n in notes)
    with pytest.raises(SpecError, match="no API price"):
        api_option("llama-3-70b", cat)
    with pytest.raises(SpecError, match="give gpu="):
        self_host_option("llama-3-70b:gpus=2,hourly=2.5", cat)
    with pytest.raises(SpecError, match="cannot be self-hosted"):
        self_host_option("gpt-4o:hourly=1,tps=1", cat)
    with pytest.raises(SpecError, match="unknown key"):
        parse_spec("x:gpus=1,bogus=2", {"gpus": ""})
    with pytest.raises(SpecError, match="twice"):
        self_host_option("llama-3-8b:tps=1,tps=2,hourly=1", cat)
    with pytest.raises(SpecError, match="not a number"):
        self_host_option("llama-3-8b:tps=fast,hourly=1", cat)
    with pytest.raises(SpecError, match="finite"):
        self_host_option("llama-3-8b:tps=nan,hourly=1", cat)
    with pytest.raises(SpecError, match="exactly one"):
        self_host_option("llama-3-8b:tps=10", cat)


def test_catalog_throughput_is_used_and_named() -> None:
    cat = load_catalog([good_entry()])
    s, _ = self_host_option("acme-7b:gpu=H100 80GB,hourly=2", cat)
    assert s.tokens_per_second_per_gpu == 2500.0
    assert s.throughput_source == "catalog: Acme benchmark note, table 2"


def test_payback_past_the_hardware_life_is_flagged() -> None:
    h = host(gpu_hourly_usd=None, gpu_purchase_usd=100_000.0, ops_per_month=0.0)
    # U = 2 × 100000 = 200000; S = 5500 − 0 → ceil(36.36) = 37 > 36 months
    month, text = payback_month(h, 5500.0, W)
    assert month == 37
    assert "after the 36-month life" in text
