"""A thread that runs every job waiting at one moment as one batch (group commit).

The shared budget manager decides reservations and commits settles this way: one
round trip and one commit for all requests waiting together, off the event loop.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from hybridgate.store.writer import gather

log = logging.getLogger("hybridgate.budgets")

#: The most jobs handed to one batch.
MAX_BATCH = 256

J = TypeVar("J")


class BatchThread(Generic[J]):
    """One thread that hands every job waiting at one moment to ``run`` as one batch.

    ``run(conn, jobs)`` gets the thread's connection (None: connect first) and
    returns the one to use next (None after a failure: reconnect). It is also
    called with no jobs about once a second, for periodic work.
    """

    def __init__(
        self, name: str, run: Callable[[Any, list[J]], Any], *, linger_s: float = 0.0
    ) -> None:
        self._name = name
        self._run = run
        #: How long a batch waits for more jobs after its first (0: take what is there).
        #: For work nobody awaits (settles), a few milliseconds turn many small batches,
        #: each a statement and a commit, into a few larger ones.
        self._linger_s = linger_s
        self._q: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def put(self, job: J) -> None:
        self._q.put(job)

    def stop(self, timeout: float) -> None:
        """Run what is queued, then end."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        conn: Any = None
        while True:
            try:
                first = self._q.get(timeout=1.0)
            except queue.Empty:
                conn = self._run_safely(conn, [])
                continue
            if first is None:
                break
            conn = self._run_safely(conn, gather(self._q, first, MAX_BATCH, self._linger_s))
        if conn is not None:
            conn.close()

    def _run_safely(self, conn: Any, batch: list[J]) -> Any:
        try:
            return self._run(conn, batch)
        except Exception:  # a bug must not end the thread: its waiters would all time out
            log.exception("%s: batch failed", self._name)
            if conn is not None:
                conn.close()
            return None
