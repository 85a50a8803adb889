"""Circuit breaker states and the latency EWMA, on an injected clock."""

from __future__ import annotations

import pytest

from hybridgate.routing import RouteHealth


class Clock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make(**kw: float) -> tuple[RouteHealth, Clock]:
    clock = Clock()
    h = RouteHealth(
        failure_threshold=int(kw.get("threshold", 3)),
        cooldown_s=kw.get("cooldown", 30.0),
        alpha=kw.get("alpha", 0.2),
        clock=clock,
    )
    return h, clock


def test_unknown_route_is_allowed_and_absent_from_snapshot() -> None:
    h, _ = make()
    assert h.allow("r")
    assert h.snapshot() == {}
    assert h.state("r") == "closed"


def test_opens_after_threshold_consecutive_failures() -> None:
    h, clock = make(threshold=3, cooldown=30)
    h.record_failure("r")
    h.record_failure("r")
    assert h.allow("r") and h.state("r") == "closed"
    assert h.snapshot()["r"].open_until == 0.0
    h.record_failure("r")
    assert h.state("r") == "open"
    assert not h.allow("r")
    assert h.snapshot()["r"].open_until == clock.t + 30


def test_a_success_resets_the_failure_count() -> None:
    h, _ = make(threshold=3)
    h.record_failure("r")
    h.record_failure("r")
    h.record_success("r", 10.0)
    h.record_failure("r")
    h.record_failure("r")
    assert h.state("r") == "closed"


def test_half_open_lets_exactly_one_probe_through() -> None:
    h, clock = make(threshold=1, cooldown=30)
    h.record_failure("r")
    clock.t += 29.9
    assert not h.allow("r")
    clock.t += 0.2
    assert h.state("r") == "half_open"
    assert h.allow("r")  # the probe
    assert not h.allow("r")  # everyone else waits for its verdict
    assert not h.allow("r")


def test_successful_probe_closes() -> None:
    h, clock = make(threshold=1, cooldown=30)
    h.record_failure("r")
    clock.t += 31
    assert h.allow("r")
    h.record_success("r", 100.0)
    assert h.state("r") == "closed"
    assert h.allow("r") and h.allow("r")
    assert h.snapshot()["r"].open_until == 0.0


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    h, clock = make(threshold=3, cooldown=30)
    for _ in range(3):
        h.record_failure("r")
    clock.t += 31
    assert h.allow("r")
    h.record_failure("r")  # one failure suffices in half-open state
    assert h.state("r") == "open"
    assert h.snapshot()["r"].open_until == clock.t + 30
    clock.t += 29
    assert not h.allow("r")
    clock.t += 2
    assert h.allow("r")


def test_a_lost_probe_does_not_wedge_the_route() -> None:
    h, clock = make(threshold=1, cooldown=10)
    h.record_failure("r")
    clock.t += 11
    assert h.allow("r")  # probe goes out and never reports back
    clock.t += 5
    assert not h.allow("r")
    assert h.snapshot()["r"].open_until == pytest.approx(clock.t + 5)  # planner demotes it
    clock.t += 6
    assert h.allow("r")  # presumed lost: a new probe


def test_breakers_are_per_route_and_per_instance() -> None:
    h, _ = make(threshold=1)
    other, _ = make(threshold=1)
    h.record_failure("a")
    assert not h.allow("a")
    assert h.allow("b")
    assert other.allow("a")


def test_ewma_first_sample_then_moving_average() -> None:
    h, _ = make(alpha=0.2)
    h.record_success("r", 100.0)
    assert h.snapshot()["r"].latency_ewma_ms == 100.0
    h.record_success("r", 200.0)  # 0.2*200 + 0.8*100
    assert h.snapshot()["r"].latency_ewma_ms == pytest.approx(120.0)
    h.record_success("r", 20.0)  # 0.2*20 + 0.8*120
    assert h.snapshot()["r"].latency_ewma_ms == pytest.approx(100.0)


def test_ewma_ignores_nan_and_negative_latency() -> None:
    h, _ = make()
    h.record_success("r", 50.0)
    h.record_success("r", float("nan"))
    h.record_success("r", -5.0)
    assert h.snapshot()["r"].latency_ewma_ms == 50.0


def test_failures_do_not_change_latency() -> None:
    h, _ = make()
    h.record_success("r", 50.0)
    h.record_failure("r")
    assert h.snapshot()["r"].latency_ewma_ms == 50.0


@pytest.mark.parametrize(
    "kw", [{"failure_threshold": 0}, {"cooldown_s": -1.0}, {"alpha": 0.0}, {"alpha": 1.5}]
)
def test_rejects_nonsense_settings(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RouteHealth(**kw)  # type: ignore[arg-type]
