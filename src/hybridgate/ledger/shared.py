"""One receipt log for every replica: a durable leaf queue, one elected sequencer.

Replicas cannot each append to the tree: the tree has one order, and two
writers would race for the same index. So, as in Certificate Transparency:

1. **Queue.** A replica signs the receipt (naming the log, ``log_origin``, but
   no index: the index is not known yet) and inserts the leaf into
   ``ledger_queue`` through its group-commit writer. The append returns once
   that row is committed: the receipt is durable, and the replica can hand out a
   *signed promise of inclusion* (log, leaf hash, time, maximum merge delay;
   :func:`hybridgate.ledger.receipt.make_promise`).
2. **Sequence.** Every replica runs a :class:`Sequencer`; the one holding the
   PostgreSQL session advisory lock ``LOG_LOCK`` is the leader. It takes queued
   leaves in queue order, appends them to the RFC 9162 tree (entries and
   complete-subtree nodes, as the single-writer ledger stores them), deletes
   them from the queue and signs a C2SP checkpoint for the new size, all in one
   transaction on the connection that holds the lock. A leader that dies
   mid-batch (SIGKILL, lost connection) commits nothing; PostgreSQL drops its
   lock with its session and another replica's sequencer takes over and
   integrates the same leaves: nothing is lost or duplicated.
3. **Prove.** ``bundle`` serves the inclusion proof once the leaf is merged,
   the promise until then; ``receipt verify`` checks both offline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

from hybridgate.config import LedgerConfig
from hybridgate.errors import ServiceUnavailable
from hybridgate.ledger.appender import Pending
from hybridgate.ledger.canonical import canonical_json
from hybridgate.ledger.keys import KeyRing
from hybridgate.ledger.ledger import AppendResult, Ledger, _committed_size, _loads, _read_node
from hybridgate.ledger.merkle import EMPTY_ROOT, Frontier, leaf_hash
from hybridgate.ledger.note import sign_checkpoint
from hybridgate.ledger.receipt import leaf_bytes, make_promise
from hybridgate.store.base import IntegrityError, Migration
from hybridgate.store.postgres import PgConn, PostgresStore

log = logging.getLogger("hybridgate.ledger")

#: Session advisory-lock key (arbitrary 64-bit constant) the sequencer leader holds.
LOG_LOCK = 0x6879_6272_6964_0002

MIGRATIONS = (
    Migration(
        "ledger",
        2,
        "",  # SQLite: one process owns the log, it appends directly (ledger.Ledger)
        postgres="""
        CREATE TABLE ledger_queue (
            seq BIGSERIAL PRIMARY KEY,
            receipt_id TEXT NOT NULL UNIQUE,
            data BYTEA NOT NULL,
            leaf_hash BYTEA NOT NULL,
            queued_ns BIGINT NOT NULL
        )
        """,
    ),
)


class SharedLedger(Ledger):
    """The :class:`Ledger` interface over the shared queue and sequenced tree."""

    def __init__(
        self,
        store: PostgresStore,
        keys: KeyRing,
        config: LedgerConfig,
        commitment_secret: bytes,
        *,
        max_merge_delay_s: float = 10.0,
        interval_s: float = 0.05,
        max_batch: int = 2000,
    ) -> None:
        super().__init__(store, keys, config, commitment_secret)
        self.pg = store
        self.max_merge_delay_s = max_merge_delay_s
        self.sequencer = Sequencer(store, keys, config.origin, interval_s, max_batch)

    @staticmethod
    def migrations() -> list[Migration]:
        return [*Ledger.migrations(), *MIGRATIONS]

    # -- lifecycle -----------------------------------------------------------
    async def start(self) -> None:
        await self.sequencer.start()

    async def aclose(self) -> None:
        await self.sequencer.stop()

    # -- the write path: queue, do not sequence ----------------------------------
    def _append_batch(
        self, conn: Any, items: list[Pending[AppendResult]]
    ) -> list[AppendResult | BaseException]:
        """Sign every item, then two statements for the whole batch: one read finding
        receipt ids already queued or merged (those items fail alone, as on SQLite), one
        pipelined insert of the rest. Round trips per batch, not per receipt."""
        ids = [item.receipt_id for item in items]
        taken = {
            r[0]
            for r in conn.execute(
                "SELECT receipt_id FROM ledger_queue WHERE receipt_id = ANY(?)"
                " UNION ALL SELECT receipt_id FROM ledger_entries WHERE receipt_id = ANY(?)",
                (ids, ids),
            ).fetchall()
        }
        out: list[AppendResult | BaseException] = []
        rows: list[tuple[str, bytes, bytes, int]] = []
        for item in items:
            if item.receipt_id in taken:
                out.append(IntegrityError(f"receipt id {item.receipt_id} is already in the log"))
                continue
            try:
                data, leaf = self._sign(item.receipt_id, item.fields)
            except ValueError as exc:
                out.append(exc)
                continue
            taken.add(item.receipt_id)
            rows.append((item.receipt_id, data, leaf, time.time_ns()))
            out.append(AppendResult(item.receipt_id, -1, leaf.hex()))
        if rows:
            conn.executemany(
                "INSERT INTO ledger_queue (receipt_id, data, leaf_hash, queued_ns)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )
        return out

    def _sign(self, receipt_id: str, fields: dict[str, Any]) -> tuple[bytes, bytes]:
        key = self.keys.active
        body = dict(fields)
        body["receipt_id"] = receipt_id
        body["log_origin"] = self.config.origin
        body["time_ns"] = str(time.time_ns())
        body["gateway_key_id"] = key.key_id
        canonical = canonical_json(body)
        data = leaf_bytes(canonical, key.key_id, key.sign(canonical))
        return data, leaf_hash(data)

    async def issue_checkpoint(self) -> str:
        return self.checkpoint()

    def _checkpoint_job(self, conn: Any) -> str:
        """Only the sequencer signs checkpoints (with each batch); others read the newest."""
        return self.checkpoint()

    # -- reads -----------------------------------------------------------------
    def _queued(self, receipt_id: str) -> tuple[bytes, int] | None:
        rows = self.store.query(
            "SELECT data, queued_ns FROM ledger_queue WHERE receipt_id = ?", (receipt_id,)
        )
        return (bytes(rows[0][0]), int(rows[0][1])) if rows else None

    def get_receipt(self, receipt_id: str) -> dict[str, Any] | None:
        found = super().get_receipt(receipt_id)
        if found is not None or not _valid(receipt_id):
            return found
        queued = self._queued(receipt_id)
        return None if queued is None else _loads(queued[0])

    def queued(self) -> int:
        """Leaves durable but not merged yet."""
        return int(self.store.query("SELECT count(*) FROM ledger_queue")[0][0])

    def checkpoint(self, *, issue_if_stale: bool = True) -> str:
        """The newest checkpoint the sequencer signed (an empty tree's before the first)."""
        latest = self.latest_checkpoint()
        if latest is not None:
            return latest[1]
        return sign_checkpoint(self.config.origin, 0, EMPTY_ROOT, self.keys.active)

    def bundle(self, receipt_id: str) -> dict[str, Any] | None:
        """The inclusion-proof bundle once merged; until then the signed promise."""
        if self._entry(receipt_id) is not None:
            return super().bundle(receipt_id)
        if not _valid(receipt_id):
            return None
        queued = self._queued(receipt_id)
        if queued is None:  # merged between the two reads
            return super().bundle(receipt_id) if self._entry(receipt_id) else None
        data, queued_ns = queued
        return make_promise(_loads(data), data, queued_ns, self.max_merge_delay_s, self.keys.active)


def _valid(receipt_id: str) -> bool:
    from hybridgate.ledger.ledger import valid_receipt_id

    return valid_receipt_id(receipt_id)


class Sequencer:
    """Elected by a PostgreSQL session advisory lock; integrates queued leaves in batches."""

    def __init__(
        self,
        store: PostgresStore,
        keys: KeyRing,
        origin: str,
        interval_s: float = 0.05,
        max_batch: int = 2000,
    ) -> None:
        self.store = store
        self.keys = keys
        self.origin = origin
        self.interval_s = interval_s
        self.max_batch = max_batch
        self.is_leader = False
        self.integrated = 0
        self._conn: PgConn | None = None
        self._frontier: Frontier | None = None
        self._task: asyncio.Task[None] | None = None
        #: One step at a time on the leader's connection. A step runs on a worker thread,
        #: which cancelling its task does not stop: without this, ``stop`` would start its
        #: last step (a nested transaction on the same connection) or close the connection
        #: while the cancelled one is still inside its batch.
        self._busy = threading.RLock()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger-sequencer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.is_leader:  # one last pass, so what this replica queued is merged
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.step)
        await asyncio.to_thread(self._drop)

    async def _run(self) -> None:
        while True:
            try:
                merged = await asyncio.to_thread(self.step)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a lost database: step down, try again later
                log.error("sequencer: %s", exc)
                await asyncio.to_thread(self._drop)
                merged = 0
            if merged < self.max_batch:
                await asyncio.sleep(self.interval_s if self.is_leader else self.interval_s * 10)

    def _drop(self) -> None:
        with self._busy:
            conn, self._conn = self._conn, None
            self.is_leader = False
            self._frontier = None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def try_lead(self) -> bool:
        """Take the leader's lock if nobody holds it (the lock lives as long as the session)."""
        if self.is_leader and self._conn is not None and not self._conn.raw.closed:
            return True
        if self._conn is None:
            self._conn = self.store.connect()
        row = self._conn.execute("SELECT pg_try_advisory_lock(?)", (LOG_LOCK,)).fetchone()
        self.is_leader = row is not None and bool(row[0])
        if self.is_leader:
            log.info("sequencer: this replica now integrates the shared log")
        return self.is_leader

    def step(self) -> int:
        """One batch if this replica leads: returns how many leaves it merged."""
        with self._busy:
            return self._step()

    def _step(self) -> int:
        if not self.try_lead():
            return 0
        assert self._conn is not None
        conn = self._conn
        with conn.raw.transaction():
            size = _committed_size(conn)
            frontier = self._frontier
            if frontier is None or frontier.size != size:
                frontier = Frontier.load(size, lambda lv, i: _read_node(conn, lv, i))
            rows = conn.execute(
                "SELECT seq, receipt_id, data, leaf_hash FROM ledger_queue ORDER BY seq LIMIT ?",
                (self.max_batch,),
            ).fetchall()
            if not rows:
                self._frontier = frontier
                return 0
            dupes = {
                r[0]
                for r in conn.execute(
                    "SELECT receipt_id FROM ledger_entries WHERE receipt_id = ANY(?)",
                    ([r[1] for r in rows],),
                ).fetchall()
            }
            entries: list[tuple[int, str, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            for _, rid, data, leaf in rows:
                if rid in dupes:
                    log.error("sequencer: receipt id %s queued twice; the second is dropped", rid)
                    continue
                if bytes(leaf) != leaf_hash(bytes(data)):
                    raise ServiceUnavailable(f"queued leaf {rid} does not match its hash")
                entries.append((frontier.size, rid, bytes(data)))
                frontier, new_nodes = frontier.append(bytes(leaf))
                nodes += new_nodes
                dupes.add(rid)
            conn.executemany(
                "INSERT INTO ledger_entries (idx, receipt_id, data) VALUES (?, ?, ?)", entries
            )
            conn.executemany("INSERT INTO ledger_nodes (level, idx, hash) VALUES (?, ?, ?)", nodes)
            conn.execute("DELETE FROM ledger_queue WHERE seq = ANY(?)", ([r[0] for r in rows],))
            key = self.keys.active
            root = frontier.root()
            note = sign_checkpoint(self.origin, frontier.size, root, key)
            conn.execute(
                "INSERT INTO ledger_checkpoints (tree_size, root, key_id, issued_ns, note)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING",
                (frontier.size, root, key.key_id, time.time_ns(), note),
            )
        self._frontier = frontier  # only after the commit
        self.integrated += len(entries)
        return len(rows)
