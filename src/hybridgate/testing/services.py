"""Real PostgreSQL and Redis for tests: a private database per test, or a private server.

Tests share the machine's PostgreSQL (``HYBRIDGATE_TEST_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``) and Redis (``HYBRIDGATE_TEST_REDIS``,
default ``redis://127.0.0.1:6379/0``) with other test runs, so each test gets a
uniquely named database (dropped afterwards) and a unique Redis key prefix.
Tests that restart or stop a server start their own throwaway one instead
(:func:`throwaway_postgres`, :func:`throwaway_redis`): restarting the shared
one would break everybody else.
"""

from __future__ import annotations

import contextlib
import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


def admin_dsn() -> str:
    return os.environ.get("HYBRIDGATE_TEST_PG", DEFAULT_PG)


def redis_url() -> str:
    return os.environ.get("HYBRIDGATE_TEST_REDIS", DEFAULT_REDIS)


def _with_db(dsn: str, db: str) -> str:
    base, _, _ = dsn.rpartition("/")
    return f"{base}/{db}"


@contextlib.contextmanager
def pg_database(dsn: str | None = None) -> Iterator[str]:
    """CREATE a uniquely named database, yield its DSN, DROP it (WITH FORCE) afterwards."""
    import psycopg

    admin = dsn or admin_dsn()
    name = f"hgt_{secrets.token_hex(6)}"
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_db(admin, name)
    finally:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed")
    return path


@dataclass
class Server:
    """A private database server the test may stop, kill and restart."""

    kind: str
    port: int
    workdir: Path

    @property
    def dsn(self) -> str:
        if self.kind == "postgres":
            return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.kind == "postgres":
            _run_pg(_pg_start_cmd(self))
        else:
            subprocess.run(
                [
                    "redis-server",
                    "--port",
                    str(self.port),
                    "--bind",
                    "127.0.0.1",
                    "--daemonize",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.workdir),
                    "--pidfile",
                    str(self.workdir / "redis.pid"),
                    "--logfile",
                    str(self.workdir / "redis.log"),
                ],
                check=True,
                capture_output=True,
            )
            self._wait_redis()

    def stop(self) -> None:
        if self.kind == "postgres":
            _run_pg(_pg_stop_cmd(self), check=False)
        else:
            pidfile = self.workdir / "redis.pid"
            if pidfile.exists():
                pid = int(pidfile.read_text().strip())
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 15)
                for _ in range(100):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.05)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _wait_redis(self) -> None:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[Server]:
    """initdb + pg_ctl on a free port in a temp dir (trust auth, no fsync), removed afterwards.

    As root, the server runs as the ``postgres`` user (PostgreSQL refuses root)."""
    work = Path(tempfile.mkdtemp(prefix="hg-pg-"))
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
    srv = Server("postgres", free_port(), work)
    try:
        _run_pg([_pg_bin("initdb"), "-D", str(work / "data"), "-U", "postgres", "-A", "trust"])
        srv.start()
        yield srv
    finally:
        with contextlib.suppress(Exception):
            srv.stop()
        shutil.rmtree(work, ignore_errors=True)


def _pg_start_cmd(srv: Server) -> list[str]:
    return [
        _pg_bin("pg_ctl"),
        "-D",
        str(srv.workdir / "data"),
        "-l",
        str(srv.workdir / "pg.log"),
        "-o",
        f"-p {srv.port} -k {srv.workdir} -c listen_addresses=127.0.0.1"
        " -c fsync=off -c max_connections=200",
        "-w",
        "start",
    ]


def _pg_stop_cmd(srv: Server) -> list[str]:
    return [_pg_bin("pg_ctl"), "-D", str(srv.workdir / "data"), "-m", "fast", "-w", "stop"]


def _run_pg(cmd: list[str], *, check: bool = True) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*prefix, *cmd], check=check, capture_output=True)


@contextlib.contextmanager
def throwaway_redis() -> Iterator[Server]:
    work = Path(tempfile.mkdtemp(prefix="hg-redis-"))
    srv = Server("redis", free_port(), work)
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
