"""Wall time of named gateway functions, recorded inside a running ``hybridgate serve``.

Loaded by ``stage_times.py`` through a generated ``sitecustomize`` in the gateway's
process (only when ``HYBRIDGATE_STAGE_PROBE`` names the output file): each function in
``HYBRIDGATE_STAGE_FUNCS`` (``module:attribute.path`` items, comma separated) is replaced
by a wrapper that records its wall time, and on SIGTERM every function's times are
written to the output file as JSON and the process exits. A benchmark instrument only:
the gateway never imports this module.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

TIMES: dict[str, list[float]] = {}


def _wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    times = TIMES.setdefault(name, [])
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def timed_async(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                if not _other_scope(args):
                    times.append(time.perf_counter() - t0)

        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - t0)

    return timed


def _other_scope(args: tuple[Any, ...]) -> bool:
    """An ASGI call for the app's lifespan or a websocket: not a request, not recorded."""
    scope = args[1] if len(args) > 1 else None
    return isinstance(scope, dict) and scope.get("type") in ("lifespan", "websocket")


def install(spec: str, out: str) -> None:
    """Wrap every ``module:attr.path`` of ``spec``; dump on SIGTERM to ``out``."""
    for item in filter(None, spec.split(",")):
        module, _, path = item.partition(":")
        owner: Any = importlib.import_module(module)
        *parents, attr = path.split(".")
        for p in parents:
            owner = getattr(owner, p)
        raw = inspect.getattr_static(owner, attr)
        if isinstance(raw, staticmethod):
            setattr(owner, attr, staticmethod(_wrap(item, raw.__func__)))
        else:
            setattr(owner, attr, _wrap(item, getattr(owner, attr)))

    def dump(*_: Any) -> None:
        with open(out, "w") as fh:
            json.dump(TIMES, fh)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)


def from_env() -> None:
    out = os.environ.get("HYBRIDGATE_STAGE_PROBE")
    if out:
        install(os.environ.get("HYBRIDGATE_STAGE_FUNCS", ""), out)
