"""Prometheus metrics, one registry per app (tests build many apps; no globals).

Labels never carry keys, prompts or values: only route names, API names,
outcomes and data classes, all of which come from configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from hybridgate.scan.cache import ScanCache

M = TypeVar("M", bound=MetricWrapperBase)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter(
            "hybridgate_requests",
            "Requests handled, by API, outcome and policy action",
            ["api", "outcome", "action"],
            registry=r,
        )
        self.route_requests = Counter(
            "hybridgate_route_requests",
            "Upstream attempts per route and result",
            ["route", "location", "result"],
            registry=r,
        )
        self.latency = Histogram(
            "hybridgate_request_seconds",
            "End-to-end request latency",
            ["api"],
            buckets=(
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
            ),
            registry=r,
        )
        self.tokens = Counter(
            "hybridgate_tokens", "Tokens by route and direction", ["route", "direction"], registry=r
        )
        self.cost = Counter("hybridgate_cost_usd", "Spend in USD by route", ["route"], registry=r)
        self.findings = Counter(
            "hybridgate_findings", "Sensitive findings by data class", ["data_class"], registry=r
        )
        self.receipts = Counter("hybridgate_receipts", "Receipts appended", ["kind"], registry=r)
        self.policy_reloads = Counter(
            "hybridgate_policy_reloads", "Policy reload attempts", ["result"], registry=r
        )
        self.signin_throttle_fallbacks = Counter(
            "hybridgate_console_signin_throttle_fallbacks",
            "Console sign-in attempts counted by the replica's own bucket because Redis"
            " could not be reached",
            registry=r,
        )
        self.log_size = Gauge("hybridgate_log_size", "Entries in the receipt log", registry=r)
        self.scans = Counter(
            "hybridgate_scans",
            "Request scans by where they ran: inline (a small body), seen (a large body whose"
            " history the scan cache held, on the loop) or pool",
            ["where"],
            registry=r,
        )
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: M, *values: str) -> M:
        """``metric.labels(*values)``, looked up once per label tuple and then kept.

        ``labels`` validates, converts and takes a lock on every call (about 2 µs; a
        request makes seven). Label values come from configuration and fixed sets
        (routes, APIs, outcomes, data classes), so the cache stays small.
        """
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def watch_scan_cache(self, cache_of: Callable[[], ScanCache | None]) -> None:
        """Export the scan cache's counters, read when scraped (nothing per request)."""
        self.registry.register(_ScanCacheCollector(cache_of))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ScanCacheCollector(Collector):
    """The scan cache's lookups, evictions and size: what ``scanner.cache_max_mb`` and
    ``server.scan_inline_seen_bytes`` are tuned by, read at each scrape."""

    def __init__(self, cache_of: Callable[[], ScanCache | None]) -> None:
        self._cache_of = cache_of

    def describe(self) -> Iterable[Metric]:
        return []  # names are known only at collection; the registry skips the check

    def collect(self) -> Iterable[Metric]:
        cache = self._cache_of()
        if cache is None:
            return
        stats = cache.stats
        lookups = CounterMetricFamily(
            "hybridgate_scan_cache_lookups",
            "Scan cache lookups of texts and whole messages, by result",
            labels=["result"],
        )
        lookups.add_metric(["hit"], stats.hits)
        lookups.add_metric(["miss"], stats.misses)
        yield lookups
        yield CounterMetricFamily(
            "hybridgate_scan_cache_evictions", "Scan results evicted", value=stats.evictions
        )
        yield GaugeMetricFamily(
            "hybridgate_scan_cache_bytes", "Bytes the scan cache holds", value=cache.bytes_held
        )
        yield GaugeMetricFamily(
            "hybridgate_scan_cache_entries", "Entries the scan cache holds", value=len(cache)
        )
