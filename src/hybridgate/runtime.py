"""The services one gateway instance runs on, built from a config object.

Everything stateful lives here, per app: the store, keys, ledger, policy
holder, scanner, providers, route health, budgets and usage log. The app
factory builds one :class:`Gateway`; tests build as many as they like.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from hybridgate.accounting import BudgetManager, UsageLog
from hybridgate.actions import ActionService
from hybridgate.adapters import Adapter, AdapterRegistry, split_model_name
from hybridgate.config import GatewayConfig, RouteConfig, VirtualModel
from hybridgate.console.session import SessionStore
from hybridgate.console.throttle import SignInThrottle, Throttle
from hybridgate.conversations import ConversationStore, Sealer
from hybridgate.distill.store import DistillStore
from hybridgate.governance.store import GovernanceStore
from hybridgate.keys import KeyStore
from hybridgate.ledger import KeyRing, Ledger, VerifierKey
from hybridgate.metrics import Metrics
from hybridgate.policy import PolicyHolder, RouteFacts
from hybridgate.providers.adapters import serves_adapter
from hybridgate.providers.base import Provider
from hybridgate.providers.registry import ProviderRegistry, default_registry
from hybridgate.routing import RouteHealth, candidate_routes
from hybridgate.routing.quality import QualityRouter
from hybridgate.routing.table import RouteTable
from hybridgate.scan import Scanner, build_scanner
from hybridgate.scan.cache import cached_scanner
from hybridgate.serving.metrics import ServingMetrics
from hybridgate.store import Migration, Store, build_store

if TYPE_CHECKING:
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.ledger import AppendResult
    from hybridgate.policy import Decision
    from hybridgate.routing import Plan

log = logging.getLogger("hybridgate")


class ExchangeHook(Protocol):
    """What the pipeline tells a feature that follows exchanges (the distill flywheel).

    ``prepare`` may reorder the plan (never widen it past what the policy permits);
    ``receipt_fields`` adds fields to the exchange's receipt; ``finished`` is told the
    receipt's log position and must not block or raise.
    """

    def prepare(self, ex: Any, body: dict[str, Any], decision: Decision, plan: Plan) -> Plan: ...
    def receipt_fields(self, ex: Any) -> dict[str, Any]: ...
    def finished(self, ex: Any, appended: AppendResult) -> None: ...
    async def aclose(self) -> None: ...


def load_or_create_secret(home: Path, name: str = "deployment.secret") -> bytes:
    """The per-deployment secret behind request commitments and key hashes (mode 0600)."""
    path = home / name
    if path.exists():
        data = path.read_bytes()
        if len(data) < 32:
            raise RuntimeError(f"{path} is too short to be a deployment secret")
        return data
    home.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return data


def all_migrations(config: GatewayConfig) -> list[Migration]:
    """Every component's schema steps for the configured store (``hybridgate migrate``)."""
    return [
        *KeyStore.migrations(),
        *Ledger.migrations(),
        *(shared_ledger_migrations() if config.store.kind == "postgres" else []),
        *BudgetManager.migrations(),
        *UsageLog.migrations(),
        *ActionService.migrations(),
        *AdapterRegistry.migrations(),
        *GovernanceStore.migrations(),
        *DistillStore.migrations(),
        *ConversationStore.migrations(),
        *SessionStore.migrations(),
    ]


def shared_ledger_migrations() -> list[Migration]:
    from hybridgate.ledger.shared import MIGRATIONS

    return list(MIGRATIONS)


def _shared_parts(
    config: GatewayConfig, store: Store, keyring: KeyRing, secret: bytes
) -> tuple[Ledger, BudgetManager | SharedBudgetManager]:
    """SQLite: the in-process ledger and budgets. PostgreSQL: the shared log (queue and
    elected sequencer) and budgets exact across replicas (PostgreSQL holds, Redis rates)."""
    if config.store.kind != "postgres":
        budgets = BudgetManager(store, config.budgets)
        budgets.load()
        return Ledger(store, keyring, config.ledger, commitment_secret=secret), budgets
    from hybridgate.accounting.ratelimit import RedisRateLimiter
    from hybridgate.accounting.shared_budgets import SharedBudgetManager
    from hybridgate.ledger.shared import SharedLedger
    from hybridgate.store.postgres import PostgresStore

    assert isinstance(store, PostgresStore)
    sc = config.store
    rates = None
    if sc.redis_url:
        rates = RedisRateLimiter(sc.redis_url, prefix=sc.redis_prefix)
    shared = SharedBudgetManager(store, config.budgets, rates=rates)
    shared.load()
    ledger = SharedLedger(
        store,
        keyring,
        config.ledger,
        secret,
        max_merge_delay_s=sc.max_merge_delay_s,
        interval_s=sc.sequencer_interval_ms / 1000.0,
    )
    return ledger, shared


def _signin_throttle(config: GatewayConfig, metrics: Metrics) -> Throttle:
    """One bucket per client in Redis when replicas share it, else this process's own."""
    console, sc = config.console, config.store
    if sc.kind != "postgres" or not sc.redis_url:
        return SignInThrottle(console.signin_burst, console.signin_per_minute)
    from hybridgate.console.shared_throttle import SharedSignInThrottle

    return SharedSignInThrottle(
        sc.redis_url,
        console.signin_burst,
        console.signin_per_minute,
        prefix=sc.redis_prefix,
        on_fallback=metrics.signin_throttle_fallbacks.inc,
    )


@dataclass
class Gateway:
    config: GatewayConfig
    store: Store
    keys: KeyStore
    ledger: Ledger
    policy: PolicyHolder
    scanner: Scanner
    providers: dict[str, Provider]
    health: RouteHealth
    budgets: BudgetManager | SharedBudgetManager
    usage: UsageLog
    actions: ActionService
    metrics: Metrics
    keyring: KeyRing
    adapters: AdapterRegistry
    conversations: ConversationStore
    #: Console sign-ins, shared by every replica on the store.
    console_sessions: SessionStore
    #: Console sign-in attempts per client address (shared through Redis when configured).
    signin_throttle: Throttle
    #: Derived once from the config: every request looks these up.
    table: RouteTable
    _routers: dict[str, QualityRouter] = field(default_factory=dict)
    #: the distill flywheel when tasks are configured
    hook: ExchangeHook | None = None

    @property
    def routes(self) -> dict[str, RouteConfig]:
        return self.table.routes

    @property
    def virtual_models(self) -> dict[str, VirtualModel]:
        return self.table.virtual_models

    @property
    def candidates(self) -> dict[str, tuple[RouteFacts, ...]]:
        return self.table.candidates

    def alias_target(self, name: str) -> str:
        """The virtual model a client's model name means: itself, else the first alias
        pattern (``claude-*``) that matches it, else itself (unknown, refused later)."""
        if name in self.virtual_models:
            return name
        for pattern, target in self.config.aliases.items():
            if fnmatch.fnmatchcase(name, pattern):
                return target
        return name

    def resolve_model(
        self, name: str
    ) -> tuple[VirtualModel, tuple[RouteFacts, ...], Adapter | None] | None:
        """A model name -> its virtual model, candidate routes and task adapter, or None.

        ``<base>:<adapter>`` (base: a virtual model or route) names a registered
        adapter; its candidates are the base's routes that may and can serve it.
        The registry is read live, so adapters come and go without a restart.
        """
        name = self.alias_target(name)
        vm = self.virtual_models.get(name)
        if vm is not None:
            return vm, self.candidates[name], None
        split = split_model_name(name)
        if split is None:
            return None
        base_vm = self.virtual_models.get(split[0])
        adapter = self.adapters.get(split[1])
        if base_vm is None or adapter is None:
            return None
        names = [
            n
            for n in candidate_routes(base_vm)
            if n in self.routes and serves_adapter(self.routes[n], adapter)
        ]
        if not names:
            return None
        strategy = "fallback" if base_vm.strategy == "quality" else base_vm.strategy
        adapter_vm = VirtualModel(routes=names, strategy=strategy)
        return adapter_vm, tuple(RouteFacts.from_route(self.routes[n]) for n in names), adapter

    def adapter_models(self) -> list[tuple[str, Adapter]]:
        """``(model name, adapter)`` for every registered adapter some route serves."""
        out: list[tuple[str, Adapter]] = []
        for adapter in self.adapters.list():
            for route in self.config.routes:
                if serves_adapter(route, adapter):
                    out.append((f"{route.name}:{adapter.name}", adapter))
                    break
        return out

    def quality_router(self, path: str | None) -> QualityRouter:
        """Loaded once per file per gateway; the shipped router when ``path`` is None."""
        key = path or ""
        if key not in self._routers:
            self._routers[key] = QualityRouter.load(path)
        return self._routers[key]

    @classmethod
    def build(cls, config: GatewayConfig, *, providers: ProviderRegistry | None = None) -> Gateway:
        """Open every service for ``config``; ``providers`` maps route kinds to factories."""
        registry = providers or default_registry()
        table = RouteTable.from_config(config)
        built = {r.name: registry.build(r) for r in config.routes}  # before opening anything
        home = config.home_path
        home.mkdir(parents=True, exist_ok=True)
        secret = load_or_create_secret(home)
        store = build_store(config)
        store.open(all_migrations(config))
        keyring = KeyRing.load_or_create(home / "keys", config.ledger.origin)
        ledger, budgets = _shared_parts(config, store, keyring, secret)
        holder = PolicyHolder(config.policy)
        metrics = Metrics()
        gw = cls(
            config=config,
            store=store,
            keys=KeyStore(store, pepper=secret, admin_key=config.server.admin_key),
            ledger=ledger,
            policy=holder,
            scanner=cached_scanner(build_scanner(config.scanner), config.scanner, secret),
            providers=built,
            health=RouteHealth(),
            budgets=budgets,
            usage=UsageLog(store),
            actions=ActionService(ledger, holder, store, config.actions),
            metrics=metrics,
            keyring=keyring,
            adapters=AdapterRegistry(store, home),
            conversations=ConversationStore(
                store, Sealer(secret), config.conversations.retention_days * 86400.0
            ),
            console_sessions=SessionStore(store, secret, config.server.admin_key),
            signin_throttle=_signin_throttle(config, metrics),
            table=table,
        )
        metrics.watch_scan_cache(lambda: getattr(gw.scanner, "cache", None))
        serving_metrics = ServingMetrics(gw.metrics.registry)
        for p in gw.providers.values():
            bind = getattr(p, "bind_metrics", None)
            if bind is not None:
                bind(serving_metrics)
        for vm in config.models.values():
            if vm.strategy == "quality":
                gw.quality_router(vm.router)
        if config.distill.tasks:
            from hybridgate.distill.service import DistillService

            gw.hook = DistillService(gw, secret)
        return gw

    def ready_check(self) -> None:
        """Raises unless the store commits a write and (when configured) Redis answers."""
        self.store.ping_write()
        ping = getattr(self.budgets, "ping", None)
        if ping is not None:
            ping()

    def ledger_verifiers(self) -> list[VerifierKey]:
        """Public keys receipts verify with, the active one first (rotation keeps old ones)."""
        active = self.keyring.active.verifier()
        return [active, *(v for v in self.keyring.verifiers() if v.key_id != active.key_id)]

    async def start(self) -> None:
        await self.ledger.start()
        await self.conversations.purge_expired()
        self.metrics.log_size.set(self.ledger.size())

    async def aclose(self) -> None:
        if self.hook is not None:
            await self.hook.aclose()
        for p in self.providers.values():
            await p.aclose()
        await self.actions.aclose()  # expire held approvals before the log closes
        await self.ledger.aclose()
        close = getattr(self.budgets, "close", None)
        if close is not None:  # the shared manager settles what is queued first
            await asyncio.to_thread(close)
        await self.signin_throttle.aclose()
        self.store.close()
