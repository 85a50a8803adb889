"""Coalesce concurrent appends into one store job per batch.

The store already group-commits jobs, but a job per receipt still costs a
savepoint, a concurrent future with its condition variable, and one wake-up of
the event loop per receipt. Here every append waiting when the writer thread
gets to the ledger is handled by one job, and their waiters are resolved with
one loop wake-up per batch. Waiters resolve only after the batch's transaction
committed, so "done" still means durable.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from hybridgate.store.base import Store

log = logging.getLogger("hybridgate.ledger")

R = TypeVar("R")


@dataclass(slots=True)
class Pending(Generic[R]):
    receipt_id: str
    fields: dict[str, Any]
    waiter: asyncio.Future[R] | Future[R]
    loop: asyncio.AbstractEventLoop | None


Outcome = Any  # R or the BaseException that item failed with
BatchFn = Callable[[sqlite3.Connection, list[Pending[R]]], list[Outcome]]


class AppendQueue(Generic[R]):
    def __init__(self, store: Store, process: BatchFn[R]) -> None:
        self._store = store
        self._process = process
        self._lock = threading.Lock()
        self._items: list[Pending[R]] = []
        self._scheduled = False

    def put(self, item: Pending[R]) -> None:
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        taken: list[list[Pending[R]]] = []

        def job(conn: sqlite3.Connection) -> list[Outcome]:
            with self._lock:
                items, self._items, self._scheduled = self._items, [], False
            taken.append(items)
            return self._process(conn, items)

        fut = self._store.submit(job)
        fut.add_done_callback(lambda f: self._done(f, taken))

    def _done(self, fut: Future[list[Outcome]], taken: list[list[Pending[R]]]) -> None:
        exc = fut.exception()
        if not taken:  # the job never ran (store closed or failed): fail what waits
            with self._lock:
                items, self._items, self._scheduled = self._items, [], False
            _resolve(items, [exc] * len(items))
            return
        items = taken[0]
        _resolve(items, [exc] * len(items) if exc is not None else fut.result())


def _resolve(items: list[Pending[Any]], outcomes: list[Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Outcome]]] = {}
    for item, outcome in zip(items, outcomes, strict=True):
        if item.loop is None:
            _settle(item.waiter, outcome)
        else:
            assert isinstance(item.waiter, asyncio.Future)
            by_loop.setdefault(item.loop, []).append((item.waiter, outcome))
    for loop, pairs in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, pairs)
        except RuntimeError:  # that loop is closed: nobody is waiting any more
            log.debug("receipt appended for a closed event loop")


def _settle_all(pairs: list[tuple[asyncio.Future[Any], Outcome]]) -> None:
    for waiter, outcome in pairs:
        _settle(waiter, outcome)


def _settle(waiter: asyncio.Future[Any] | Future[Any], outcome: Outcome) -> None:
    if waiter.done():  # cancelled by its caller; the receipt is in the log regardless
        return
    if isinstance(outcome, BaseException):
        waiter.set_exception(outcome)
    else:
        waiter.set_result(outcome)
