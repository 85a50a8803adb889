"""The receipt log: signs receipts and appends them to an RFC 9162 tree in the shared store.

Each append is one job for the store's writer thread, which group-commits
every job waiting at that moment in one transaction and one fsync. The job
assigns the index and time, signs (so the index is inside the signed body),
stores the leaf and the complete subtrees it closes, and advances the
in-memory frontier. The job's future resolves only after the commit, so an
append returns once the receipt is durable.

The in-memory frontier is touched only by writer-thread jobs. Each job first
checks it against the committed size (one indexed read); if a batch commit
failed after a job advanced it, the next job reloads the frontier from the
stored subtrees instead of building on receipts that were never written.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import itertools
import json
import logging
import re
import secrets
import sqlite3
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from hybridgate.config import LedgerConfig
from hybridgate.errors import ServiceUnavailable
from hybridgate.ledger.appender import AppendQueue, Pending
from hybridgate.ledger.canonical import b64encode, canonical_json
from hybridgate.ledger.keys import KeyRing, VerifierKey
from hybridgate.ledger.merkle import (
    Frontier,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_at,
)
from hybridgate.ledger.note import parse_checkpoint, sign_checkpoint
from hybridgate.ledger.receipt import leaf_bytes, make_bundle
from hybridgate.store.base import Migration, Store

log = logging.getLogger("hybridgate.ledger")

RESERVED = ("receipt_id", "log_index", "time_ns", "gateway_key_id")
#: Receipt kinds are open-ended ("request", "action", "approval", ...) but must be a short tag.
_KIND = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RECEIPT_ID = re.compile(r"[A-Za-z0-9_-]{8,80}")

MIGRATIONS = (
    Migration(
        "ledger",
        1,
        """
        CREATE TABLE ledger_entries (
            idx INTEGER PRIMARY KEY,
            receipt_id TEXT NOT NULL UNIQUE,
            data BLOB NOT NULL
        );
        CREATE TABLE ledger_nodes (
            level INTEGER NOT NULL,
            idx INTEGER NOT NULL,
            hash BLOB NOT NULL,
            PRIMARY KEY (level, idx)
        ) WITHOUT ROWID;
        CREATE TABLE ledger_checkpoints (
            tree_size INTEGER PRIMARY KEY,
            root BLOB NOT NULL,
            key_id TEXT NOT NULL,
            issued_ns INTEGER NOT NULL,
            note TEXT NOT NULL
        );
        """,
    ),
)


class StaleCheckpoint(ValueError):
    """The checkpoint a proof was asked against predates the receipt."""


@dataclass(frozen=True, slots=True)
class AppendResult:
    receipt_id: str
    index: int
    leaf_hash: str  # hex


def valid_receipt_id(value: object) -> bool:
    return isinstance(value, str) and _RECEIPT_ID.fullmatch(value) is not None


def _read_node(conn: Any, level: int, index: int) -> bytes:
    row = conn.execute(
        "SELECT hash FROM ledger_nodes WHERE level = ? AND idx = ?", (level, index)
    ).fetchone()
    if row is None:
        raise ServiceUnavailable(
            f"receipt log is missing stored node ({level}, {index})", code="ledger_corrupt"
        )
    return bytes(row[0])


def _committed_size(conn: Any) -> int:
    row = conn.execute("SELECT MAX(idx) FROM ledger_entries").fetchone()
    return 0 if row is None or row[0] is None else int(row[0]) + 1


class Ledger:
    """One per gateway. ``append`` is safe from any thread or event loop; the read methods
    are synchronous and cheap (indexed reads), except that ``checkpoint`` and ``bundle``
    wait for one group commit when they must issue a fresh checkpoint first."""

    def __init__(
        self,
        store: Store,
        keys: KeyRing,
        config: LedgerConfig,
        commitment_secret: bytes,
    ) -> None:
        if len(commitment_secret) < 16:
            raise ValueError("the commitment secret must be at least 16 bytes")
        self.store = store
        self.keys = keys
        self.config = config
        self._secret = commitment_secret
        #: Keyed once; each exchange's committer is a copy (half the cost of keying anew).
        self._keyed = hmac.new(commitment_secret, digestmod="sha256")
        self._task: asyncio.Task[None] | None = None
        self._id_key = secrets.token_bytes(32)
        self._id_counter = itertools.count()
        self._queue: AppendQueue[AppendResult] = AppendQueue(store, self._append_batch)
        with store.reader() as conn:
            size = _committed_size(conn)
            self._frontier = Frontier.load(size, lambda lv, i: _read_node(conn, lv, i))
            self._check_latest_checkpoint(conn)

    @staticmethod
    def migrations() -> list[Migration]:
        return list(MIGRATIONS)

    def _check_latest_checkpoint(self, conn: sqlite3.Connection) -> None:
        """On restart, the newest checkpoint must match the stored tree: a mismatch means the
        database was altered or restored from elsewhere, and appending on top would hide it."""
        row = conn.execute(
            "SELECT tree_size, root FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return
        size, root = int(row[0]), bytes(row[1])
        if size > self._frontier.size:
            raise ServiceUnavailable(
                f"receipt log has {self._frontier.size} entries but a checkpoint covers {size}",
                code="ledger_corrupt",
            )
        if root_at(size, lambda lv, i: _read_node(conn, lv, i)) != root:
            raise ServiceUnavailable(
                f"stored tree does not match the checkpoint at size {size}", code="ledger_corrupt"
            )

    # -- lifecycle --------------------------------------------------------
    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._checkpoint_loop(), name="ledger-checkpoints")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:  # a final checkpoint, so what was appended before shutdown is covered
            await self.store.write(self._checkpoint_job)
        except ServiceUnavailable as exc:
            log.warning("no final checkpoint at shutdown: %s", exc)

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.checkpoint_interval_s)
            try:
                latest = self.latest_checkpoint()
                if latest is None or latest[0] < self.size():  # idle logs cost no writes
                    await self.store.write(self._checkpoint_job)
            except ServiceUnavailable as exc:
                log.error("periodic checkpoint failed: %s", exc)

    # -- the write path ----------------------------------------------------
    def new_receipt_id(self) -> str:
        """``rcpt_`` + the time in ms (12 hex digits) + 80 bits of keyed BLAKE2b over a
        counter. Unique (counter within a process, a fresh random key per process) and
        unguessable without the key; time-ordered, so the id index grows at its end instead
        of taking random inserts. One ``os.urandom`` per process, not per request."""
        n = next(self._id_counter)
        digest = hashlib.blake2b(n.to_bytes(8, "big"), key=self._id_key, digest_size=10).digest()
        tail = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
        return f"rcpt_{time.time_ns() // 1_000_000:012x}{tail}"

    def commit(self, data: bytes) -> str:
        h = self._keyed.copy()  # a quarter of hmac.digest's cost, which keys anew each call
        h.update(data)
        return h.hexdigest()

    def committer(self) -> hmac.HMAC:
        """An incremental :meth:`commit`: feed a long answer as it streams, no buffering."""
        return self._keyed.copy()

    def verifiers(self) -> list[VerifierKey]:
        return self.keys.verifiers()

    def _sync(self, conn: sqlite3.Connection) -> None:
        size = _committed_size(conn)
        if size != self._frontier.size:
            log.warning("ledger frontier at %d, store at %d: reloading", self._frontier.size, size)
            self._frontier = Frontier.load(size, lambda lv, i: _read_node(conn, lv, i))

    def _append_batch(
        self, conn: sqlite3.Connection, items: list[Pending[AppendResult]]
    ) -> list[AppendResult | BaseException]:
        """Runs on the writer thread. An item that cannot be canonicalized or reuses a
        receipt id fails alone; any other error fails the batch (the store rolls it back
        and the next job reloads the frontier)."""
        self._sync(conn)
        out: list[AppendResult | BaseException] = []
        for item in items:
            try:
                out.append(self._append_one(conn, item.receipt_id, item.fields))
            except (ValueError, sqlite3.IntegrityError) as exc:
                out.append(exc)
        return out

    def _append_one(
        self, conn: sqlite3.Connection, receipt_id: str, fields: dict[str, Any]
    ) -> AppendResult:
        key = self.keys.active
        index = self._frontier.size
        body = dict(fields)
        body["receipt_id"] = receipt_id
        body["log_index"] = index
        body["time_ns"] = str(time.time_ns())  # RFC 8785 integers stop at 2**53
        body["gateway_key_id"] = key.key_id
        canonical = canonical_json(body)
        data = leaf_bytes(canonical, key.key_id, key.sign(canonical))
        leaf = leaf_hash(data)
        frontier, nodes = self._frontier.append(leaf)
        # The one statement expected to fail (a reused receipt id) runs first and alone.
        conn.execute(
            "INSERT INTO ledger_entries (idx, receipt_id, data) VALUES (?, ?, ?)",
            (index, receipt_id, data),
        )
        conn.executemany("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
        self._frontier = frontier  # only after every statement succeeded
        return AppendResult(receipt_id, index, leaf.hex())

    def _validate(self, receipt_id: str, fields: dict[str, Any]) -> None:
        if not valid_receipt_id(receipt_id):
            raise ValueError("receipt id must be 8-80 URL-safe characters")
        if not isinstance(fields, dict):  # non-string keys fail canonicalization later
            raise ValueError("receipt fields must be an object")
        taken = [k for k in RESERVED if k in fields]
        if taken:
            raise ValueError(f"receipt fields may not set {', '.join(taken)}: the log does")
        kind = fields.get("kind")
        if not isinstance(kind, str) or not _KIND.fullmatch(kind):
            raise ValueError("receipt kind must be a short lowercase tag such as 'request'")

    async def append(self, receipt_id: str, fields: dict[str, Any]) -> AppendResult:
        self._validate(receipt_id, fields)
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[AppendResult] = loop.create_future()
        self._queue.put(Pending(receipt_id, fields, waiter, loop))
        return await waiter

    def append_sync(
        self, receipt_id: str, fields: dict[str, Any], timeout: float = 30.0
    ) -> AppendResult:
        self._validate(receipt_id, fields)
        waiter: Future[AppendResult] = Future()
        self._queue.put(Pending(receipt_id, fields, waiter, None))
        return waiter.result(timeout=timeout)

    def _checkpoint_job(self, conn: sqlite3.Connection) -> str:
        self._sync(conn)
        size = self._frontier.size
        row = conn.execute(
            "SELECT tree_size, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
        ).fetchone()
        if row is not None and int(row[0]) >= size:
            return str(row[1])
        key = self.keys.active
        root = self._frontier.root()
        note = sign_checkpoint(self.config.origin, size, root, key)
        conn.execute(
            "INSERT INTO ledger_checkpoints (tree_size, root, key_id, issued_ns, note)"
            " VALUES (?, ?, ?, ?, ?)",
            (size, root, key.key_id, time.time_ns(), note),
        )
        return note

    async def issue_checkpoint(self) -> str:
        note: str = await self.store.write(self._checkpoint_job)
        return note

    # -- reads ---------------------------------------------------------------
    def size(self) -> int:
        """Entries committed to disk (what a checkpoint issued now would cover)."""
        with self.store.reader() as conn:
            return _committed_size(conn)

    def get_receipt(self, receipt_id: str) -> dict[str, Any] | None:
        row = self._entry(receipt_id)
        return None if row is None else _loads(row[1])

    def _entry(self, receipt_id: str) -> tuple[int, bytes] | None:
        if not valid_receipt_id(receipt_id):
            return None
        rows = self.store.query(
            "SELECT idx, data FROM ledger_entries WHERE receipt_id = ?", (receipt_id,)
        )
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None

    def latest_checkpoint(self) -> tuple[int, str] | None:
        rows = self.store.query(
            "SELECT tree_size, note FROM ledger_checkpoints ORDER BY tree_size DESC LIMIT 1"
        )
        return (int(rows[0][0]), str(rows[0][1])) if rows else None

    def checkpoint(self, *, issue_if_stale: bool = True) -> str:
        """The newest signed checkpoint; a new one first when entries were committed since
        (or when there is none at all). Blocks for one group commit when it issues."""
        latest = self.latest_checkpoint()
        if latest is not None and (not issue_if_stale or latest[0] >= self.size()):
            return latest[1]
        note: str = self.store.write_sync(self._checkpoint_job)
        return note

    def bundle(self, receipt_id: str) -> dict[str, Any] | None:
        entry = self._entry(receipt_id)
        if entry is None:
            return None
        index, data = entry
        latest = self.latest_checkpoint()
        note = latest[1] if latest is not None and latest[0] > index else None
        if note is None:  # the newest checkpoint predates this receipt: cover it now
            note = self.store.write_sync(self._checkpoint_job)
        return self._prove(index, data, note)

    def prove(self, receipt_id: str, note: str) -> dict[str, Any] | None:
        """The receipt's bundle proved against the checkpoint ``note`` this log signed,
        so many receipts are proved against one checkpoint while the log grows. None when
        the receipt is not in the tree (on the shared log: still queued); ``ValueError``
        when ``note`` predates it (:class:`StaleCheckpoint`)."""
        entry = self._entry(receipt_id)
        return None if entry is None else self._prove(entry[0], entry[1], note)

    def _prove(self, index: int, data: bytes, note: str) -> dict[str, Any]:
        cp = parse_checkpoint(note)
        if index >= cp.size:
            raise StaleCheckpoint(f"the checkpoint of size {cp.size} predates log index {index}")
        with self.store.reader() as conn:
            proof = inclusion_proof(index, cp.size, lambda lv, i: _read_node(conn, lv, i))
        return make_bundle(_loads(data), index, cp.size, proof, note)

    def consistency(self, first: int, second: int) -> dict[str, Any]:
        """Proof that the tree of size ``second`` extends the one of size ``first``.
        ``ValueError`` unless 0 <= first <= second <= committed size."""
        if not (isinstance(first, int) and isinstance(second, int)):
            raise ValueError("first and second must be integers")
        with self.store.reader() as conn:
            size = _committed_size(conn)
            if not 0 <= first <= second <= size:
                raise ValueError(f"need 0 <= first <= second <= {size} (the log's size)")

            def read(lv: int, i: int) -> bytes:
                return _read_node(conn, lv, i)

            proof = consistency_proof(first, second, read)
            return {
                "first": first,
                "second": second,
                "first_root": b64encode(root_at(first, read)),
                "second_root": b64encode(root_at(second, read)),
                "proof": [b64encode(p) for p in proof],
            }


def _loads(data: bytes) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(data)
    return obj
