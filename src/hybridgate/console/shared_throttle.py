"""The sign-in throttle shared by every replica: one token bucket per client in Redis.

Behind a load balancer a per-replica bucket gives a client N times the rate over N
replicas. With the shared store (``store: {kind: postgres, redis_url: ...}``) every
replica counts a client's attempts in one bucket instead: a Lua script, atomic on
the Redis server, refills the bucket by Redis' own clock (``TIME``, so replicas'
clocks do not matter), takes a token or says how long to wait, and sets the key to
expire once the bucket would be full again (an expired bucket and a full one are
the same, so idle addresses cost nothing and no table needs bounding). The key is
``<redis_prefix>signin:<client bucket>``, beside the rate limits'
``<redis_prefix>rl:...`` (:mod:`hybridgate.accounting.ratelimit`).

The client is ``redis.asyncio``: a sign-in awaits one round trip on the event loop,
it never holds a thread or blocks the loop, and a Redis that does not answer costs
at most ``timeout_s``.

**When Redis cannot be reached, the replica counts sign-ins in its own in-memory
bucket** (:class:`~hybridgate.console.throttle.SignInThrottle`), logs a warning
once per outage and counts each such attempt in
``hybridgate_console_signin_throttle_fallbacks_total``. Why not refuse with 503, as
rate-limited API requests are refused (:mod:`hybridgate.accounting.ratelimit`)?
There, letting a request through during an outage would spend what a limit
forbids; here, the per-replica bucket is still a throttle (a client gets at most
N times the configured rate over N replicas, the same bound as without Redis,
never unlimited), while refusing would lock operators out of the console exactly
while they are looking into an outage. After a failure the replica stays on its
own bucket for ``retry_s`` before asking Redis again, so an outage costs neither a
timeout nor a log line per attempt.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from hybridgate.console.throttle import SignInThrottle

log = logging.getLogger("hybridgate.console")

#: KEYS[1] the bucket (a hash: tokens, at); ARGV burst, tokens per ms, TTL in ms.
#: Returns 0 (a token taken) or the whole milliseconds until one is due.
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return wait
"""


class SharedSignInThrottle:
    """``await atake(client)`` -> None when an attempt may go ahead, else seconds to wait."""

    def __init__(
        self,
        url: str,
        burst: int,
        per_minute: float,
        *,
        prefix: str = "hybridgate:",
        timeout_s: float = 1.0,
        retry_s: float = 5.0,
        on_fallback: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        #: what this replica counts with while Redis is unreachable (validates the settings)
        self.local = SignInThrottle(burst, per_minute, clock=clock)
        self.prefix = prefix
        rate_ms = per_minute / 60_000.0
        # expire once refilled: a missing bucket is a full one
        self._args: list[str | int] = [burst, repr(rate_ms), math.ceil(burst / rate_ms) + 1000]
        self._redis = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # one try: the fallback is the answer to a failure
        )
        self._take = self._redis.register_script(_TAKE)
        self._retry_s = retry_s
        self._on_fallback = on_fallback
        self._clock = clock
        #: while the clock is below this, Redis failed lately: count locally
        self._down_until: float | None = None

    def key(self, client: str) -> str:
        return f"{self.prefix}signin:{client}"

    async def atake(self, client: str) -> float | None:
        now = self._clock()
        if self._down_until is None or now >= self._down_until:
            try:
                wait_ms = int(await self._take(keys=[self.key(client)], args=self._args))
            except redis.exceptions.RedisError as exc:
                if self._down_until is None:
                    log.warning(
                        "console sign-in throttle: Redis unavailable (%s); counting sign-in"
                        " attempts per replica until it answers",
                        exc,
                    )
                self._down_until = now + self._retry_s
            else:
                if self._down_until is not None:
                    log.warning(
                        "console sign-in throttle: Redis answers again; attempts are counted"
                        " across replicas again"
                    )
                    self._down_until = None
                return wait_ms / 1000.0 if wait_ms > 0 else None
        if self._on_fallback is not None:
            self._on_fallback()
        return self.local.take(client)

    async def aclose(self) -> None:
        await self._redis.aclose()
