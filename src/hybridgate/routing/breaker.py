"""Per-route health: a latency moving average and a circuit breaker.

One :class:`RouteHealth` belongs to one gateway instance (never module-level),
so tests and several apps in one process do not share state.

The breaker has the usual three states:

* **closed**: requests flow; ``failure_threshold`` consecutive failures open it.
* **open**: :meth:`RouteHealth.allow` says no until ``cooldown_s`` has passed,
  so a dead upstream costs nobody a timeout.
* **half-open**: after the cool-down exactly one probe is let through. Its
  success closes the breaker; its failure opens it for another cool-down. A
  probe that never reports (the caller gave up, or a non-retryable error was
  not recorded) is presumed lost after another ``cooldown_s``, and a new probe
  is allowed, so a route cannot be wedged shut by a missing report.

A failure can be attributed to a *source* (the key whose request the upstream
answered with a 5xx). Such answers may be the request's fault — a model that
errors on one odd input — so one key cannot open a route for everyone: while
closed, attributed failures open the breaker only once they come from at least
two sources, or from one source :data:`SINGLE_SOURCE_FACTOR` times the
threshold in a row. Unattributed failures (timeouts, refused connections, 429)
count as before.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hybridgate.routing.plan import RouteStats

#: Consecutive failures from one source that still open a breaker (times the threshold).
SINGLE_SOURCE_FACTOR = 4


@dataclass
class _State:
    ewma_ms: float | None = None
    failures: int = 0  # consecutive, while closed
    open_until: float = 0.0  # open while clock() < open_until
    probe_until: float = 0.0  # half-open: a probe is out until then
    tripped: bool = False  # opened and not yet closed by a successful probe
    sources: set[str] = field(default_factory=set)  # of the consecutive failures
    unattributed: bool = False  # some consecutive failure was the route's own


class RouteHealth:
    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cooldown_s: float = 30.0,
        alpha: float = 0.2,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cooldown_s < 0:
            raise ValueError("cooldown_s must not be negative")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.alpha = alpha
        self._clock = clock
        self._routes: dict[str, _State] = {}
        # asyncio callers never contend; the lock only matters if a thread reports too
        self._lock = threading.Lock()

    def _state(self, route: str) -> _State:
        st = self._routes.get(route)
        if st is None:
            st = self._routes[route] = _State()
        return st

    def snapshot(self) -> dict[str, RouteStats]:
        """What the planner sees; ``open_until`` covers both open and probe-in-flight."""
        with self._lock:
            return {
                name: RouteStats(
                    latency_ewma_ms=st.ewma_ms,
                    open_until=max(st.open_until, st.probe_until) if st.tripped else 0.0,
                )
                for name, st in self._routes.items()
            }

    def state(self, route: str) -> str:
        """``closed``, ``open`` or ``half_open`` (for metrics and tests)."""
        with self._lock:
            st = self._routes.get(route)
            if st is None or not st.tripped:
                return "closed"
            return "open" if self._clock() < st.open_until else "half_open"

    def record_success(self, route: str, latency_ms: float) -> None:
        with self._lock:
            st = self._state(route)
            if latency_ms >= 0 and latency_ms == latency_ms:  # ignore NaN and negative clocks
                st.ewma_ms = (
                    latency_ms
                    if st.ewma_ms is None
                    else self.alpha * latency_ms + (1 - self.alpha) * st.ewma_ms
                )
            st.failures = 0
            st.sources.clear()
            st.unattributed = False
            st.tripped = False
            st.open_until = 0.0
            st.probe_until = 0.0

    def record_failure(self, route: str, source: str | None = None) -> None:
        """A failed attempt; ``source`` names the client when its request may be the cause."""
        with self._lock:
            st = self._state(route)
            now = self._clock()
            if st.tripped:
                # a failed probe (or a straggler from before the trip): another full cool-down
                st.open_until = now + self.cooldown_s
                st.probe_until = 0.0
                return
            st.failures += 1
            if source is None:
                st.unattributed = True
            else:
                st.sources.add(source)
            enough = st.failures >= self.failure_threshold and (
                st.unattributed
                or len(st.sources) >= 2
                or st.failures >= self.failure_threshold * SINGLE_SOURCE_FACTOR
            )
            if enough:
                st.tripped = True
                st.open_until = now + self.cooldown_s
                st.probe_until = 0.0

    def allow(self, route: str) -> bool:
        """May a request go to ``route`` now? In half-open state, yes exactly once."""
        with self._lock:
            st = self._routes.get(route)
            if st is None or not st.tripped:
                return True
            now = self._clock()
            if now < st.open_until or now < st.probe_until:
                return False
            st.probe_until = now + self.cooldown_s
            return True
