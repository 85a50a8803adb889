"""The usage log: one row per request (never its prompt), and the reports built from it.

Savings are measured against a *baseline*: sending the same request to the
strongest route of its virtual model, taken to be the most expensive one.

* **Dollars.** Each row carries ``baseline_cost_usd``: the request's actual
  prompt and completion tokens priced on the baseline route. Saved dollars are
  ``Σ baseline_cost − Σ cost`` over the rows in scope (exact, nano-dollars).
* **Time.** For every request that was answered (``outcome = ok``), the
  baseline time is the *average observed latency* of successful requests on
  its baseline route, over the same time window (all keys: a route's speed is
  not a per-key fact). Saved time is ``Σ (baseline average − actual latency)``
  over those requests. Requests whose baseline route was never observed in the
  window are left out of the time figure and counted as ``time_unknown``.
  This compares whole-request latency, not latency per token, so it is a fair
  estimate only when the mix of prompts is similar across routes.

Money is stored as integer nano-dollars and reported as decimal strings.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from hybridgate.accounting.pricing import cost_usd, format_usd, from_nano, to_nano
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.store.base import Migration, Store

log = logging.getLogger("hybridgate.usage")

GroupBy = Literal["team", "route", "location", "day", "key", "model", "adapter"]
_GROUP_COLUMNS: dict[str, str] = {
    "team": "u.team",
    "route": "u.route",
    "location": "u.location",
    "day": "u.day",
    "key": "u.key_id",
    "model": "u.virtual_model",
    "adapter": "u.adapter",
}

_MIGRATIONS = [
    Migration(
        "usage",
        1,
        """
        CREATE TABLE usage_log (
            request_id TEXT PRIMARY KEY,
            receipt_id TEXT NOT NULL,
            time_ns INTEGER NOT NULL,
            day TEXT NOT NULL,
            key_id TEXT,
            team TEXT,
            virtual_model TEXT NOT NULL,
            route TEXT,
            provider TEXT,
            location TEXT,
            prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL,
            usage_reported INTEGER NOT NULL,
            cost_nano INTEGER NOT NULL,
            baseline_nano INTEGER NOT NULL,
            baseline_route TEXT,
            latency_ms REAL NOT NULL,
            outcome TEXT NOT NULL,
            status INTEGER NOT NULL
        );
        CREATE INDEX usage_log_time ON usage_log (time_ns);
        CREATE INDEX usage_log_key_time ON usage_log (key_id, time_ns);
        """,
    ),
    Migration(
        "usage",
        2,
        """
        ALTER TABLE usage_log ADD COLUMN adapter TEXT;
        ALTER TABLE usage_log ADD COLUMN adapter_sha256 TEXT
        """,
    ),
]


@dataclass(frozen=True)
class UsageRecord:
    request_id: str
    receipt_id: str
    time_ns: int
    key_id: str | None
    team: str | None
    virtual_model: str
    route: str | None
    provider: str | None
    location: str | None
    prompt_tokens: int
    completion_tokens: int
    usage_reported: bool
    cost_usd: Decimal
    baseline_cost_usd: Decimal
    baseline_route: str | None
    latency_ms: float
    outcome: str
    status: int
    #: The task adapter that answered (its registered name and content id), if any.
    adapter: str | None = None
    adapter_sha256: str | None = None


def baseline_for(
    vm: VirtualModel,
    routes: Mapping[str, RouteConfig],
    prompt_tokens: int,
    completion_tokens: int,
) -> tuple[str | None, Decimal]:
    """The strongest route of ``vm`` (the most expensive for these tokens) and its cost.

    Ties go to the route listed first. Routes of the model that are not
    configured are ignored; with none left there is no baseline.
    """
    # imported here: routing.plan prices routes with this package, so a top-level
    # import would be circular
    from hybridgate.routing.plan import candidate_routes

    best: tuple[str | None, Decimal] = (None, Decimal(0))
    for name in candidate_routes(vm):
        route = routes.get(name)
        if route is None:
            continue
        c = cost_usd(route.price, prompt_tokens, completion_tokens)
        if best[0] is None or c > best[1]:
            best = (name, c)
    return best


def _day(time_ns: int) -> str:
    return _day_label(time_ns // 86_400_000_000_000)


@functools.lru_cache(maxsize=64)
def _day_label(day_index: int) -> str:
    """Memoized: every usage record needs its UTC day, and strftime is slow."""
    return datetime.fromtimestamp(day_index * 86_400, tz=UTC).strftime("%Y-%m-%d")


#: One usage row; ``ON CONFLICT DO NOTHING`` because a row is never rewritten, and the
#: rows of one batch go together in one statement (``Store.defer_rows``).
_INSERT = (
    "INSERT INTO usage_log (request_id, receipt_id, time_ns, day, key_id,"
    " team, virtual_model, route, provider, location, prompt_tokens,"
    " completion_tokens, usage_reported, cost_nano, baseline_nano, baseline_route,"
    " latency_ms, outcome, status, adapter, adapter_sha256) VALUES"
    " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT DO NOTHING"
)


class UsageLog:
    def __init__(self, store: Store) -> None:
        self._store = store

    @staticmethod
    def migrations() -> list[Migration]:
        return list(_MIGRATIONS)

    def record(self, rec: UsageRecord) -> None:
        """Queue the row on the group-commit writer; the request does not wait for the disk."""
        row = (
            rec.request_id,
            rec.receipt_id,
            rec.time_ns,
            _day(rec.time_ns),
            rec.key_id,
            rec.team,
            rec.virtual_model,
            rec.route,
            rec.provider,
            rec.location,
            rec.prompt_tokens,
            rec.completion_tokens,
            1 if rec.usage_reported else 0,
            to_nano(rec.cost_usd),
            to_nano(rec.baseline_cost_usd),
            rec.baseline_route,
            float(rec.latency_ms),
            rec.outcome,
            rec.status,
            rec.adapter,
            rec.adapter_sha256,
        )
        self._store.defer_rows(_INSERT, row).add_done_callback(_log_failure)

    def report(
        self,
        *,
        by: GroupBy,
        since_ns: int | None = None,
        key_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """One row per group (largest spend first); ``group`` is None where the field is unset."""
        column = _GROUP_COLUMNS.get(by)
        if column is None:  # the column name goes into SQL: only the fixed list may
            raise ValueError(f"cannot group usage by {by!r}")
        rows = self._aggregate(column, since_ns, key_id)
        out = [_row_dict(r[0], r[1:]) for r in rows]
        out.sort(key=lambda d: (-Decimal(d["cost_usd"]), str(d["group"])))
        return out

    def summary(self, *, key_id: str | None = None, since_ns: int | None = None) -> dict[str, Any]:
        """Totals over the scope, with savings in dollars and time (see the module docstring)."""
        rows = self._aggregate(None, since_ns, key_id)
        out = _row_dict(None, rows[0])
        del out["group"]
        out["savings_method"] = (
            "baseline = same tokens on the most expensive route of the request's virtual model;"
            " time = that route's average observed latency minus the actual latency"
        )
        return out

    def _aggregate(
        self, column: str | None, since_ns: int | None, key_id: str | None
    ) -> list[tuple[Any, ...]]:
        where: list[str] = ["1=1"]
        params: list[Any] = []
        base_where: list[str] = ["outcome = 'ok'", "route IS NOT NULL"]
        base_params: list[Any] = []
        if since_ns is not None:
            where.append("u.time_ns >= ?")
            params.append(since_ns)
            base_where.append("time_ns >= ?")
            base_params.append(since_ns)
        if key_id is not None:
            where.append("u.key_id = ?")
            params.append(key_id)
        group_sel = f"{column} AS grp, " if column else ""
        group_by = f" GROUP BY {column}" if column else ""
        sql = (
            "WITH base AS (SELECT route, AVG(latency_ms) AS avg_ms FROM usage_log"
            f" WHERE {' AND '.join(base_where)} GROUP BY route) "
            f"SELECT {group_sel}"
            " COUNT(*),"
            " COALESCE(SUM(CASE WHEN u.outcome = 'ok' THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN u.outcome IN ('refused', 'blocked') THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN u.outcome NOT IN ('ok', 'refused', 'blocked')"
            " THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(u.prompt_tokens), 0),"
            " COALESCE(SUM(u.completion_tokens), 0),"
            " COALESCE(SUM(u.cost_nano), 0),"
            " COALESCE(SUM(u.baseline_nano), 0),"
            " AVG(CASE WHEN u.outcome = 'ok' THEN u.latency_ms END),"
            " SUM(CASE WHEN u.outcome = 'ok' THEN b.avg_ms END),"
            " SUM(CASE WHEN u.outcome = 'ok' AND b.avg_ms IS NOT NULL THEN u.latency_ms END),"
            " COALESCE(SUM(CASE WHEN u.outcome = 'ok' AND b.avg_ms IS NULL THEN 1 ELSE 0 END), 0),"
            " COALESCE(SUM(CASE WHEN u.usage_reported = 0 AND u.route IS NOT NULL"
            " THEN 1 ELSE 0 END), 0)"
            " FROM usage_log u LEFT JOIN base b ON b.route = u.baseline_route"
            f" WHERE {' AND '.join(where)}{group_by}"
        )
        return self._store.query(sql, [*base_params, *params])


def _row_dict(group: Any, agg: tuple[Any, ...]) -> dict[str, Any]:
    (
        requests,
        ok,
        refused,
        errors,
        p_tok,
        c_tok,
        cost_n,
        base_n,
        avg_ms,
        base_ms_sum,
        actual_ms_sum,
        time_unknown,
        counted,
    ) = agg
    cost, baseline = from_nano(int(cost_n)), from_nano(int(base_n))
    saved = baseline - cost
    pct = None if baseline == 0 else round(float(saved / baseline) * 100.0, 2)
    timed = int(ok) - int(time_unknown)
    if base_ms_sum is not None:  # PostgreSQL returns NUMERIC sums as Decimal
        base_ms_sum = float(base_ms_sum)
    actual_ms_sum = None if actual_ms_sum is None else float(actual_ms_sum)
    time_saved = None if base_ms_sum is None else round(base_ms_sum - (actual_ms_sum or 0.0), 3)
    base_avg = None if base_ms_sum is None or timed <= 0 else round(base_ms_sum / timed, 3)
    return {
        "group": group,
        "requests": int(requests),
        "ok": int(ok),
        "refused": int(refused),
        "errors": int(errors),
        "prompt_tokens": int(p_tok),
        "completion_tokens": int(c_tok),
        "total_tokens": int(p_tok) + int(c_tok),
        "tokens_counted_by_gateway": int(counted),
        "cost_usd": format_usd(cost),
        "baseline_cost_usd": format_usd(baseline),
        "saved_usd": format_usd(saved),
        "saved_pct": pct,
        "latency_ms_avg": None if avg_ms is None else round(float(avg_ms), 3),
        "baseline_latency_ms_avg": base_avg,
        "time_saved_ms": time_saved,
        "time_unknown": int(time_unknown),
    }


def _log_failure(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("could not record usage: %s", exc)
