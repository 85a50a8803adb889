"""Where a request should go among the routes the policy permits.

``plan_routes`` (pure) orders the permitted routes by the virtual model's
strategy; ``RouteHealth`` keeps per-app latency averages and circuit breakers.
The learned router for the ``quality`` strategy lives in ``routing.quality``.
"""

from hybridgate.routing.breaker import RouteHealth
from hybridgate.routing.plan import Plan, RouteStats, candidate_routes, plan_routes

__all__ = ["Plan", "RouteHealth", "RouteStats", "candidate_routes", "plan_routes"]
