"""Scanning within a request's budget, large bodies off the event loop.

Scanning is the only CPU-heavy stage. Small bodies scan inline (a thread
hand-off costs more than their scan); larger ones go to a bounded pool, so one
huge prompt cannot stall every other request. An agent's next turn is large but
mostly seen: its messages are looked up first (digests only), and when what is
new fits the inline budget it scans inline too, with those lookups. Handing such a
turn to the pool cost it more than its scan (README, *An agent's next turn*).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hybridgate.errors import PayloadTooLarge, ServiceUnavailable
from hybridgate.pipeline.decision import look_up, scan_body
from hybridgate.pipeline.deps import ScanLimits
from hybridgate.scan import Scanner
from hybridgate.scan.findings import RequestScan, Segment


class ScanPool:
    """The bounded pool large scans run on, and how many it holds now."""

    def __init__(self, on_scan: Callable[[str], None] | None = None) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._scans_in_pool = 0
        #: told where each scan ran: "inline", "seen" (large, on the loop) or "pool"
        self._on_scan = on_scan if on_scan is not None else _ignore

    async def scan(
        self, scanner: Scanner, lim: ScanLimits, raw_body: bytes, body: dict[str, Any]
    ) -> tuple[list[Segment], RequestScan]:
        """Scan ``body`` within ``lim``.

        More waiting than the pool admits is a 503, more bytes than the scan
        budget a 413, a scan past its time budget a 503 — and in every case
        nothing is sent.
        """
        size = len(raw_body) or len(json.dumps(body, ensure_ascii=False))
        if size > lim.max_bytes:
            raise PayloadTooLarge(
                f"the request holds {size} bytes to scan, more than the scan budget of "
                f"{lim.max_bytes} bytes; nothing was sent",
                code="scan_budget_exceeded",
            )
        if size <= lim.inline_bytes:
            self._on_scan("inline")
            return scan_body(scanner, body)
        looked = look_up(scanner, body) if size <= lim.inline_seen_bytes else None
        if looked is not None and looked.unseen <= lim.inline_bytes:
            self._on_scan("seen")
            return scan_body(scanner, body, looked)
        if self._scans_in_pool >= lim.workers + lim.queue:
            raise ServiceUnavailable(
                "the scanner is busy with other large requests; nothing was sent, retry later",
                code="scanner_busy",
            )
        if self._pool is None:
            self._pool = ThreadPoolExecutor(lim.workers, thread_name_prefix="hybridgate-scan")
        self._scans_in_pool += 1
        self._on_scan("pool")
        fut = asyncio.get_running_loop().run_in_executor(
            self._pool, scan_body, scanner, body, looked
        )
        fut.add_done_callback(self._scan_done)  # a timed-out scan holds its slot until it ends
        try:
            return await asyncio.wait_for(asyncio.shield(fut), lim.timeout_s)
        except TimeoutError:
            raise ServiceUnavailable(
                f"scanning this request took longer than its {lim.timeout_s:g} s budget; "
                "nothing was sent",
                code="scan_timeout",
            ) from None

    def _scan_done(self, _: object) -> None:
        self._scans_in_pool -= 1

    def close(self) -> None:
        """Stop the pool (running scans finish on their own)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _ignore(_: str) -> None:
    """No one asked where scans run."""
