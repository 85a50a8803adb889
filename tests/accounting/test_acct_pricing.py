"""Costs against hand-computed values, in exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from hybridgate.accounting import cost_usd, format_usd, from_nano, to_nano
from hybridgate.config import Price


def test_per_million_prices() -> None:
    # 1000 * 3/1e6 + 500 * 15/1e6 = 0.003 + 0.0075
    p = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    assert cost_usd(p, 1000, 500) == Decimal("0.0105")


def test_float_prices_are_taken_as_written() -> None:
    # 0.1 and 0.2 are not exact binary floats; 7 * 0.1/1e6 + 3 * 0.2/1e6 = 1.3e-6 exactly
    p = Price(input_per_mtok=0.1, output_per_mtok=0.2)
    assert cost_usd(p, 7, 3) == Decimal("0.0000013")


def test_free_route_and_zero_tokens() -> None:
    assert cost_usd(Price(), 10_000, 10_000) == 0
    assert cost_usd(Price(input_per_mtok=5, output_per_mtok=5), 0, 0) == 0


def test_hourly_cost_is_apportioned_per_token() -> None:
    # $2/h at 50 tok/s: 2 / (3600*50) = 1/90000 USD per token; 1500 tokens = 1/60 USD
    p = Price(hourly_usd=2.0, tokens_per_second=50.0)
    assert cost_usd(p, 1000, 500) == Decimal("0.016666667")  # rounded half-even to 1e-9


def test_hourly_exact_case() -> None:
    # $3.60/h at 100 tok/s: 3.6 / 360000 = 0.00001 per token; 123 + 77 tokens = 0.002
    p = Price(hourly_usd=3.6, tokens_per_second=100.0)
    assert cost_usd(p, 123, 77) == Decimal("0.002")


def test_hourly_replaces_per_million_prices() -> None:
    p = Price(input_per_mtok=100.0, output_per_mtok=100.0, hourly_usd=3.6, tokens_per_second=100.0)
    assert cost_usd(p, 100, 100) == Decimal("0.002")


def test_rounding_is_half_even_to_the_nano_dollar() -> None:
    # 1 token at $0.0005/M = 5e-10 USD: exactly half a nano-dollar rounds to even (0)
    p = Price(input_per_mtok=0.0005)
    assert cost_usd(p, 1, 0) == 0
    assert cost_usd(p, 3, 0) == Decimal("0.000000002")  # 1.5 nano -> 2


def test_large_volumes_stay_exact() -> None:
    p = Price(input_per_mtok=2.5, output_per_mtok=10.0)
    # 10^9 in + 10^9 out = 2500 + 10000
    assert cost_usd(p, 10**9, 10**9) == Decimal(12500)


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(ValueError):
        cost_usd(Price(), -1, 0)


def test_nano_round_trip_and_formatting() -> None:
    assert to_nano(Decimal("0.0105")) == 10_500_000
    assert from_nano(10_500_000) == Decimal("0.0105")
    assert format_usd(from_nano(5)) == "0.000000005"
    assert format_usd(Decimal("12.50")) == "12.5"
    assert format_usd(Decimal(0)) == "0"
    assert format_usd(Decimal("-0.25")) == "-0.25"
