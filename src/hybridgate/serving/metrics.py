"""Per-adapter serving metrics (Prometheus), registered on the gateway's registry.

Labels are the route name and the adapter's registered name (``base`` for
requests without one): both come from the operator, never from a request.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ServingMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry()
        self.registry = r
        self.requests = Counter(
            "hybridgate_adapter_requests",
            "Generations finished per route and adapter, by finish reason",
            ["route", "adapter", "finish"],
            registry=r,
        )
        self.tokens = Counter(
            "hybridgate_adapter_tokens",
            "Tokens per route, adapter and direction",
            ["route", "adapter", "direction"],
            registry=r,
        )
        self.ttft = Histogram(
            "hybridgate_adapter_ttft_seconds",
            "Time from submission to the first generated token",
            ["route", "adapter"],
            buckets=_FAST,
            registry=r,
        )
        self.loads = Counter(
            "hybridgate_adapter_loads",
            "Adapter loads into the engine",
            ["route", "adapter"],
            registry=r,
        )
        self.evictions = Counter(
            "hybridgate_adapter_evictions",
            "Adapters evicted from the engine to make room",
            ["route", "adapter"],
            registry=r,
        )
        self.load_seconds = Histogram(
            "hybridgate_adapter_load_seconds",
            "Time to verify and load one adapter",
            ["route"],
            buckets=_FAST,
            registry=r,
        )
        self.batch_rows = Histogram(
            "hybridgate_serving_batch_rows",
            "Rows in each decode step",
            ["route"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
            registry=r,
        )
        self.loaded = Gauge(
            "hybridgate_serving_loaded_adapters", "Adapters in memory", ["route"], registry=r
        )
        self.adapter_bytes = Gauge(
            "hybridgate_serving_adapter_bytes",
            "Bytes of adapter weights in memory",
            ["route"],
            registry=r,
        )
        self.queued = Gauge(
            "hybridgate_serving_queued", "Requests waiting for a batch slot", ["route"], registry=r
        )
