"""``hybridgate serve --workers N``: N uvicorn worker processes, each its own gateway.

Each worker builds its app with :func:`worker_app` from the config file and home
named in its environment (uvicorn starts workers by import string), so workers
share nothing in memory: with ``store.kind: postgres`` they share budgets, rate
limits and the receipt log through PostgreSQL and Redis exactly as separate
replicas do. On the embedded SQLite store a second worker could not keep budgets
exact, so more than one worker is refused there.
"""

from __future__ import annotations

import os
from pathlib import Path

from starlette.applications import Starlette

from hybridgate.config import GatewayConfig, load_config
from hybridgate.errors import ConfigError

ENV_CONFIG = "HYBRIDGATE_SERVE_CONFIG"
ENV_HOME = "HYBRIDGATE_SERVE_HOME"


def check_workers(cfg: GatewayConfig, workers: int) -> None:
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    if workers > 1 and cfg.store.kind != "postgres":
        raise ConfigError(
            f"--workers {workers} needs store.kind: postgres (with store.redis_url for rate"
            " limits): the embedded SQLite store keeps budgets in one process's memory"
        )


def worker_app() -> Starlette:
    """The app factory each worker process calls."""
    from hybridgate.app import create_app
    from hybridgate.server import short_gil_switch, tune_gc

    short_gil_switch()  # as a single-process serve does

    path = os.environ.get(ENV_CONFIG)
    if not path:
        raise ConfigError(f"{ENV_CONFIG} is not set: --workers needs --config")
    cfg = load_config(Path(path))
    home = os.environ.get(ENV_HOME)
    if home:
        cfg = cfg.model_copy(update={"home": home})
    app = create_app(cfg, config_path=path, handle_sighup=True)
    tune_gc()  # the app is built: what exists now is frozen, as a single-process serve does
    return app


def serve_workers(
    config_path: Path,
    home: Path | None,
    host: str,
    port: int,
    workers: int,
    log_level: str,
    header_timeout_s: float,
) -> None:
    """uvicorn's supervisor over ``workers`` processes on one socket, each serving with the
    same protocol (header deadline included) as a single-process ``serve``."""
    from uvicorn.supervisors import Multiprocess

    from hybridgate.server import uvicorn_config

    os.environ[ENV_CONFIG] = str(config_path.resolve())
    if home is not None:
        os.environ[ENV_HOME] = str(home)
    config = uvicorn_config(
        "hybridgate.workers:worker_app",
        host,
        port,
        log_level,
        header_timeout_s,
        factory=True,
        workers=workers,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
