"""Budgets and rate limits, exact under concurrency: reserve before sending, settle after.

Why reservations: checking "spent < limit" and sending lets N concurrent
requests all pass the check before any of them has spent, so a burst
overshoots the budget N-fold. Instead :meth:`BudgetManager.reserve` counts the
request's worst-case cost against every limit that applies, atomically (it is
synchronous, never awaits, and holds a lock), and refuses when the limit could
be crossed. :meth:`BudgetManager.settle` then replaces the reservation by what
was actually spent; :meth:`BudgetManager.release` drops it when nothing was.
So, as long as a request does not spend more than it reserved, committed plus
reserved spend never exceeds a limit, however many requests are in flight.

Periods are calendar days and months in UTC. A reservation is charged to the
day and month in which it was made, and settles there even if it finishes
after midnight. Rate limits are sliding 60-second windows.

State is in memory (one gateway process is authoritative for its budgets);
settled spend is persisted through the store's group-commit writer without
blocking the request, and :meth:`BudgetManager.load` restores the current
day's, month's and each key's lifetime spend at start-up.

Money is kept as integer nano-dollars internally, so every sum is exact.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from hybridgate.accounting.budget_sql import PG_BATCH, PG_SHARED
from hybridgate.accounting.pricing import dec, format_usd, from_nano, to_nano
from hybridgate.config import BudgetConfig
from hybridgate.errors import BudgetExceeded, InvalidRequest, RateLimited
from hybridgate.store.base import Migration, Store

log = logging.getLogger("hybridgate.budgets")

WINDOW_S = 60.0
LIFETIME = "life"
CounterKey = tuple[str, str, str]  # (scope, name, period)
Subject = tuple[str, str]  # (scope, name)


_MIGRATIONS = [
    Migration(
        "budgets",
        1,
        """
        CREATE TABLE budget_spend (
            scope TEXT NOT NULL,
            name TEXT NOT NULL,
            period TEXT NOT NULL,
            usd_nano INTEGER NOT NULL DEFAULT 0,
            tokens INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (scope, name, period)
        ) WITHOUT ROWID;
        """,
    ),
    # PostgreSQL only (the SQLite manager keeps holds in memory, one process owning them):
    # shared holds and the two functions that take and settle them atomically, see
    # hybridgate.accounting.shared_budgets.
    Migration("budgets", 2, "", postgres=PG_SHARED),
    # PostgreSQL only: reserve and settle whole batches in one statement each.
    Migration("budgets", 3, "", postgres=PG_BATCH),
]

UPSERT = (
    "INSERT INTO budget_spend (scope, name, period, usd_nano, tokens) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (scope, name, period) DO UPDATE SET"
    " usd_nano = budget_spend.usd_nano + excluded.usd_nano,"
    " tokens = budget_spend.tokens + excluded.tokens"
)


@dataclass(frozen=True)
class Reservation:
    id: str
    key_id: str | None
    team: str | None
    usd: Decimal
    tokens: int


@dataclass
class _Counter:
    usd: int = 0  # committed nano-dollars
    tokens: int = 0
    usd_held: int = 0  # reserved, not yet settled
    tokens_held: int = 0


@dataclass
class _Event:
    """One request in a rate-limit window; its tokens are corrected at settle."""

    t: float
    tokens: int
    live: bool = True  # still inside its window's running sum


@dataclass
class _Window:
    events: deque[_Event] = field(default_factory=deque)
    tokens: int = 0

    def prune(self, now: float) -> None:
        while self.events and self.events[0].t <= now - WINDOW_S:
            ev = self.events.popleft()
            ev.live = False
            self.tokens -= ev.tokens


@dataclass
class _Limits:
    usd_per_day: int | None = None
    usd_per_month: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    @property
    def windowed(self) -> bool:
        return self.requests_per_minute is not None or self.tokens_per_minute is not None

    @property
    def caps_spend(self) -> bool:
        """Whether a limit depends on what a request costs, not only on its being made."""
        return any(
            v is not None
            for v in (
                self.usd_per_day,
                self.usd_per_month,
                self.tokens_per_day,
                self.tokens_per_month,
                self.tokens_per_minute,
            )
        )


@dataclass
class _Held:
    res: Reservation
    usd: int
    counters: list[CounterKey]
    events: list[tuple[Subject, _Event]]


def _tightest(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _merge_limits(budgets: Sequence[BudgetConfig]) -> dict[Subject, _Limits]:
    """One set of limits per key/team; if configured twice, the tighter limit wins."""
    out: dict[Subject, _Limits] = {}
    for b in budgets:
        lim = out.setdefault((b.scope, b.name), _Limits())
        for usd_field in ("usd_per_day", "usd_per_month"):
            v = getattr(b, usd_field)
            nano = None if v is None else to_nano(dec(v))
            setattr(lim, usd_field, _tightest(getattr(lim, usd_field), nano))
        for int_field in (
            "tokens_per_day",
            "tokens_per_month",
            "requests_per_minute",
            "tokens_per_minute",
        ):
            setattr(lim, int_field, _tightest(getattr(lim, int_field), getattr(b, int_field)))
    return out


def spend_capped(
    limits: Mapping[Subject, _Limits],
    key_id: str | None,
    team: str | None,
    key_budget_usd: Decimal | None,
) -> bool:
    """Whether any limit on this key or its team caps spend (USD or tokens).

    Only then must a reservation be a true upper bound on what the upstream can
    bill; the pipeline sends an explicit output cap upstream when the client gave none.
    """
    if key_budget_usd is not None:
        return True
    subjects = [s for s in (("key", key_id), ("team", team)) if s[1] is not None]
    return any(limits.get((scope, str(name)), _Limits()).caps_spend for scope, name in subjects)


def periods_at(t: float) -> tuple[str, str]:
    """The UTC day and month a timestamp falls in, as stored period labels."""
    d = datetime.fromtimestamp(t, tz=UTC)
    return f"d:{d:%Y-%m-%d}", f"m:{d:%Y-%m}"


def _who(subject: Subject) -> str:
    return f"{subject[0]} {subject[1]!r}"


class BudgetManager:
    def __init__(
        self,
        store: Store,
        budgets: Sequence[BudgetConfig],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._limits = _merge_limits(budgets)
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[CounterKey, _Counter] = {}
        self._windows: dict[Subject, _Window] = {}
        self._held: dict[str, _Held] = {}
        self._ids = itertools.count(1)
        self._periods: tuple[str, str] = periods_at(clock())
        self._day_index = -1  # the UTC day _periods belongs to, once _roll has run

    @staticmethod
    def migrations() -> list[Migration]:
        return list(_MIGRATIONS)

    # -- start-up ---------------------------------------------------------
    def load(self) -> None:
        """Restore today's, this month's and every key's lifetime spend from the store.

        Call once at start-up, before serving: it replaces committed in-memory totals.
        """
        day, month = periods_at(self._clock())
        rows = self._store.query(
            "SELECT scope, name, period, usd_nano, tokens FROM budget_spend"
            " WHERE period IN (?, ?, ?)",
            (day, month, LIFETIME),
        )
        with self._lock:
            self._periods = (day, month)
            for scope, name, period, usd_nano, tokens in rows:
                c = self._counters.setdefault((scope, name, period), _Counter())
                c.usd, c.tokens = int(usd_nano), int(tokens)

    # -- the request path ---------------------------------------------------
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
        """Hold ``usd`` and ``tokens`` against every applicable limit, or refuse (429)."""
        if usd < 0 or tokens < 0:
            raise InvalidRequest("a reservation cannot be negative")
        usd_n = to_nano(usd)
        subjects: list[Subject] = []
        if key_id is not None:
            subjects.append(("key", key_id))
        if team is not None:
            subjects.append(("team", team))
        with self._lock:
            now = self._clock()
            day, month = self._roll(now)
            self._check_rates(subjects, tokens, now)
            self._check_budgets(subjects, day, month, usd_n, tokens)
            if key_id is not None and key_budget_usd is not None:
                self._check_lifetime(key_id, to_nano(key_budget_usd), usd_n)
            # every check passed: now (and only now) take the hold
            counters: list[CounterKey] = []
            for scope, name in subjects:
                counters += [(scope, name, day), (scope, name, month)]
                if scope == "key":
                    counters.append((scope, name, LIFETIME))
            for ck in counters:
                c = self._counters.setdefault(ck, _Counter())
                c.usd_held += usd_n
                c.tokens_held += tokens
            events: list[tuple[Subject, _Event]] = []
            for subj in subjects:
                lim = self._limits.get(subj)
                if lim is not None and lim.windowed:
                    ev = _Event(now, tokens)
                    w = self._windows.setdefault(subj, _Window())
                    w.events.append(ev)
                    w.tokens += tokens
                    events.append((subj, ev))
            res = Reservation(
                id=f"rsv_{next(self._ids)}", key_id=key_id, team=team, usd=usd, tokens=tokens
            )
            self._held[res.id] = _Held(res, usd_n, counters, events)
            return res

    async def areserve(
        self,
        *,
        key_id: str | None,
        team: str | None,
        usd: Decimal,
        tokens: int,
        key_budget_usd: Decimal | None = None,
    ) -> Reservation:
        """:meth:`reserve` for the request path (in memory here: it never waits).

        The pipeline awaits this; the shared manager's version waits for its batch.
        """
        return self.reserve(
            key_id=key_id, team=team, usd=usd, tokens=tokens, key_budget_usd=key_budget_usd
        )

    def settle(self, res: Reservation, *, usd: Decimal, tokens: int) -> None:
        """Replace the hold by the actual spend; persisted without waiting for the disk."""
        usd_n, tokens = max(0, to_nano(usd)), max(0, tokens)
        with self._lock:
            held = self._drop(res)
            if held is None:
                return
            for ck in held.counters:
                c = self._counters.get(ck)
                if c is not None:
                    c.usd += usd_n
                    c.tokens += tokens
            for subj, ev in held.events:
                self._retoken(subj, ev, tokens)
        if usd_n == 0 and tokens == 0:
            return
        done: set[Future[Any]] = set()
        for s, n, p in held.counters:  # an upsert: rows of one batch go in one statement
            done.add(self._store.defer_rows(UPSERT, (s, n, p, usd_n, tokens)))
        for fut in done:
            fut.add_done_callback(_log_failure)

    def release(self, res: Reservation) -> None:
        """The request failed before spending: give the hold back (it still counts as a request)."""
        with self._lock:
            held = self._drop(res)
            if held is None:
                return
            for subj, ev in held.events:
                self._retoken(subj, ev, 0)

    # -- inspection -------------------------------------------------------------
    def status(self, scope: str, name: str) -> dict[str, Any]:
        """Spent and held amounts of one key or team in the current periods (money as strings)."""
        with self._lock:
            day, month = self._roll(self._clock())
            out: dict[str, Any] = {}
            for label, period in (("day", day), ("month", month), ("lifetime", LIFETIME)):
                c = self._counters.get((scope, name, period), _Counter())
                out[label] = {
                    "usd": format_usd(from_nano(c.usd)),
                    "usd_reserved": format_usd(from_nano(c.usd_held)),
                    "tokens": c.tokens,
                    "tokens_reserved": c.tokens_held,
                }
            return out

    @property
    def outstanding(self) -> int:
        """Reservations neither settled nor released."""
        return len(self._held)

    # -- internals (called with the lock held) -------------------------------------
    def _drop(self, res: Reservation) -> _Held | None:
        held = self._held.pop(res.id, None)
        if held is None:
            log.warning("reservation %s settled or released twice; ignored", res.id)
            return None
        for ck in held.counters:
            c = self._counters.get(ck)
            if c is not None:
                c.usd_held -= held.usd
                c.tokens_held -= held.res.tokens
        return held

    def _retoken(self, subj: Subject, ev: _Event, tokens: int) -> None:
        w = self._windows.get(subj)
        if ev.live and w is not None:
            w.tokens += tokens - ev.tokens
        ev.tokens = tokens

    def _roll(self, now: float) -> tuple[str, str]:
        """Current periods; on a new day or month, forget finished periods with no holds."""
        day = int(now // 86_400)  # POSIX time: UTC days are exactly 86,400 s
        if day == self._day_index:
            return self._periods
        self._day_index = day
        periods = periods_at(now)
        if periods != self._periods:
            self._periods = periods
            keep = {*periods, LIFETIME}
            for ck in [k for k, c in self._counters.items() if k[2] not in keep]:
                c = self._counters[ck]
                if c.usd_held == 0 and c.tokens_held == 0:
                    del self._counters[ck]
        return periods

    def _total(self, ck: CounterKey) -> tuple[int, int]:
        c = self._counters.get(ck)
        return (0, 0) if c is None else (c.usd + c.usd_held, c.tokens + c.tokens_held)

    def _check_rates(self, subjects: list[Subject], tokens: int, now: float) -> None:
        for subj in subjects:
            lim = self._limits.get(subj)
            if lim is None:
                continue
            w = self._windows.get(subj)
            if w is not None:
                w.prune(now)
            count = len(w.events) if w else 0
            used = w.tokens if w else 0
            rpm, tpm = lim.requests_per_minute, lim.tokens_per_minute
            if rpm is not None and count + 1 > rpm:
                raise RateLimited(
                    f"rate limit for {_who(subj)}: requests_per_minute {rpm} reached",
                    code="rate_limited",
                )
            if tpm is not None and used + tokens > tpm:
                raise RateLimited(
                    f"rate limit for {_who(subj)}: tokens_per_minute {tpm} would be exceeded"
                    f" ({used} used, this request needs up to {tokens})",
                    code="rate_limited",
                )

    def _check_budgets(
        self, subjects: list[Subject], day: str, month: str, usd_n: int, tokens: int
    ) -> None:
        for subj in subjects:
            lim = self._limits.get(subj)
            if lim is None:
                continue
            for period, usd_lim, tok_lim, label in (
                (day, lim.usd_per_day, lim.tokens_per_day, "day"),
                (month, lim.usd_per_month, lim.tokens_per_month, "month"),
            ):
                spent, used = self._total((*subj, period))
                if usd_lim is not None and spent + usd_n > usd_lim:
                    raise BudgetExceeded(
                        f"budget exceeded for {_who(subj)}: usd_per_{label} limit "
                        f"${format_usd(from_nano(usd_lim))} (spent or reserved "
                        f"${format_usd(from_nano(spent))}, this request needs up to "
                        f"${format_usd(from_nano(usd_n))})"
                    )
                if tok_lim is not None and used + tokens > tok_lim:
                    raise BudgetExceeded(
                        f"budget exceeded for {_who(subj)}: tokens_per_{label} limit {tok_lim}"
                        f" ({used} used or reserved, this request needs up to {tokens})"
                    )

    def _check_lifetime(self, key_id: str, cap_n: int, usd_n: int) -> None:
        spent, _ = self._total(("key", key_id, LIFETIME))
        if spent + usd_n > cap_n:
            raise BudgetExceeded(
                f"budget exceeded for key {key_id!r}: lifetime budget "
                f"${format_usd(from_nano(cap_n))} (spent or reserved "
                f"${format_usd(from_nano(spent))}, this request needs up to "
                f"${format_usd(from_nano(usd_n))})"
            )


def _log_failure(fut: Future[Any]) -> None:
    exc = fut.exception()
    if exc is not None:
        log.error("could not persist budget spend: %s", exc)
