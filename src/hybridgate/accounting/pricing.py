"""What a request costs, in exact decimal dollars.

Prices are configured as floats (YAML numbers), so each is converted through
its shortest ``repr`` (``0.15`` becomes ``Decimal("0.15")``, not the binary
fraction ``0.1499999...``): the configured number is the price, exactly.

Every cost is rounded once, half-even, to the nano-dollar (1e-9 USD). That is
the unit money is stored in (SQLite ``INTEGER``), so sums over any number of
requests are exact and an int64 column holds about 9.2 billion dollars.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_EVEN, Context, Decimal

from hybridgate.config import Price

#: the unit costs are rounded to and stored in
NANO = Decimal("0.000000001")
_NANOS_PER_USD = 1_000_000_000
_MTOK = Decimal(1_000_000)
_SECONDS_PER_HOUR = Decimal(3600)
#: wide enough that no intermediate product or quotient is rounded before the final quantize
_CTX = Context(prec=60, rounding=ROUND_HALF_EVEN)


def dec(value: float | int | str | Decimal) -> Decimal:
    """A configured number as the decimal it was written as."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def per_token_usd(price: Price) -> tuple[Decimal, Decimal]:
    """Unrounded USD per input token and per output token.

    A self-hosted route with ``hourly_usd`` spreads the hour over the tokens it
    can serve in it: ``hourly_usd / (3600 * tokens_per_second)`` for every token,
    in or out. The hourly cost replaces per-million prices when both are set,
    because the machine costs the same whatever the token mix.
    """
    return _rates(
        price.input_per_mtok, price.output_per_mtok, price.hourly_usd, price.tokens_per_second
    )


@functools.lru_cache(maxsize=1024)
def _rates(
    input_per_mtok: float, output_per_mtok: float, hourly_usd: float | None, tps: float | None
) -> tuple[Decimal, Decimal]:
    """Memoized: this runs on every request, and Decimal conversion is not free."""
    if hourly_usd is not None:
        if tps is None:  # the config validator forbids this; refuse to guess a throughput
            raise ValueError("hourly_usd needs tokens_per_second")
        each = _CTX.divide(dec(hourly_usd), _CTX.multiply(_SECONDS_PER_HOUR, dec(tps)))
        return each, each
    return (
        _CTX.divide(dec(input_per_mtok), _MTOK),
        _CTX.divide(dec(output_per_mtok), _MTOK),
    )


def cost_usd(price: Price, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """USD for one request's tokens, rounded half-even to the nano-dollar."""
    if prompt_tokens < 0 or completion_tokens < 0:
        raise ValueError("token counts must not be negative")
    per_in, per_out = per_token_usd(price)
    total = _CTX.add(
        _CTX.multiply(per_in, Decimal(prompt_tokens)),
        _CTX.multiply(per_out, Decimal(completion_tokens)),
    )
    return total.quantize(NANO, rounding=ROUND_HALF_EVEN, context=_CTX)


def to_nano(usd: Decimal) -> int:
    """Integer nano-dollars (rounded half-even) for storage and exact sums."""
    return int(
        _CTX.multiply(usd, Decimal(_NANOS_PER_USD)).to_integral_value(rounding=ROUND_HALF_EVEN)
    )


def from_nano(nanos: int) -> Decimal:
    return Decimal(int(nanos)).scaleb(-9, context=_CTX)


def format_usd(usd: Decimal) -> str:
    """Fixed-point text (never ``5E-9``), trailing zeros dropped: JSON carries money as strings."""
    text = format(usd.quantize(NANO, context=_CTX), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
