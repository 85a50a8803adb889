"""Rate limits shared by every replica: sliding 60-second windows in Redis, one Lua script.

Why Redis and a script: a rate limit is a short-lived counter touched by every
request of a key, on every replica. A script runs atomically on the Redis
server (no other command interleaves), so "prune the window, check every
limit, then count the request against all of them" is one indivisible step
and one round trip however many replicas race. The window is a sorted set of
request ids scored by Redis' own clock (``TIME``, so replicas' clocks do not
matter), with each request's tokens in a hash and a running token sum; keys
expire after two windows, so idle subjects cost nothing.

Fail closed: when Redis cannot be reached, a request that a rate limit applies
to is refused with 503 ``rate_limit_unavailable``, never let through unlimited.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis
import redis.exceptions

from hybridgate.errors import RateLimited, ServiceUnavailable

log = logging.getLogger("hybridgate.budgets")

WINDOW_MS = 60_000

_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[1])
local id = ARGV[2]
local tok = tonumber(ARGV[3])
local n = #KEYS / 3
for i = 0, n - 1 do
  local z, h, s = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', now - win)
  for _, m in ipairs(old) do
    local v = redis.call('HGET', h, m)
    if v then redis.call('DECRBY', s, v); redis.call('HDEL', h, m) end
  end
  if #old > 0 then redis.call('ZREMRANGEBYSCORE', z, '-inf', now - win) end
  local rpm, tpm = ARGV[4 + i*2], ARGV[5 + i*2]
  local count = redis.call('ZCARD', z)
  if rpm ~= '' and count + 1 > tonumber(rpm) then return {i + 1, 1, count} end
  local used = tonumber(redis.call('GET', s) or '0')
  if tpm ~= '' and used + tok > tonumber(tpm) then return {i + 1, 2, used} end
end
for i = 0, n - 1 do
  local z, h, s = KEYS[i*3+1], KEYS[i*3+2], KEYS[i*3+3]
  redis.call('ZADD', z, now, id)
  redis.call('HSET', h, id, tok)
  redis.call('INCRBY', s, tok)
  redis.call('PEXPIRE', z, win * 2); redis.call('PEXPIRE', h, win * 2)
  redis.call('PEXPIRE', s, win * 2)
end
return {0, 0, 0}
"""

_RETOKEN = """
local tok = tonumber(ARGV[2])
for i = 1, #KEYS, 2 do
  local old = redis.call('HGET', KEYS[i], ARGV[1])
  if old then
    redis.call('HSET', KEYS[i], ARGV[1], tok)
    redis.call('INCRBY', KEYS[i+1], tok - tonumber(old))
  end
end
return 0
"""


@dataclass(frozen=True)
class RateSubject:
    scope: str
    name: str
    requests_per_minute: int | None
    tokens_per_minute: int | None


def _unavailable(exc: Exception) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"rate limits cannot be checked (Redis unavailable: {exc}); request refused",
        code="rate_limit_unavailable",
    )


class RedisRateLimiter:
    """Sliding-window request and token limits shared through one Redis."""

    def __init__(self, url: str, *, prefix: str = "hybridgate:", timeout_s: float = 1.0) -> None:
        self.prefix = prefix
        self._redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
        )
        self._reserve = self._redis.register_script(_RESERVE)
        self._retoken = self._redis.register_script(_RETOKEN)

    def _keys(self, s: RateSubject) -> list[str]:
        base = f"{self.prefix}rl:{s.scope}:{s.name}"
        return [f"{base}:z", f"{base}:h", f"{base}:s"]

    def reserve(self, subjects: Sequence[RateSubject], hold_id: str, tokens: int) -> None:
        """Count one request of ``tokens`` against every subject's window, or refuse (429)."""
        if not subjects:
            return
        keys = [k for s in subjects for k in self._keys(s)]
        args: list[str | int] = [WINDOW_MS, hold_id, tokens]
        for s in subjects:
            args += [
                "" if s.requests_per_minute is None else s.requests_per_minute,
                "" if s.tokens_per_minute is None else s.tokens_per_minute,
            ]
        try:
            which, kind, used = (int(x) for x in self._reserve(keys=keys, args=args))
        except redis.exceptions.RedisError as exc:
            raise _unavailable(exc) from exc
        if which == 0:
            return
        s = subjects[which - 1]
        who = f"{s.scope} {s.name!r}"
        if kind == 1:
            raise RateLimited(
                f"rate limit for {who}: requests_per_minute {s.requests_per_minute} reached",
                code="rate_limited",
            )
        raise RateLimited(
            f"rate limit for {who}: tokens_per_minute {s.tokens_per_minute} would be exceeded"
            f" ({used} used, this request needs up to {tokens})",
            code="rate_limited",
        )

    def retoken(self, subjects: Sequence[RateSubject], hold_id: str, tokens: int) -> None:
        """Replace a request's estimated tokens by its actual ones (best effort: a failure
        leaves the estimate, which only errs towards refusing)."""
        if not subjects:
            return
        keys = [k for s in subjects for k in self._keys(s)[1:]]
        try:
            self._retoken(keys=keys, args=[hold_id, tokens])
        except redis.exceptions.RedisError as exc:
            log.warning("could not correct rate-limit tokens: %s", exc)

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.exceptions.RedisError as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        self._redis.close()
