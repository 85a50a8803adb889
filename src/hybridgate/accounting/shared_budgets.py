"""Budgets and rate limits exact across every worker and replica sharing one PostgreSQL.

The same interface as :class:`hybridgate.accounting.budgets.BudgetManager`
(``reserve`` / ``settle`` / ``release``), with the truth in the database:

* **Money and token budgets** are held by one call of the ``hg_budget_reserve``
  function (one statement, one round trip): for every counter that applies (the
  key's and team's day and month, the key's lifetime), in a fixed order, a
  *conditional* ``UPDATE ... SET held = held + x WHERE spent + held + x <= limit``.
  PostgreSQL re-checks the ``WHERE`` against the newest row version when two
  replicas race on a counter, so the check and the hold are one atomic step; a
  counter that would cross its limit raises, which undoes the holds already
  taken. The hold is recorded (``budget_holds``) with an expiry, so a replica
  that dies with requests in flight does not leak budget: expired holds are
  settled at their reserved (worst-case) amount by whichever replica sees them.
* **Rate limits** are sliding windows in Redis (:mod:`.ratelimit`).

Why a conditional UPDATE for money and Redis for rates (``benchmarks/scale_bench.py``
measures both for budgets): spend must be durable and exact for a month, so it
lives where the receipts and usage rows live, and a Redis restart can never
forget it; rate windows are one minute long, so losing them on a Redis restart
only forgets a minute of counting, and they are touched by every request.

Settling is handed to one background thread with its own connection; each
settle is one statement (no batch transaction holding row locks in an order
a concurrent reserve could cross, so no deadlocks). Until it commits, the hold
still counts, so a slow settle can only refuse early, never overspend.

Fail closed: if PostgreSQL (or, for a rate-limited key, Redis) cannot be
reached, ``reserve`` raises 503 for every subject that has a limit; requests
no limit applies to are not held back.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import psycopg

from hybridgate.accounting.budgets import (
    LIFETIME,
    UPSERT,
    Reservation,
    _Limits,
    _merge_limits,
    periods_at,
    spend_capped,
)
from hybridgate.accounting.pricing import format_usd, from_nano, to_nano
from hybridgate.accounting.ratelimit import RateSubject, RedisRateLimiter
from hybridgate.config import BudgetConfig
from hybridgate.errors import BudgetExceeded, ConfigError, InvalidRequest, ServiceUnavailable
from hybridgate.store.base import Migration
from hybridgate.store.postgres import PostgresStore

log = logging.getLogger("hybridgate.budgets")

#: A hold not settled within this long belongs to a replica that died: settle it at its
#: reserved (worst-case) amount.
HOLD_TTL_S = 900.0
SWEEP_INTERVAL_S = 30.0
BUDGET_EXCEEDED_STATE = "HGB01"

Counter = tuple[str, str, str]
Row = tuple[Counter, int | None, int | None]  # counter, usd limit (nano), token limit


class _Live:
    """What a reservation holds, kept until it is settled or released."""

    __slots__ = ("free", "held", "rates")

    def __init__(self, held: list[Counter], free: list[Counter], rates: list[RateSubject]):
        self.held = held  # counters holding the reservation in budget_holds
        self.free = free  # counters of subjects without limits: spend only, no hold
        self.rates = rates


class SharedBudgetManager:
    """Budgets in PostgreSQL, rate limits in Redis; drop-in for :class:`BudgetManager`."""

    def __init__(
        self,
        store: PostgresStore,
        budgets: Sequence[BudgetConfig],
        *,
        rates: RedisRateLimiter | None = None,
        clock: Callable[[], float] = time.time,
        hold_ttl_s: float = HOLD_TTL_S,
    ) -> None:
        self._store = store
        self._limits = _merge_limits(budgets)
        self._rates = rates
        self._clock = clock
        self._hold_ttl_ns = int(hold_ttl_s * 1e9)
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[tuple[str, _Live | None, int, int] | None] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        if rates is None and any(lim.windowed for lim in self._limits.values()):
            raise ConfigError(
                "rate limits (requests_per_minute, tokens_per_minute) shared by replicas"
                " need store.redis_url"
            )

    @staticmethod
    def migrations() -> list[Migration]:
        from hybridgate.accounting.budgets import BudgetManager

        return BudgetManager.migrations()

    # -- lifecycle ------------------------------------------------------------
    def load(self) -> None:
        """Nothing to restore (the database is the state); starts the settling thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._settle_loop, name="hybridgate-settle", daemon=True
            )
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Settle what is queued, then stop."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join(timeout)
            self._thread = None
        if self._rates is not None:
            self._rates.close()

    def ping(self) -> None:
        """Readiness: Redis answers (when rate limits use it)."""
        if self._rates is not None:
            self._rates.ping()

    # -- the request path ---------------------------------------------------------
    def caps_spend(
        self, *, key_id: str | None, team: str | None, key_budget_usd: Decimal | None
    ) -> bool:
        """Whether a reservation for this key must bound what the upstream can bill."""
        return spend_capped(self._limits, key_id, team, key_budget_usd)

    def reserve(
        self,
        *,
        key_id: str | None,
        team: str | None,
        usd: Decimal,
        tokens: int,
        key_budget_usd: Decimal | None = None,
    ) -> Reservation:
        """Hold ``usd`` and ``tokens`` against every applicable limit, or refuse (429/503)."""
        if usd < 0 or tokens < 0:
            raise InvalidRequest("a reservation cannot be negative")
        usd_n = to_nano(usd)
        day, month = periods_at(self._clock())
        subjects: list[tuple[str, str]] = []
        if key_id is not None:
            subjects.append(("key", key_id))
        if team is not None:
            subjects.append(("team", team))
        rid = f"rsv_{secrets.token_hex(12)}"
        rates: list[RateSubject] = []
        rows: list[Row] = []
        free: list[Counter] = []
        for subj in subjects:
            lim = self._limits.get(subj) or _Limits()
            if lim.windowed:
                rates.append(
                    RateSubject(subj[0], subj[1], lim.requests_per_minute, lim.tokens_per_minute)
                )
            cap = None
            if subj[0] == "key" and key_budget_usd is not None:
                cap = to_nano(key_budget_usd)
            per: list[Row] = [
                ((*subj, day), lim.usd_per_day, lim.tokens_per_day),
                ((*subj, month), lim.usd_per_month, lim.tokens_per_month),
            ]
            if subj[0] == "key":
                per.append(((*subj, LIFETIME), cap, None))
            if any(u is not None or t is not None for _, u, t in per):
                rows += per
            else:
                free += [c for c, _, _ in per]
        if rates:
            assert self._rates is not None  # the constructor refused limits without Redis
            self._rates.reserve(rates, rid, tokens)
        if rows:
            rows.sort(key=lambda r: r[0])  # one lock order for every replica: no deadlocks
            self._hold(rid, rows, usd_n, tokens)
        with self._lock:
            self._live[rid] = _Live([c for c, _, _ in rows], free, rates)
        return Reservation(id=rid, key_id=key_id, team=team, usd=usd, tokens=tokens)

    def _hold(self, rid: str, rows: list[Row], usd_n: int, tokens: int) -> None:
        args = (
            rid,
            [c[0] for c, _, _ in rows],
            [c[1] for c, _, _ in rows],
            [c[2] for c, _, _ in rows],
            [u for _, u, _ in rows],
            [t for _, _, t in rows],
            usd_n,
            tokens,
            time.time_ns() + self._hold_ttl_ns,
        )
        try:
            with self._store.reader() as conn:
                try:
                    conn.execute(
                        "SELECT hg_budget_reserve(?, ?::text[], ?::text[], ?::text[],"
                        " ?::bigint[], ?::bigint[], ?, ?, ?)",
                        args,
                    )
                except psycopg.Error as exc:
                    if exc.sqlstate == BUDGET_EXCEEDED_STATE:
                        raise _exceeded(rows, exc, usd_n, tokens) from None
                    raise
        except BudgetExceeded:
            raise
        except (ServiceUnavailable, psycopg.Error) as exc:
            why = exc.message if isinstance(exc, ServiceUnavailable) else str(exc)
            raise ServiceUnavailable(
                f"budgets cannot be checked ({why}); request refused", code="budget_unavailable"
            ) from exc

    def settle(self, res: Reservation, *, usd: Decimal, tokens: int) -> None:
        """Replace the hold by the actual spend (committed by the settling thread)."""
        live = self._pop(res)
        if live is not None:
            self._jobs.put((res.id, live, max(0, to_nano(usd)), max(0, tokens)))

    def release(self, res: Reservation) -> None:
        """Nothing was spent: drop the hold (the request still counts against rate limits)."""
        live = self._pop(res)
        if live is not None:
            self._jobs.put((res.id, live, 0, 0))

    def _pop(self, res: Reservation) -> _Live | None:
        with self._lock:
            live = self._live.pop(res.id, None)
        if live is None:
            log.warning("reservation %s settled or released twice; ignored", res.id)
        if self._thread is None:
            self.load()
        return live

    # -- inspection -------------------------------------------------------------
    def status(self, scope: str, name: str) -> dict[str, Any]:
        """Spent and held amounts across all replicas (money as strings)."""
        day, month = periods_at(self._clock())
        rows = self._store.query(
            "SELECT period, usd_nano, usd_held, tokens, tokens_held FROM budget_spend"
            " WHERE scope = ? AND name = ? AND period IN (?, ?, ?)",
            (scope, name, day, month, LIFETIME),
        )
        by = {r[0]: r[1:] for r in rows}
        out: dict[str, Any] = {}
        for label, period in (("day", day), ("month", month), ("lifetime", LIFETIME)):
            usd_n, usd_h, tok, tok_h = by.get(period, (0, 0, 0, 0))
            out[label] = {
                "usd": format_usd(from_nano(int(usd_n))),
                "usd_reserved": format_usd(from_nano(int(usd_h))),
                "tokens": int(tok),
                "tokens_reserved": int(tok_h),
            }
        return out

    @property
    def outstanding(self) -> int:
        """This replica's reservations neither settled nor released."""
        return len(self._live)

    # -- settling thread -----------------------------------------------------------
    def _settle_loop(self) -> None:
        conn: Any = None
        last_sweep = 0.0
        while True:
            try:
                job = self._jobs.get(timeout=1.0)
            except queue.Empty:
                job = ("", None, 0, 0)  # a tick: maybe sweep
            if job is None:
                break
            try:
                if conn is None:
                    conn = self._store.connect()
                rid, live, usd_n, tokens = job
                if live is not None:
                    self._settle_one(conn, rid, live, usd_n, tokens)
                if time.monotonic() - last_sweep > SWEEP_INTERVAL_S:
                    last_sweep = time.monotonic()
                    self._sweep(conn)
            except (psycopg.Error, ServiceUnavailable) as exc:
                log.error("could not settle budget spend (will retry): %s", exc)
                if conn is not None:
                    conn.close()
                    conn = None
                if job[1] is not None:
                    self._jobs.put(job)  # the hold still counts meanwhile: never overspent
                time.sleep(0.2)
        if conn is not None:
            conn.close()

    def _settle_one(self, conn: Any, rid: str, live: _Live, usd_n: int, tokens: int) -> None:
        if live.rates and self._rates is not None:
            self._rates.retoken(live.rates, rid, tokens)
        if live.held:
            conn.execute("SELECT hg_budget_settle(?, ?, ?)", (rid, usd_n, tokens))
        if live.free and (usd_n or tokens):
            conn.executemany(UPSERT, [(*c, usd_n, tokens) for c in live.free])

    @staticmethod
    def _sweep(conn: Any) -> None:
        """Settle holds whose replica died before settling, at their reserved amount."""
        expired = conn.execute(
            "SELECT id, usd_nano, tokens FROM budget_holds WHERE expires_ns < ? LIMIT 1000",
            (time.time_ns(),),
        ).fetchall()
        for rid, usd_n, tokens in expired:
            conn.execute("SELECT hg_budget_settle(?, ?, ?)", (rid, usd_n, tokens))
        if expired:
            log.warning("settled %d expired budget holds at their reserved amount", len(expired))


def _exceeded(rows: list[Row], exc: psycopg.Error, usd_n: int, tokens: int) -> BudgetExceeded:
    detail = (exc.diag.message_detail or "").split()
    try:
        i, spent, used = int(detail[0]) - 1, int(detail[1]), int(detail[2])
        (scope, name, period), usd_lim, tok_lim = rows[i]
    except (IndexError, ValueError):
        return BudgetExceeded("budget exceeded")
    who = f"{scope} {name!r}"
    label = {"life": "lifetime"}.get(period, "day" if period.startswith("d:") else "month")
    if usd_lim is not None and spent + usd_n > usd_lim:
        what = "lifetime budget" if period == LIFETIME else f"usd_per_{label} limit"
        return BudgetExceeded(
            f"budget exceeded for {who}: {what} ${format_usd(from_nano(usd_lim))} (spent or"
            f" reserved ${format_usd(from_nano(spent))}, this request needs up to"
            f" ${format_usd(from_nano(usd_n))})"
        )
    return BudgetExceeded(
        f"budget exceeded for {who}: tokens_per_{label} limit {tok_lim}"
        f" ({used} used or reserved, this request needs up to {tokens})"
    )
