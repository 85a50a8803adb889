"""Failures with real servers: PostgreSQL restarted and Redis stopped/restarted under load,
the sequencer's replica SIGKILLed (a real process) and a sequencer killed inside its batch.

After each: no budget overspent, nothing sensitive sent to an external route, every
response a client got has its receipt in the one log, and the log verifies. Restarts use
a private PostgreSQL / Redis started for the test (the shared ones serve other runs)."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import yaml

from hybridgate.config import LedgerConfig, parse_config
from hybridgate.ledger import KeyRing
from hybridgate.ledger.audit import verify_log
from hybridgate.ledger.shared import LOG_LOCK, Sequencer, SharedLedger
from hybridgate.store.postgres import PostgresStore
from hybridgate.testing import OpenAIUpstream
from hybridgate.testing.services import free_port, pg_database, throwaway_postgres, throwaway_redis
from scale.scale_harness import SECRET, Cluster, burst, cluster, cluster_config, wait_ready

BUDGET = [{"scope": "team", "name": "race", "usd_per_day": 0.5}]


def _check_after(c: Cluster, responses: list[Any], cap: str = "0.50") -> None:
    """The four promises, on whatever the clients got."""
    gw = c.gws[0]
    for g in c.gws:
        g.budgets.close()  # type: ignore[union-attr]  # settle what is queued
    status = gw.budgets.status("team", "race")
    assert Decimal(status["day"]["usd"]) <= Decimal(cap), status
    assert SECRET not in c.external_text()
    report = c.verify(gw)
    assert report.ok, report.error
    got = [r for r in responses if isinstance(r, httpx.Response)]
    for r in got:
        if r.status_code == 200:
            rid = r.headers["x-hybridgate-receipt"]
            assert gw.ledger.get_receipt(rid) is not None, rid


def _load(c: Cluster, key: str, rounds: int, out: list[Any], pause: float = 0.05) -> None:
    """Budgeted traffic (some carrying a secret) from a background thread."""
    for i in range(rounds):
        content = f"deploy with {SECRET}" if i % 3 == 0 else "go"
        out += asyncio.run(burst(c.urls, key, 12, model="any", content=content))
        time.sleep(pause)


def test_postgres_restart_under_load(tmp_path: Path) -> None:
    with (
        throwaway_postgres() as pg,
        pg_database(pg.dsn) as dsn,
        throwaway_redis() as rd,
        cluster(tmp_path, dsn, rd.dsn, replicas=2, budgets=BUDGET) as c,
    ):
        key = c.gws[0].keys.create("race")
        out: list[Any] = []
        t = threading.Thread(target=_load, args=(c, key, 20, out))
        t.start()
        time.sleep(0.5)
        pg.restart()
        t.join(120)
        assert not t.is_alive()
        # after the restart the replicas serve again
        after = asyncio.run(burst(c.urls, key, 4))
        codes = [r.status_code for r in after if isinstance(r, httpx.Response)]
        assert any(code in (200, 429) for code in codes), codes
        _check_after(c, out + after)
        statuses = {r.status_code for r in out if isinstance(r, httpx.Response)}
        assert statuses <= {200, 403, 400, 429, 503}, statuses


def test_redis_stopped_then_restarted_while_budgeted_traffic_flows(
    tmp_path: Path, pg_dsn: str
) -> None:
    budgets = [*BUDGET, {"scope": "team", "name": "race", "requests_per_minute": 1000}]
    with throwaway_redis() as rd, cluster(tmp_path, pg_dsn, rd.dsn, 2, budgets=budgets) as c:
        key = c.gws[0].keys.create("race")
        free = c.gws[0].keys.create("unlimited")  # no limit applies: Redis is not needed
        first = asyncio.run(burst(c.urls, key, 10))
        assert {r.status_code for r in first if isinstance(r, httpx.Response)} == {200}
        rd.stop()
        during = asyncio.run(burst(c.urls, key, 10))
        codes = [r.status_code for r in during if isinstance(r, httpx.Response)]
        assert codes == [503] * 10, codes  # never unlimited
        bodies = [r.json() for r in during if isinstance(r, httpx.Response)]
        assert all(b["error"]["code"] == "rate_limit_unavailable" for b in bodies), bodies[0]
        unl = asyncio.run(burst(c.urls, free, 4))
        assert [r.status_code for r in unl if isinstance(r, httpx.Response)] == [200] * 4
        rd.start()
        out: list[Any] = []
        _load(c, key, 4, out, pause=0)
        assert any(isinstance(r, httpx.Response) and r.status_code == 200 for r in out)
        # Redis restarted under load: its windows restart empty; budgets (PostgreSQL) hold
        t = threading.Thread(target=_load, args=(c, key, 8, out))
        t.start()
        time.sleep(0.2)
        rd.restart()
        t.join(120)
        _check_after(c, first + during + unl + out)


# -- the sequencer killed ----------------------------------------------------------------
def _leader_app(dsn: str) -> str | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s"
            # advisory locks are per database; other databases' logs have leaders too
            " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (LOG_LOCK & 0xFFFFFFFF,),
        ).fetchone()
    return None if row is None else str(row[0])


def _spawn(cfg_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hybridgate",
            "serve",
            "--config",
            str(cfg_path),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_sequencer_replica_sigkilled_under_load(tmp_path: Path, pg_dsn: str, redis: str) -> None:
    with (
        OpenAIUpstream(api_key="sk-upstream-secret-openai") as ext,
        OpenAIUpstream() as onprem,
    ):
        from hybridgate.testing import AnthropicUpstream

        with AnthropicUpstream(api_key="sk-ant-upstream-secret") as claude:
            procs: dict[str, subprocess.Popen[bytes]] = {}
            urls: dict[str, str] = {}
            for name in ("alpha", "beta"):
                raw = cluster_config(
                    tmp_path,
                    ext,
                    claude,
                    onprem,
                    f"{pg_dsn}?application_name={name}",
                    redis,
                    budgets=BUDGET,
                )
                raw["store"]["sequencer_interval_ms"] = 200  # batches of many leaves
                path = tmp_path / f"{name}.yaml"
                path.write_text(yaml.safe_dump(raw))
                port = free_port()
                urls[name] = f"http://127.0.0.1:{port}"
                procs[name] = _spawn(path, port)
                wait_ready(urls[name], procs[name])  # one at a time: home keys created once
            try:
                cfg = parse_config(yaml.safe_load((tmp_path / "alpha.yaml").read_text()))
                store = PostgresStore(pg_dsn)
                store.open([])
                from hybridgate.keys import KeyStore
                from hybridgate.runtime import load_or_create_secret

                key = KeyStore(store, load_or_create_secret(cfg.home_path)).create("race")
                leader = None
                for _ in range(100):
                    leader = _leader_app(pg_dsn)
                    if leader:
                        break
                    time.sleep(0.1)
                assert leader in procs, leader
                other = "beta" if leader == "alpha" else "alpha"
                out: list[Any] = []
                out += asyncio.run(burst(list(urls.values()), key, 40))
                procs[leader].send_signal(signal.SIGKILL)
                procs[leader].wait(10)
                out += asyncio.run(burst([urls[other]], key, 40))
                # the survivor takes the lock and merges everything queued, the dead one's too
                ring = KeyRing.load(cfg.home_path / "keys")
                for _ in range(300):
                    if _leader_app(pg_dsn) == other and not store.query(
                        "SELECT 1 FROM ledger_queue LIMIT 1"
                    ):
                        break
                    time.sleep(0.1)
                assert _leader_app(pg_dsn) == other
                report = verify_log(store, ring.verifiers())
                assert report.ok, report.error
                ok = [r for r in out if isinstance(r, httpx.Response) and r.status_code == 200]
                assert ok
                for r in ok:
                    rid = r.headers["x-hybridgate-receipt"]
                    assert store.query(
                        "SELECT 1 FROM ledger_entries WHERE receipt_id = ?", (rid,)
                    ), rid
                spent = store.query(
                    "SELECT usd_nano FROM budget_spend WHERE scope = 'team' AND name = 'race'"
                    " AND period LIKE 'd:%'"
                )
                assert not spent or int(spent[0][0]) <= 500_000_000
                store.close()
            finally:
                for p in procs.values():
                    if p.poll() is None:
                        p.terminate()
                        p.wait(15)
                    if p.stderr is not None:
                        p.stderr.close()


def _kill_inside_batch(dsn: str, home: str) -> None:
    """A sequencer that dies after writing entries and nodes, before it commits."""
    import hybridgate.ledger.shared as shared

    def die(*_: Any, **__: Any) -> str:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")

    shared.sign_checkpoint = die  # type: ignore[attr-defined]
    store = PostgresStore(dsn)
    store.open([])
    seq = Sequencer(store, KeyRing.load(Path(home) / "keys"), "test.local/log")
    seq.step()


async def _queue(led: SharedLedger, n: int) -> list[str]:
    ids = [led.new_receipt_id() for _ in range(n)]
    await asyncio.gather(*(led.append(r, {"kind": "request", "n": i}) for i, r in enumerate(ids)))
    return ids


def test_sequencer_killed_inside_its_batch_loses_nothing(tmp_path: Path, pg_dsn: str) -> None:
    ring = KeyRing.load_or_create(tmp_path / "keys", "test.local/log")
    store = PostgresStore(pg_dsn)
    store.open(SharedLedger.migrations())
    led = SharedLedger(store, ring, LedgerConfig(origin="test.local/log"), b"s" * 32)
    first = asyncio.run(_queue(led, 30))
    assert led.sequencer.step() == 30
    led.sequencer._drop()  # step down: the child must win the lock
    second = asyncio.run(_queue(led, 50))
    child = mp.get_context("spawn").Process(target=_kill_inside_batch, args=(pg_dsn, str(tmp_path)))
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert led.queued() == 50 and led.size() == 30  # the dead batch committed nothing
    survivor = Sequencer(store, ring, "test.local/log")
    for _ in range(100):  # the lock is free once PostgreSQL reaps the dead session
        if survivor.try_lead():
            break
        time.sleep(0.1)
    assert survivor.step() == 50
    assert led.queued() == 0 and led.size() == 80
    report = verify_log(store, ring.verifiers())
    assert report.ok and report.size == 80, report.error
    for rid in first + second:
        bundle = led.bundle(rid)
        assert bundle is not None and "inclusion_proof" in bundle
    survivor._drop()
    store.close()
