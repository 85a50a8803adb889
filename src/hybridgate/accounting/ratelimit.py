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
from typing import Any

import redis
import redis.exceptions
from redis.commands.core import Script

from hybridgate.errors import GatewayError, RateLimited, ServiceUnavailable

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


def _args(subjects: Sequence[RateSubject], hold_id: str, tokens: int) -> list[str | int]:
    args: list[str | int] = [WINDOW_MS, hold_id, tokens]
    for s in subjects:
        args += [
            "" if s.requests_per_minute is None else s.requests_per_minute,
            "" if s.tokens_per_minute is None else s.tokens_per_minute,
        ]
    return args


def _refused(s: RateSubject, kind: int, used: int, tokens: int) -> RateLimited:
    who = f"{s.scope} {s.name!r}"
    if kind == 1:
        return RateLimited(
            f"rate limit for {who}: requests_per_minute {s.requests_per_minute} reached",
            code="rate_limited",
        )
    return RateLimited(
        f"rate limit for {who}: tokens_per_minute {s.tokens_per_minute} would be exceeded"
        f" ({used} used, this request needs up to {tokens})",
        code="rate_limited",
    )


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
        err = self.reserve_many([(subjects, hold_id, tokens)])[0]
        if err is not None:
            raise err

    def reserve_many(
        self, asks: Sequence[tuple[Sequence[RateSubject], str, int]]
    ) -> list[GatewayError | None]:
        """Several requests' checks in one round trip (a pipeline of scripts), in order.

        Each script is still atomic on the server, so requests of one batch count
        against each other exactly as if they had come one by one. Returns, per
        request, None (counted) or the error to answer: 429, or 503 for every
        request when Redis cannot be reached.
        """
        todo = [(i, a) for i, a in enumerate(asks) if a[0]]
        out: list[GatewayError | None] = [None] * len(asks)
        if not todo:
            return out
        calls = [(self._all_keys(subj), _args(subj, hid, tok)) for _, (subj, hid, tok) in todo]
        try:
            results = self._run(self._reserve, calls)
        except redis.exceptions.RedisError as exc:
            for i, _ in todo:  # one error each: the exchange attaches its own headers
                out[i] = _unavailable(exc)
            return out
        for (i, (subjects, _, tokens)), got in zip(todo, results, strict=True):
            if isinstance(got, Exception):
                out[i] = _unavailable(got)
            else:
                which, kind, used = (int(x) for x in got)
                if which:
                    out[i] = _refused(subjects[which - 1], kind, used, tokens)
        return out

    def _all_keys(self, subjects: Sequence[RateSubject]) -> list[str]:
        return [k for s in subjects for k in self._keys(s)]

    def retoken(self, subjects: Sequence[RateSubject], hold_id: str, tokens: int) -> None:
        """Replace a request's estimated tokens by its actual ones."""
        self.retoken_many([(subjects, hold_id, tokens)])

    def retoken_many(self, asks: Sequence[tuple[Sequence[RateSubject], str, int]]) -> None:
        """Several corrections in one round trip (best effort: a failure leaves the
        estimates, which only err towards refusing)."""
        todo = [a for a in asks if a[0]]
        if not todo:
            return
        calls = [
            ([k for s in subj for k in self._keys(s)[1:]], [hid, tok]) for subj, hid, tok in todo
        ]
        try:
            self._run(self._retoken, calls)
        except redis.exceptions.RedisError as exc:
            log.warning("could not correct rate-limit tokens: %s", exc)

    def _run(self, script: Script, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """``EVALSHA`` each call in one pipeline (one round trip); results in order.

        A Redis that restarted has forgotten the script: the calls it refused with
        NOSCRIPT did not run, so they are run again once the script is loaded.
        """
        out: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for _attempt in range(2):
            pipe = self._redis.pipeline(transaction=False)
            for i in todo:
                keys, args = calls[i]
                pipe.evalsha(script.sha, len(keys), *keys, *args)
            results = pipe.execute(raise_on_error=False)
            missing = []
            for i, got in zip(todo, results, strict=True):
                out[i] = got
                if isinstance(got, redis.exceptions.NoScriptError):
                    missing.append(i)
            if not missing:
                break
            script.sha = self._redis.script_load(script.script)
            todo = missing
        return out

    def ping(self) -> None:
        try:
            self._redis.ping()
        except redis.exceptions.RedisError as exc:
            raise _unavailable(exc) from exc

    def close(self) -> None:
        self._redis.close()
