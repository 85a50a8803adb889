"""The sign-in throttle's token buckets, on a hand-driven clock."""

from __future__ import annotations

import pytest

from hybridgate.console.throttle import SignInThrottle, client_bucket, retry_after


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_then_the_refill_rate() -> None:
    clock = Clock()
    t = SignInThrottle(3, 6.0, clock=clock)  # one new attempt every 10 s
    assert [t.take("a") for _ in range(3)] == [None, None, None]
    wait = t.take("a")
    assert wait is not None and wait == pytest.approx(10.0)
    assert retry_after(wait) == "10" and retry_after(0.2) == "1"
    clock.t += 4
    assert t.take("a") == pytest.approx(6.0)  # refused attempts do not cost a token
    clock.t += 6
    assert t.take("a") is None
    assert t.take("a") is not None
    assert t.take("b") is None  # other addresses have their own bucket
    clock.t += 3600
    assert [t.take("a") for _ in range(4)][:3] == [None, None, None]  # refilled to the burst


def test_the_table_is_bounded_least_recently_used_first() -> None:
    clock = Clock()
    t = SignInThrottle(1, 1.0, max_clients=100, clock=clock)
    assert t.take("old") is None
    for i in range(500):
        t.take(f"10.0.{i // 256}.{i % 256}")
    assert len(t) == 100
    assert t.take("old") is None  # forgotten, so it starts from a full bucket


def test_addresses_map_to_buckets() -> None:
    assert client_bucket("192.0.2.7") == "192.0.2.7"
    assert client_bucket("2001:db8:1:2:aaaa::1") == client_bucket("2001:db8:1:2:bbbb::9")
    assert client_bucket("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert client_bucket("2001:db8:1:3::1") != client_bucket("2001:db8:1:2::1")
    assert client_bucket("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_bucket(None) == "unknown"
    assert client_bucket("x" * 300) == "x" * 64


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        SignInThrottle(0, 1.0)
    with pytest.raises(ValueError):
        SignInThrottle(1, 0.0)
