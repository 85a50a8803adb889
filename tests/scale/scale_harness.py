"""Several gateway replicas on one PostgreSQL (and Redis), each a real server on loopback.

Each replica is its own app (its own store connections, writer thread, budget
manager and sequencer) sharing only what real replicas share: the database, Redis
and the home with the deployment secret and signing keys. Imported as
``scale.scale_harness`` (``tests`` is on the path)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from gateway_harness import base_config
from hybridgate.app import create_app
from hybridgate.config import GatewayConfig, parse_config
from hybridgate.ledger.audit import LogReport, verify_log
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import AnthropicUpstream, OpenAIUpstream

#: Output tokens cost $0.001 each, input is free: max_tokens=10 reserves $0.01.
PRICE: dict[str, float] = {"input_per_mtok": 0, "output_per_mtok": 1000}
SECRET = "AKIAIOSFODNN7EXAMPLE"  # an AWS access key id: must never reach an external route


@dataclass
class Cluster:
    config: GatewayConfig
    raw: dict[str, Any]
    external: OpenAIUpstream
    claude: AnthropicUpstream
    onprem: OpenAIUpstream
    servers: list[ServerThread] = field(default_factory=list)
    gws: list[Gateway] = field(default_factory=list)

    @property
    def urls(self) -> list[str]:
        return [s.base_url for s in self.servers]

    def add_replica(self, config: GatewayConfig | None = None) -> ServerThread:
        app = create_app(config or self.config)
        server = ServerThread(app).start()
        self.servers.append(server)
        self.gws.append(app.state.gateway)
        return server

    def external_text(self) -> str:
        return self.external.all_text() + self.claude.all_text()

    def wait_merged(self, gw: Gateway, timeout_s: float = 60.0) -> None:
        """Until the shared queue is empty (bounded: the test fails, it never hangs)."""
        deadline = time.monotonic() + timeout_s
        while gw.ledger.queued() > 0:  # type: ignore[attr-defined]
            if time.monotonic() > deadline:
                raise AssertionError("the sequencer did not merge the queue")
            time.sleep(0.05)

    def verify(self, gw: Gateway) -> LogReport:
        self.wait_merged(gw)
        return verify_log(gw.store, gw.ledger_verifiers())


def cluster_config(
    tmp: Path,
    ext: OpenAIUpstream,
    claude: AnthropicUpstream,
    onprem: OpenAIUpstream,
    dsn: str,
    redis_url: str | None,
    **overrides: Any,
) -> dict[str, Any]:
    raw = base_config(tmp, ext.base_url, claude.base_url, onprem.base_url, **overrides)
    raw["store"] = {
        "kind": "postgres",
        "dsn": dsn,
        "redis_url": redis_url,
        "redis_prefix": f"hgt:{secrets.token_hex(4)}:",
        "pool_size": 4,
        "sequencer_interval_ms": 20,
        **raw.get("store", {}),
    }
    for route in raw["routes"]:
        if route["name"] in ("llama-onprem", "gpt-4o"):
            route["price"] = PRICE
        # Three replicas and their bursts share a busy machine; a route timeout here would
        # move requests elsewhere and prove nothing about budgets or the log.
        route["timeout_s"] = 30
    return raw


@contextmanager
def cluster(
    tmp: Path, dsn: str, redis_url: str | None, replicas: int = 3, **overrides: Any
) -> Iterator[Cluster]:
    with ExitStack() as stack:
        ext = stack.enter_context(OpenAIUpstream(api_key="sk-upstream-secret-openai"))
        claude = stack.enter_context(AnthropicUpstream(api_key="sk-ant-upstream-secret"))
        onprem = stack.enter_context(OpenAIUpstream())
        raw = cluster_config(tmp, ext, claude, onprem, dsn, redis_url, **overrides)
        c = Cluster(parse_config(raw), raw, ext, claude, onprem)
        try:
            for _ in range(replicas):
                c.add_replica()
            yield c
        finally:
            for s in c.servers:
                s.stop()


async def burst(
    urls: list[str], key: str, n: int, *, model: str = "llama-onprem", content: str = "go"
) -> list[httpx.Response | BaseException]:
    """``n`` concurrent chat requests spread round-robin over the replicas."""
    clients = [
        httpx.AsyncClient(
            base_url=u,
            headers={"authorization": f"Bearer {key}"},
            limits=httpx.Limits(max_connections=n),
            timeout=60,
        )
        for u in urls
    ]
    body = {"model": model, "max_tokens": 10, "messages": [{"role": "user", "content": content}]}
    try:
        return await asyncio.gather(
            *(clients[i % len(clients)].post("/v1/chat/completions", json=body) for i in range(n)),
            return_exceptions=True,
        )
    finally:
        for cl in clients:
            await cl.aclose()


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until a replica process answers /readyz (bounded; its stderr if it exits)."""
    for _ in range(600):
        if proc.poll() is not None:
            raise AssertionError(f"replica exited: {proc.stderr.read() if proc.stderr else ''!r}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("replica did not become ready")
