"""A TCO workload measured from the gateway's own usage log instead of typed in.

The log (``usage_log`` in ``<home>/gateway.db``, or in the shared PostgreSQL
database of ``store.kind: postgres``, written by
:class:`hybridgate.accounting.usage.UsageLog`) holds one row per request. Over
a window of the last ``days`` days we take the answered requests of one team
or virtual model (or all), their mean prompt and completion tokens, and scale
the count to a month: ``requests × 30.4375 / observed days``, where the
observed span runs from the first row in the window (or the window's start,
whichever is later) to now, and is at least one day so a fresh log is not
scaled up from minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from hybridgate.accounting.usage import UsageLog
from hybridgate.config import GatewayConfig
from hybridgate.errors import GatewayError
from hybridgate.planner.tco import Workload
from hybridgate.store.base import Store
from hybridgate.store.factory import reading_store, table_exists

DAYS_PER_MONTH = 30.4375  # 365.25 / 12
NS_PER_DAY = 86_400 * 10**9
UsageGroup = Literal["team", "model"]
#: An SQLite database file, or a gateway configuration naming its store (either kind).
UsageSource = Path | GatewayConfig


class UsageUnavailable(ValueError):
    pass


@dataclass(frozen=True)
class UsageSample:
    label: str
    requests: int  # answered (outcome ok)
    prompt_tokens: int
    completion_tokens: int
    observed_days: float


def workload_from_sample(
    s: UsageSample, *, peak_factor: float = 1.0, max_response_s: float | None = None
) -> Workload:
    if s.requests <= 0:
        raise UsageUnavailable(f"{s.label}: no answered requests in the window")
    days = max(1.0, s.observed_days)
    monthly = s.requests * DAYS_PER_MONTH / days
    return Workload(
        requests_per_month=monthly,
        input_tokens=s.prompt_tokens / s.requests,
        output_tokens=s.completion_tokens / s.requests,
        peak_factor=peak_factor,
        max_response_s=max_response_s,
        source=(
            f"usage log, {s.label}: {s.requests:,} answered requests over {days:.2f} days × "
            f"{DAYS_PER_MONTH} / {days:.2f}; tokens = mean prompt / completion tokens"
        ),
    )


def read_usage_sample(
    source: UsageSource,
    *,
    by: UsageGroup | None = None,
    group: str | None = None,
    days: float = 30.0,
    now_ns: int | None = None,
) -> UsageSample:
    """Totals from the usage log; reads only (the database is never created or migrated)."""
    if days <= 0:
        raise UsageUnavailable("days must be positive")
    if (by is None) != (group is None):
        raise UsageUnavailable("give both the grouping (team/model) and the group's name")
    now = time.time_ns() if now_ns is None else now_ns
    since = now - int(days * NS_PER_DAY)
    with _usage_store(source) as store:
        log = UsageLog(store)
        if by is None:
            rows = [log.summary(since_ns=since)]
            label = "all traffic"
        else:
            found = [r for r in log.report(by=by, since_ns=since) if r["group"] == group]
            if not found:
                raise UsageUnavailable(f"no usage for {by} {group!r} in the last {days:g} days")
            rows, label = found, f"{by} {group}"
        first = store.query("SELECT MIN(time_ns) FROM usage_log WHERE time_ns >= ?", [since])
    start = max(since, int(first[0][0]) if first and first[0][0] is not None else now)
    row = rows[0]
    return UsageSample(
        label=label,
        requests=int(row["ok"]),
        prompt_tokens=int(row["prompt_tokens"]),
        completion_tokens=int(row["completion_tokens"]),
        observed_days=(now - start) / NS_PER_DAY,
    )


def measured_route_throughput(
    source: UsageSource, route: str, *, days: float = 30.0, now_ns: int | None = None
) -> tuple[float, str]:
    """A route's busiest minute in the usage log: tokens (in + out) served per second.

    What the route *did* sustain, not what it could: a floor on its capacity
    unless it was saturated in that minute. Reads only.
    """
    if days <= 0:
        raise UsageUnavailable("days must be positive")
    now = time.time_ns() if now_ns is None else now_ns
    since = now - int(days * NS_PER_DAY)
    minute = 60 * 10**9
    with _usage_store(source) as store:
        rows = store.query(
            "SELECT time_ns / ? AS m, SUM(prompt_tokens + completion_tokens) AS t, COUNT(*) "
            "FROM usage_log WHERE route = ? AND outcome = 'ok' AND time_ns >= ? "
            "GROUP BY m ORDER BY t DESC LIMIT 1",
            [minute, route, since],
        )
    if not rows or rows[0][1] is None or int(rows[0][1]) <= 0:
        raise UsageUnavailable(f"no answered requests on route {route!r} in the last {days:g} days")
    tokens, count = int(rows[0][1]), int(rows[0][2])
    tps = tokens / 60.0
    return tps, (
        f"measured: route {route}'s busiest minute in the usage log ({count:,} requests, "
        f"{tokens:,} tokens / 60 s = {tps:,.1f} tokens/s per replica)"
    )


@contextmanager
def _usage_store(source: UsageSource) -> Iterator[Store]:
    """The store holding the usage log, open for reading; every failure a UsageUnavailable."""
    cfg = source if isinstance(source, GatewayConfig) else None
    if cfg is None:
        assert isinstance(source, Path)
        cfg = GatewayConfig(database=str(source))
    where = "the PostgreSQL store" if cfg.store.kind == "postgres" else str(cfg.database_path)
    try:
        with reading_store(cfg) as store:
            if not table_exists(store, "usage_log"):
                raise UsageUnavailable(f"{where}: no usage_log table (no requests recorded yet)")
            yield store
    except FileNotFoundError as exc:
        raise UsageUnavailable(str(exc)) from exc
    except GatewayError as exc:
        raise UsageUnavailable(f"{where}: cannot read usage: {exc}") from exc
