"""The app factory: ``create_app(config)`` builds one gateway, with no globals.

Built-in features are mounted the same way a plugin would be: each API module
contributes a list of routes built from the collaborators it is handed (the
exchange runner, or a small deps dataclass such as ``AdminDeps``, ``ToolDeps``,
``ConsoleDeps``), never the whole :class:`Gateway`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hybridgate.api.actions import action_routes
from hybridgate.api.admin import AdminDeps, admin_routes, config_policy_loader
from hybridgate.api.anthropic import anthropic_routes
from hybridgate.api.common import make_authenticator
from hybridgate.api.edge import EdgeMiddleware
from hybridgate.api.errors import exception_handlers
from hybridgate.api.exchange import ExchangeRunner
from hybridgate.api.governance import governance_routes
from hybridgate.api.mcp import tool_routes
from hybridgate.api.mcp_tools import ToolDeps
from hybridgate.api.openai import openai_routes
from hybridgate.api.responses import responses_routes
from hybridgate.config import GatewayConfig
from hybridgate.console import ConsoleDeps, console_routes
from hybridgate.governance.service import GovernanceService
from hybridgate.governance.store import GovernanceStore
from hybridgate.pipeline import Pipeline, PipelineDeps, ScanLimits
from hybridgate.providers.registry import ProviderRegistry
from hybridgate.runtime import Gateway

log = logging.getLogger("hybridgate")


def pipeline_for(gw: Gateway) -> Pipeline:
    """The request path wired to the gateway's services it uses."""
    return Pipeline(
        PipelineDeps(
            table=gw.table,
            scanner=gw.scanner,
            policy=gw.policy,
            providers=gw.providers,
            health=gw.health,
            budgets=gw.budgets,
            usage=gw.usage,
            ledger=gw.ledger,
            metrics=gw.metrics,
            quality_router=gw.quality_router,
            resolve_model=gw.resolve_model,
            hook=gw.hook,
            store_unavailable=gw.store.unavailable_reason,
            scan_limits=ScanLimits(
                inline_bytes=gw.config.server.scan_inline_bytes,
                inline_seen_bytes=gw.config.server.scan_inline_seen_bytes,
                workers=gw.config.server.scan_workers,
                queue=gw.config.server.scan_queue,
                max_bytes=gw.config.server.max_scan_bytes,
                timeout_s=gw.config.server.scan_timeout_s,
            ),
        )
    )


def create_app(
    config: GatewayConfig,
    *,
    config_path: str | None = None,
    handle_sighup: bool = False,
    providers: ProviderRegistry | None = None,
) -> Starlette:
    """Build the ASGI app. The gateway's services open when the app's lifespan starts.

    ``providers`` maps a route's ``provider:`` kind to a factory (default: the
    built-in kinds); tests pass in-memory providers through it.
    """
    gw = Gateway.build(config, providers=providers)
    pipeline = pipeline_for(gw)
    authenticate = make_authenticator(gw.keys)
    runner = ExchangeRunner(pipeline, authenticate, config.server.max_body_bytes)
    reload_policy = config_policy_loader(config_path, config.policy)
    governance = (
        GovernanceService.attach(
            GovernanceStore(gw.store), gw.ledger, gw.policy, config.governance_file
        )
        if config.governance_file
        else None
    )

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        try:  # the store takes a write (its writer thread commits) and Redis answers
            await asyncio.to_thread(gw.ready_check)
            reason = gw.store.unavailable_reason()
        except Exception as exc:  # readiness reports failure; it never raises
            reason = type(exc).__name__
        if reason is not None:
            return JSONResponse({"status": "unavailable", "reason": reason}, 503)
        return JSONResponse(
            {"status": "ready", "routes": len(config.routes), "log_size": gw.ledger.size()}
        )

    async def metrics(_: Request) -> Response:
        gw.metrics.log_size.set(gw.ledger.size())
        return Response(gw.metrics.render(), media_type="text/plain; version=0.0.4")

    tools, tools_lifespan = tool_routes(
        ToolDeps(pipeline, authenticate, gw.adapter_models, config.server.max_body_bytes)
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await gw.start()
        follow = asyncio.create_task(governance.follow()) if governance is not None else None
        if handle_sighup:

            def on_sighup() -> None:
                result = gw.policy.reload(reload_policy)
                gw.metrics.policy_reloads.labels("ok" if result.ok else "refused").inc()

            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_sighup)
        try:
            async with tools_lifespan():
                yield
        finally:
            if follow is not None:
                follow.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follow
            pipeline.close()
            await gw.aclose()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *openai_routes(runner, gw.table, gw.policy, gw.alias_target),
        *responses_routes(runner, gw.conversations),
        *anthropic_routes(runner),
        *admin_routes(
            AdminDeps(
                authenticate=authenticate,
                keys=gw.keys,
                policy=gw.policy,
                ledger=gw.ledger,
                usage=gw.usage,
                metrics=gw.metrics,
                verifiers=gw.ledger_verifiers,
            ),
            reload_policy,
        ),
        *action_routes(gw.actions, authenticate),
        *governance_routes(governance, authenticate),
        *console_routes(
            ConsoleDeps(
                store=gw.store,
                keys=gw.keys,
                sessions=gw.console_sessions,
                usage=gw.usage,
                budget_configs=config.budgets,
                budgets=gw.budgets,
                health=gw.health,
                table=gw.table,
                policy=gw.policy,
                actions=gw.actions,
                ledger=gw.ledger,
                verifiers=gw.ledger_verifiers,
                governance=governance,
                settings=config.console,
                throttle=gw.signin_throttle,
            )
        ),
        *tools,
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers(),
    )
    # id headers, the body deadline and the access log, in one wrapper (api/edge.py)
    app.add_middleware(EdgeMiddleware, body_timeout_s=config.server.body_timeout_s)
    app.state.gateway = gw
    app.state.pipeline = pipeline
    app.state.governance = governance
    return app
