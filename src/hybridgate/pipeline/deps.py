"""What the request path is given: its collaborators and its scan budget."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hybridgate.accounting import BudgetManager, UsageLog
from hybridgate.adapters import Adapter
from hybridgate.config import VirtualModel
from hybridgate.ledger import Ledger
from hybridgate.metrics import Metrics
from hybridgate.policy import PolicyHolder, RouteFacts
from hybridgate.providers.base import Provider
from hybridgate.routing import RouteHealth
from hybridgate.routing.quality import QualityRouter
from hybridgate.routing.table import RouteTable
from hybridgate.scan import Scanner

if TYPE_CHECKING:
    # The shared (PostgreSQL) budgets need the `postgres` extra; only its type is used here.
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.runtime import ExchangeHook


@dataclass(frozen=True)
class ScanLimits:
    """The per-request scan budget and the pool large scans run on."""

    inline_bytes: int = 32 * 1024
    inline_seen_bytes: int = 512 * 1024
    workers: int = 2
    queue: int = 32
    max_bytes: int = 8 * 1024 * 1024
    timeout_s: float = 10.0


@dataclass
class PipelineDeps:
    """The collaborators the request path uses, and nothing else of the gateway."""

    table: RouteTable
    scanner: Scanner
    policy: PolicyHolder
    providers: Mapping[str, Provider]
    health: RouteHealth
    budgets: BudgetManager | SharedBudgetManager
    usage: UsageLog
    ledger: Ledger
    metrics: Metrics
    quality_router: Callable[[str | None], QualityRouter]
    #: A model name -> (virtual model, candidate routes, task adapter), or None if unknown.
    resolve_model: Callable[
        [str], tuple[VirtualModel, tuple[RouteFacts, ...], Adapter | None] | None
    ] = lambda name: None
    #: A feature that follows exchanges (the distill flywheel), if configured.
    hook: ExchangeHook | None = None
    #: Why receipts cannot be written now (None: they can). Checked before sending.
    store_unavailable: Callable[[], str | None] = lambda: None
    scan_limits: ScanLimits = field(default_factory=ScanLimits)
