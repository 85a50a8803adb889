"""Where the gateway scans a large body: inline when its history was seen, else the pool."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from hybridgate.pipeline import decision, scanning
from hybridgate.pipeline.deps import ScanLimits
from hybridgate.pipeline.scanning import ScanPool
from hybridgate.scan import Scanner, seen
from hybridgate.scan.cache import CachedScanner, ScanCache
from scan.conftest import KEY, TERMS, fresh_scan, wrap

LIMITS = ScanLimits(inline_bytes=2048, inline_seen_bytes=1 << 20)


@pytest.fixture
def scanners(plain: Scanner) -> tuple[Scanner, CachedScanner]:
    """A plain scanner and the same scanner with a cache of its own."""
    return plain, wrap(plain, TERMS, ScanCache(KEY))


@pytest.fixture
def pool() -> Iterator[ScanPool]:
    p = ScanPool()
    yield p
    p.close()


def _body(n: int, size: int = 500) -> dict[str, Any]:
    msgs = [
        {"role": "user", "content": f"turn {i}: " + "the build passes and the docs change " * 20}
        for i in range(n)
    ]
    for m in msgs:
        m["content"] = m["content"][:size]
    msgs[3]["content"] += " card 4111 1111 1111 1111"
    return {"model": "m", "messages": msgs}


@pytest.fixture
def where(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool]]:
    """Each scan's thread ("loop" or the pool) and whether it had the lookups."""
    seen_at: list[tuple[str, bool]] = []
    real = decision.scan_body
    loop_thread = threading.current_thread()

    def spy(scanner: Scanner, body: Any, looked: seen.Looked | None = None) -> Any:
        here = "loop" if threading.current_thread() is loop_thread else "pool"
        seen_at.append((here, looked is not None))
        return real(scanner, body, looked)

    monkeypatch.setattr(scanning, "scan_body", spy)
    return seen_at


async def _scan(pool: ScanPool, scanner: Scanner, body: dict[str, Any], lim: ScanLimits) -> Any:
    raw = json.dumps(body).encode()
    assert len(raw) > lim.inline_bytes  # every body here is over the plain inline budget
    return await pool.scan(scanner, lim, raw, body)


async def test_a_turn_whose_history_was_seen_scans_on_the_loop(
    where: list[tuple[str, bool]], scanners: tuple[Scanner, CachedScanner], pool: ScanPool
) -> None:
    plain, cached = scanners
    body = _body(12)
    assert await _scan(pool, cached, body, LIMITS) == fresh_scan(plain, body)
    assert where[-1] == ("pool", True)  # all new: the pool, with the lookups made
    assert await _scan(pool, cached, body, LIMITS) == fresh_scan(plain, body)
    assert where[-1] == ("loop", True)  # all seen
    body["messages"].append({"role": "user", "content": "one short new turn"})
    assert await _scan(pool, cached, body, LIMITS) == fresh_scan(plain, body)
    assert where[-1] == ("loop", True)  # a little new
    body["messages"].append({"role": "tool", "content": "x " * 2000})
    assert await _scan(pool, cached, body, LIMITS) == fresh_scan(plain, body)
    assert where[-1] == ("pool", True)  # more new than the inline budget


async def test_the_seen_path_can_be_turned_off_and_is_bounded_by_size(
    where: list[tuple[str, bool]], scanners: tuple[Scanner, CachedScanner], pool: ScanPool
) -> None:
    plain, cached = scanners
    body = _body(12)
    await _scan(pool, cached, body, LIMITS)
    off = dataclasses.replace(LIMITS, inline_seen_bytes=0)
    assert await _scan(pool, cached, body, off) == fresh_scan(plain, body)
    assert where[-1] == ("pool", False)
    small = dataclasses.replace(LIMITS, inline_seen_bytes=len(json.dumps(body)) - 1)
    assert await _scan(pool, cached, body, small) == fresh_scan(plain, body)
    assert where[-1] == ("pool", False)  # larger than the bound: not even looked up


async def test_a_failed_lookup_falls_back_to_the_pool_and_still_scans(
    where: list[tuple[str, bool]],
    scanners: tuple[Scanner, CachedScanner],
    pool: ScanPool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plain, cached = scanners

    def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("lookup failed")

    body = _body(12)
    await _scan(pool, cached, body, LIMITS)
    monkeypatch.setattr(seen, "look_up", broken)
    segments, scan = await _scan(pool, cached, body, LIMITS)
    assert where[-1] == ("pool", False)
    assert (segments, scan) == fresh_scan(plain, body)
    assert scan.complete and scan.data_classes  # the planted card is found


async def test_the_pool_says_where_each_scan_ran(scanners: tuple[Scanner, CachedScanner]) -> None:
    _, cached = scanners
    told: list[str] = []
    pool = ScanPool(told.append)
    try:
        body = _body(12)
        await _scan(pool, cached, body, LIMITS)  # all new
        await _scan(pool, cached, body, LIMITS)  # all seen
        await pool.scan(cached, LIMITS, b"{}", {"model": "m"})  # small
        assert told == ["pool", "seen", "inline"]
    finally:
        pool.close()
