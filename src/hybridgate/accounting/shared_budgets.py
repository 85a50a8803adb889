"""Budgets and rate limits exact across every worker and replica sharing one PostgreSQL.

The same interface as :class:`hybridgate.accounting.budgets.BudgetManager`
(``reserve`` / ``settle`` / ``release``, and ``areserve`` for the request path),
with the truth in the database:

* **Money and token budgets** are held in PostgreSQL, in batches. Every
  reservation waiting at one moment goes to one thread, which decides the whole
  batch in one statement, ``hg_budget_reserve_many`` (one round trip, one
  commit): it locks every counter the batch touches (the key's and team's day
  and month, the key's lifetime) in one sorted order, then checks each
  reservation in turn against the locked totals, *conditionally*: a
  reservation is held only if ``spent + held + x <= limit`` for every counter
  it needs, and what it holds counts against the next one. A reservation that
  would cross a limit is refused alone (429); the others are held. So
  concurrent requests on every replica still see one exact total, and a
  request pays one shared commit instead of its own
  (:mod:`hybridgate.accounting.budget_sql` has the SQL and why it cannot
  overspend). The hold is recorded (``budget_holds``) with an expiry, so a
  replica that dies with requests in flight does not leak budget: expired
  holds are settled at their reserved (worst-case) amount by whichever replica
  sees them.
* **Rate limits** are sliding windows in Redis (:mod:`.ratelimit`), checked for
  the same batch in one pipelined round trip before its holds are taken.

Why a thread per direction rather than psycopg's async API on the event loop:
the batch is what saves the time, not the driver; a thread serves the request
path (``areserve`` awaits a future, so the event loop never blocks on a round
trip) and synchronous callers (the CLI, benchmarks, ``close`` from any thread)
alike, with one connection each that it reconnects by itself.

Why a conditional UPDATE for money and Redis for rates (``benchmarks/scale_bench.py``
measures both for budgets): spend must be durable and exact for a month, so it
lives where the receipts and usage rows live, and a Redis restart can never
forget it; rate windows are one minute long, so losing them on a Redis restart
only forgets a minute of counting, and they are touched by every request.

Settling goes to a second thread, which also commits whatever is waiting as one
statement (``hg_budget_settle_many``: drop the holds, add the spend, counters
in the same sorted order). Until it commits, a hold still counts, so slow
settling can only refuse early, never overspend.

A key or team with no budget configured costs no PostgreSQL round trip before
its request: nothing is held for it (its spend is still added when it settles,
so a budget configured later sees the period's spend).

Fail closed: if PostgreSQL (or, for a rate-limited key, Redis) cannot be
reached or does not answer within ``wait_s``, the reservation is refused with
503 for every subject that has a limit; requests no limit applies to are not
held back. A request abandoned while its batch runs (its client left, or the
wait ran out) has its hold released as soon as the batch commits.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from decimal import Decimal
from typing import Any

import psycopg

from hybridgate.accounting.batch_thread import BatchThread
from hybridgate.accounting.budgets import (
    LIFETIME,
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
from hybridgate.store.postgres import PgConn, PostgresStore

log = logging.getLogger("hybridgate.budgets")

#: A hold not settled within this long belongs to a replica that died: settle it at its
#: reserved (worst-case) amount.
HOLD_TTL_S = 900.0
SWEEP_INTERVAL_S = 30.0
#: How long the settle thread gathers settles into one statement. Nobody awaits a settle,
#: and an unsettled hold still counts (it can only refuse early, never overspend), so a
#: few milliseconds cost nothing and make a commit carry many requests' spend.
SETTLE_LINGER_S = 0.01
#: How long a request waits for its batch before it is refused (503, fail closed).
WAIT_S = 10.0
#: A batch statement stuck longer than this (a lock held by a stalled session) gives up.
STATEMENT_TIMEOUT_MS = 10_000

Counter = tuple[str, str, str]
Row = tuple[Counter, int | None, int | None]  # counter, usd limit (nano), token limit

RESERVE_MANY = (
    "SELECT hg_budget_reserve_many(?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[],"
    " ?::bigint[], ?::bigint[], ?::int[], ?::int[], ?::bigint[], ?::bigint[])"
)
SETTLE_MANY = (
    "SELECT hg_budget_settle_many(?::text[], ?::bigint[], ?::bigint[], ?::text[], ?::text[],"
    " ?::text[], ?::bigint[], ?::bigint[])"
)


class _Live:
    """What a reservation holds, kept until it is settled or released."""

    __slots__ = ("free", "held", "rates")

    def __init__(self, held: list[Counter], free: list[Counter], rates: list[RateSubject]):
        self.held = held  # counters holding the reservation in budget_holds
        self.free = free  # counters of subjects without limits: spend only, no hold
        self.rates = rates


class _Ask:
    """One reservation waiting for its batch; ``fut`` resolves once it is held (or not)."""

    __slots__ = ("expires_ns", "fut", "rates", "rid", "rows", "tokens", "usd_n")

    def __init__(
        self, rid: str, rows: list[Row], rates: list[RateSubject], usd_n: int, tokens: int
    ) -> None:
        self.rid, self.rows, self.rates = rid, rows, rates
        self.usd_n, self.tokens = usd_n, tokens
        self.expires_ns = 0
        self.fut: Future[None] = Future()


#: A settle or release: reservation id, what it holds, actual usd (nano) and tokens.
_Settle = tuple[str, _Live, int, int]


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
        wait_s: float = WAIT_S,
    ) -> None:
        self._store = store
        self._limits = _merge_limits(budgets)
        self._rates = rates
        self._clock = clock
        self._hold_ttl_ns = int(hold_ttl_s * 1e9)
        self._wait_s = wait_s
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._reserver: BatchThread[_Ask] = BatchThread("hybridgate-reserve", self._reserve_batch)
        self._settler: BatchThread[_Settle] = BatchThread(
            "hybridgate-settle", self._settle_batch, linger_s=SETTLE_LINGER_S
        )
        self._last_sweep = 0.0
        #: PostgreSQL statements (tried) deciding reservations: one per batch, not request.
        self.reserve_batches = 0
        #: Settle statements committed (each carries every settle gathered meanwhile).
        self.settle_batches = 0
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
        """Nothing to restore (the database is the state); starts the two batch threads."""
        self._reserver.start()
        self._settler.start()

    def close(self, timeout: float = 10.0) -> None:
        """Decide what is waiting, settle what is queued, then stop."""
        self._reserver.stop(timeout)
        self._settler.stop(timeout)
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

    async def areserve(
        self,
        *,
        key_id: str | None,
        team: str | None,
        usd: Decimal,
        tokens: int,
        key_budget_usd: Decimal | None = None,
    ) -> Reservation:
        """Hold ``usd`` and ``tokens`` against every applicable limit, or refuse (429/503).

        Awaits the batch the reservation joins; the event loop never waits on a round
        trip. Nothing to check (no limit applies): no round trip at all.
        """
        res, ask, live = self._plan(key_id, team, usd, tokens, key_budget_usd)
        if ask is not None:
            self._submit(ask)
            try:
                await asyncio.wait_for(asyncio.wrap_future(ask.fut), self._wait_s)
            except TimeoutError:
                self._abandon(ask, live)
                raise self._too_slow() from None
            except asyncio.CancelledError:
                self._abandon(ask, live)
                raise
        self._register(res.id, live)
        return res

    def reserve(
        self,
        *,
        key_id: str | None,
        team: str | None,
        usd: Decimal,
        tokens: int,
        key_budget_usd: Decimal | None = None,
    ) -> Reservation:
        """:meth:`areserve` for synchronous callers (it blocks until the batch is decided)."""
        res, ask, live = self._plan(key_id, team, usd, tokens, key_budget_usd)
        if ask is not None:
            self._submit(ask)
            try:
                ask.fut.result(timeout=self._wait_s)
            except TimeoutError:
                self._abandon(ask, live)
                raise self._too_slow() from None
        self._register(res.id, live)
        return res

    def _plan(
        self,
        key_id: str | None,
        team: str | None,
        usd: Decimal,
        tokens: int,
        key_budget_usd: Decimal | None,
    ) -> tuple[Reservation, _Ask | None, _Live]:
        """What a reservation must check: counters with limits, rate windows, the rest."""
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
        rows.sort(key=lambda r: r[0])  # one lock order for every replica: no deadlocks
        res = Reservation(id=rid, key_id=key_id, team=team, usd=usd, tokens=tokens)
        live = _Live([c for c, _, _ in rows], free, rates)
        ask = _Ask(rid, rows, rates, usd_n, tokens) if rows or rates else None
        return res, ask, live

    def _submit(self, ask: _Ask) -> None:
        ask.expires_ns = time.time_ns() + self._hold_ttl_ns
        if not self._reserver.running:
            self.load()
        self._reserver.put(ask)

    def _register(self, rid: str, live: _Live) -> None:
        with self._lock:
            self._live[rid] = live

    def _abandon(self, ask: _Ask, live: _Live) -> None:
        """Nobody will use this reservation: release its hold once its batch has taken it."""

        def done(fut: Future[None]) -> None:
            if not fut.cancelled() and fut.exception() is None:
                self._queue_settle(ask.rid, live, 0, 0)

        ask.fut.add_done_callback(done)

    def _too_slow(self) -> ServiceUnavailable:
        return ServiceUnavailable(
            f"budgets cannot be checked (no answer within {self._wait_s:g} s); request refused",
            code="budget_unavailable",
        )

    def settle(self, res: Reservation, *, usd: Decimal, tokens: int) -> None:
        """Replace the hold by the actual spend (committed by the settling thread)."""
        live = self._pop(res)
        if live is not None:
            self._queue_settle(res.id, live, max(0, to_nano(usd)), max(0, tokens))

    def release(self, res: Reservation) -> None:
        """Nothing was spent: drop the hold (the request still counts against rate limits)."""
        live = self._pop(res)
        if live is not None:
            self._queue_settle(res.id, live, 0, 0)

    def _queue_settle(self, rid: str, live: _Live, usd_n: int, tokens: int) -> None:
        if not live.held and not live.rates and not (live.free and (usd_n or tokens)):
            return  # nothing held, nothing to count
        if not self._settler.running:
            self.load()
        self._settler.put((rid, live, usd_n, tokens))

    def _pop(self, res: Reservation) -> _Live | None:
        with self._lock:
            live = self._live.pop(res.id, None)
        if live is None:
            log.warning("reservation %s settled or released twice; ignored", res.id)
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

    # -- the batch threads ------------------------------------------------------------
    def _connect(self) -> PgConn:
        conn = self._store.connect()
        try:
            conn.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _reserve_batch(self, conn: PgConn | None, asks: list[_Ask]) -> PgConn | None:
        """Rate windows for the batch in one Redis round trip, then its holds in one
        PostgreSQL statement; every future is resolved whatever happens."""
        asks = [a for a in asks if a.fut.set_running_or_notify_cancel()]
        try:
            if self._rates is not None and any(a.rates for a in asks):
                errors = self._rates.reserve_many([(a.rates, a.rid, a.tokens) for a in asks])
                for a, err in zip(asks, errors, strict=True):
                    if err is not None:
                        a.fut.set_exception(err)
            waiting = [a for a in asks if not a.fut.done()]
            for a in waiting:
                if not a.rows:
                    a.fut.set_result(None)
            pg = [a for a in waiting if a.rows]
            if not pg:
                return conn
            self.reserve_batches += 1
            if conn is None:
                conn = self._connect()
            row = conn.execute(RESERVE_MANY, _reserve_args(pg)).fetchone()
            details: list[str | None] = row[0] if row is not None else []
        except Exception as exc:  # fail closed: every request still waiting is refused
            if not isinstance(exc, psycopg.Error | ServiceUnavailable):
                log.exception("budget batch failed")
            for a in asks:
                if not a.fut.done():
                    a.fut.set_exception(_unavailable(exc))
            if conn is not None:
                conn.close()
            return None
        for a, detail in zip(pg, details, strict=True):
            if detail is None:
                a.fut.set_result(None)
            else:
                a.fut.set_exception(_exceeded(a.rows, detail, a.usd_n, a.tokens))
        return conn

    def _settle_batch(self, conn: PgConn | None, jobs: list[_Settle]) -> PgConn | None:
        """Every settle waiting, and now and then the expired holds, in one statement."""
        try:
            if jobs and self._rates is not None:
                self._rates.retoken_many([(live.rates, rid, tok) for rid, live, _, tok in jobs])
            held = [(rid, usd_n, tok) for rid, live, usd_n, tok in jobs if live.held]
            free: dict[Counter, list[int]] = {}
            for _, live, usd_n, tok in jobs:
                if usd_n or tok:
                    for c in live.free:
                        acc = free.setdefault(c, [0, 0])
                        acc[0] += usd_n
                        acc[1] += tok
            sweep = time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S
            if not held and not free and not sweep:
                return conn
            if conn is None:
                conn = self._connect()
            if held or free:
                conn.execute(SETTLE_MANY, _settle_args(held, free))
                self.settle_batches += 1
            if sweep:
                self._sweep(conn)
                self._last_sweep = time.monotonic()
        except Exception as exc:
            log.error("could not settle budget spend (will retry): %s", exc)
            for job in jobs:
                self._settler.put(job)  # the hold still counts meanwhile: never overspent
            if conn is not None:
                conn.close()
            time.sleep(0.2)
            return None
        return conn

    @staticmethod
    def _sweep(conn: PgConn) -> None:
        """Settle holds whose replica died before settling, at their reserved amount."""
        expired = conn.execute(
            "SELECT id, usd_nano, tokens FROM budget_holds WHERE expires_ns < ? LIMIT 1000",
            (time.time_ns(),),
        ).fetchall()
        if expired:
            conn.execute(SETTLE_MANY, _settle_args([tuple(r) for r in expired], {}))
            log.warning("settled %d expired budget holds at their reserved amount", len(expired))


def _reserve_args(asks: list[_Ask]) -> tuple[Any, ...]:
    """The batch as ``hg_budget_reserve_many``'s arrays (counters sorted: the lock order)."""
    counters = sorted({c for a in asks for c, _, _ in a.rows})
    index = {c: i for i, c in enumerate(counters, 1)}
    er: list[int] = []
    ec: list[int] = []
    eul: list[int | None] = []
    etl: list[int | None] = []
    for r, a in enumerate(asks, 1):
        for c, usd_lim, tok_lim in a.rows:
            er.append(r)
            ec.append(index[c])
            eul.append(usd_lim)
            etl.append(tok_lim)
    return (
        [c[0] for c in counters],
        [c[1] for c in counters],
        [c[2] for c in counters],
        [a.rid for a in asks],
        [a.usd_n for a in asks],
        [a.tokens for a in asks],
        [a.expires_ns for a in asks],
        er,
        ec,
        eul,
        etl,
    )


def _settle_args(
    held: Sequence[tuple[str, int, int]], free: dict[Counter, list[int]]
) -> tuple[Any, ...]:
    fc = sorted(free)
    return (
        [h[0] for h in held],
        [h[1] for h in held],
        [h[2] for h in held],
        [c[0] for c in fc],
        [c[1] for c in fc],
        [c[2] for c in fc],
        [free[c][0] for c in fc],
        [free[c][1] for c in fc],
    )


def _unavailable(exc: BaseException) -> ServiceUnavailable:
    why = exc.message if isinstance(exc, ServiceUnavailable) else str(exc)
    return ServiceUnavailable(
        f"budgets cannot be checked ({why}); request refused", code="budget_unavailable"
    )


def _exceeded(rows: list[Row], detail: str, usd_n: int, tokens: int) -> BudgetExceeded:
    parts = detail.split()
    try:
        i, spent, used = int(parts[0]) - 1, int(parts[1]), int(parts[2])
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
