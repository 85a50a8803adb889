"""One serving process per SQLite home.

The embedded store keeps budgets and rate limits in the memory of the process
that serves, and the receipt log's frontier too: a second ``serve`` on the same
home would keep its own budgets (a cap spent twice) and race the first for log
indexes. So ``serve`` takes an exclusive ``flock`` on ``HOME/serve.lock`` and a
second process is refused with a clear error. The kernel drops the lock when
the process exits, however it exits, so a crash never leaves a stale lock.
Commands that only read or append through the store's own locking
(``keys create``, ``log verify``) do not take it. Many workers or replicas need
``store.kind: postgres``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from hybridgate.errors import ConfigError


class HomeLocked(ConfigError):
    """Another process is already serving this home."""


def lock_home(home: Path) -> int:
    """Take the serving lock (returns its fd; keep it open while serving)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "serve.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = ""
        with contextlib.suppress(OSError, ValueError):
            other = f" (pid {int(os.pread(fd, 32, 0).decode().strip())})"
        os.close(fd)
        raise HomeLocked(
            f"another hybridgate process{other} is serving {home}: an embedded SQLite home"
            " serves from one process (budgets and the receipt log live in its memory)."
            " Stop it, use another --home, or set store.kind: postgres for several workers"
            " or replicas."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
