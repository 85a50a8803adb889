"""Sign-in throttling: a token bucket per client address, bounded in memory.

The console's sign-in takes a gateway key, so it is a place to guess keys (and the
admin key is whatever an operator chose). Each address may try ``burst`` times at
once and then ``per_minute`` times a minute; more is refused with 429 before the key
is even looked at. IPv6 addresses share a bucket per /64, the block one host is
usually given, so cycling through a host's own addresses buys nothing.

The table holds at most ``max_clients`` buckets; past that the least recently used
goes (a full bucket is what a forgotten address would get anyway).

These buckets are per replica: behind a load balancer spreading one client over N
replicas, a client would get up to N times the rate. So with the shared store and
Redis (``store: {kind: postgres, redis_url: ...}``) the gateway counts in one bucket
per client in Redis instead (:mod:`hybridgate.console.shared_throttle`), and keeps
this one only for a Redis outage. The embedded SQLite setup is one process, so it
keeps this one; so does PostgreSQL without ``redis_url``.
"""

from __future__ import annotations

import collections
import ipaddress
import math
import threading
import time
from collections.abc import Callable
from typing import Protocol

MAX_CLIENTS = 10_000


def client_bucket(host: str | None) -> str:
    """The bucket an address counts against: itself, or its /64 for IPv6."""
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.IPv6Network((addr, 64), strict=False))
    return str(addr)


class Throttle(Protocol):
    """What the console's sign-in asks: this replica's buckets or the shared ones."""

    async def atake(self, client: str) -> float | None:
        """None when an attempt may go ahead, else the seconds until one may."""
        ...

    async def aclose(self) -> None: ...


class SignInThrottle:
    """``take(client)`` -> None when an attempt may go ahead, else seconds to wait."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if burst < 1 or per_minute <= 0 or max_clients < 1:
            raise ValueError("burst and max_clients must be >= 1 and per_minute > 0")
        self._burst = float(burst)
        self._rate = per_minute / 60.0
        self._max = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        #: bucket -> (tokens, when they were counted), least recently used first
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, client: str) -> float | None:
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(client, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            wait = None if tokens >= 1.0 else (1.0 - tokens) / self._rate
            self._buckets[client] = (tokens if wait is not None else tokens - 1.0, now)
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
        return wait

    async def atake(self, client: str) -> float | None:
        return self.take(client)

    async def aclose(self) -> None:
        """Nothing to release: the buckets are memory."""

    def __len__(self) -> int:
        return len(self._buckets)


def retry_after(wait: float) -> str:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return str(max(1, math.ceil(wait)))
