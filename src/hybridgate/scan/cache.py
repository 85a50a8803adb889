"""Scan only what is new: a bounded, keyed cache of per-text scan results.

Agents resend their whole history every turn, so most of a request's
strings (the system prompt, the tool definitions, every earlier message)
were scanned on the turn before. :class:`CachedScanner` is a
:class:`~hybridgate.scan.scanner.Scanner` whose :meth:`analyze` looks a text
up before scanning it; everything else in the request path is unchanged:
:func:`~hybridgate.scan.request.scan_request` still scans the seams between
neighbouring values and sweeps every value found anywhere through every
segment, and the policy and the masking still run over the whole request.
:mod:`hybridgate.scan.seen` uses the same store at the grain of whole
messages (one lookup for a message and everything in it).

Why this can never hide a finding:

* ``Scanner.analyze`` is a pure function of its input text (detectors are
  compiled once and keep no per-call state), so a stored
  :class:`~hybridgate.scan.scanner.Analysis` is exactly what a fresh scan of
  the same text returns. Findings are in offsets *of that text*; the caller
  (``scan_request``) re-attaches them to the segment that holds the text, so
  a hit in another position or another request maps to the right span.
* The key is the exact input text (with the key-context prefix the caller
  puts before it), not its normalized view: two spellings that normalize
  alike have different raw offsets, so they must not share an entry.
* The key includes the scanner's identity: a fingerprint of its
  configuration (terms, the terms file's contents, disabled detectors, phone
  regions, the detector list) and a random per-instance nonce, so a policy
  or term change, or a rebuilt scanner, never reads an entry stored by
  another scanner, even if a store were shared.
* Incomplete results (a detector raised) are not stored: the next request
  scans again. A miss or an eviction only costs time.

The key is a MAC under a per-deployment key: keyed BLAKE2b for a text (one
C call from a copied keyed state, about 1 µs), HMAC-SHA-256 for a whole
message (0.9 ms a MB where the CPU has SHA extensions, half of BLAKE2b's
cost on long inputs), so the cache holds no plain digest of prompt text
that could be confirmed by guessing it.
The store is an LRU bounded by entry count and by an estimate of the bytes
held; it lives on the gateway instance (no module-level state) and is safe
to use from several threads.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hybridgate.scan.scanner import Analysis, Scanner

if TYPE_CHECKING:
    from hybridgate.config import ScannerConfig

#: Default bounds: enough for a few hundred agent conversations' history.
DEFAULT_MAX_ENTRIES = 8192
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: Rough per-object overheads used to estimate an entry's size.
_ENTRY_OVERHEAD = 400
_FINDING_BYTES = 150
_PIECE_BYTES = 120
#: Pre-keyed digest states kept (one per scanner identity using the store).
_MAX_IDENTITIES = 64
#: SHA-256's block size, and HMAC's pads as byte translations.
_BLOCK = 64
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@dataclass
class CacheStats:
    """Counters since the cache was created (read by the benchmark and metrics)."""

    hits: int = 0
    misses: int = 0
    evictions: int = 0
    #: Results not stored: incomplete scans and texts too large for the bound.
    skipped: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class ScanCache:
    """An LRU of scan results by keyed digest, bounded by entries and bytes.

    It holds a text's :class:`Analysis` and a whole message's
    :class:`~hybridgate.scan.request.Scanned` run; each is stored with the
    bytes it holds, and read back only by the code that stored it (under its
    own identity, and checked for its type).
    """

    def __init__(
        self,
        key: bytes,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if len(key) < 16:
            raise ValueError("scan cache key must be at least 16 bytes")
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("scan cache bounds must be >= 0")
        # HMAC's key block: a key longer than SHA-256's block is hashed first
        block = key if len(key) <= _BLOCK else hashlib.sha256(key).digest()
        self._mac_key = block  # BLAKE2b's key (up to 64 bytes)
        self._key = block.ljust(_BLOCK, b"\0")
        #: identity -> HMAC's inner state (fed the identity once) and outer state
        self._keyed: dict[bytes, tuple[Any, Any]] = {}
        #: identity -> a BLAKE2b state keyed and fed the identity once (for texts)
        self._texts: dict[bytes, Any] = {}
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[object, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.stats = CacheStats()

    @classmethod
    def from_secret(cls, secret: bytes, **bounds: int) -> ScanCache:
        """A cache keyed by a key derived from the deployment secret (never the secret itself)."""
        key = hmac.new(secret, b"hybridgate/scan-cache/v1", hashlib.sha256).digest()
        return cls(key, **bounds)

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes_held(self) -> int:
        return self._bytes

    def digest(self, identity: bytes, text: str) -> bytes:
        """Keyed BLAKE2b (its MAC mode) of the scanner identity and a text.

        One C call from a copied keyed state: the cheapest MAC for the short
        texts most lookups are (HMAC's two states cost more below a kilobyte).
        """
        base = self._texts.get(identity)
        if base is None:
            if len(self._texts) >= _MAX_IDENTITIES:
                self._texts.clear()
            base = hashlib.blake2b(
                len(identity).to_bytes(4, "big") + identity, key=self._mac_key, digest_size=32
            )
            self._texts[identity] = base
        mac = base.copy()
        # surrogatepass: a lone surrogate is still a distinct, hashable input
        mac.update(text.encode("utf-8", "surrogatepass"))
        return mac.digest()

    def digest_bytes(self, identity: bytes, *data: bytes) -> bytes:
        """HMAC-SHA-256 of the scanner identity and ``data`` (two copied hash states).

        For whole messages: with the CPU's SHA extensions twice BLAKE2b's speed
        on long inputs. The caller makes ``data`` unambiguous (fixed-size or
        length-prefixed parts).
        """
        states = self._keyed.get(identity)
        if states is None:
            if len(self._keyed) >= _MAX_IDENTITIES:
                self._keyed.clear()
            inner = hashlib.sha256(self._key.translate(_IPAD))
            inner.update(len(identity).to_bytes(4, "big") + identity)
            states = self._keyed[identity] = (inner, hashlib.sha256(self._key.translate(_OPAD)))
        mac = states[0].copy()
        for part in data:
            mac.update(part)
        outer = states[1].copy()
        outer.update(mac.digest())
        return outer.digest()

    def get(self, digest: bytes) -> object | None:
        with self._lock:
            item = self._entries.get(digest)
            if item is None:
                self.stats.misses += 1
                return None
            self._entries.move_to_end(digest)
            self.stats.hits += 1
            return item[0]

    def put(self, digest: bytes, value: object, size: int) -> None:
        """Store ``value``, about ``size`` bytes (not stored past a quarter of the bound)."""
        with self._lock:
            if not self.enabled or size > self.max_bytes // 4:
                self.stats.skipped += 1
                return
            old = self._entries.pop(digest, None)
            if old is not None:
                self._bytes -= old[1]
            self._entries[digest] = (value, size)
            self._bytes += size
            while self._entries and (
                len(self._entries) > self.max_entries or self._bytes > self.max_bytes
            ):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped
                self.stats.evictions += 1

    def note_skipped(self) -> None:
        with self._lock:
            self.stats.skipped += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0


def estimate_bytes(a: Analysis) -> int:
    """Memory an entry holds, roughly: its texts, offset map and findings."""
    size = _ENTRY_OVERHEAD + sys.getsizeof(a.view.raw)
    if a.view.text is not a.view.raw:
        size += sys.getsizeof(a.view.text)
    if a.view.pieces is not None:
        size += _PIECE_BYTES * len(a.view.pieces)
    size += _FINDING_BYTES * (len(a.result.findings) + len(a.norm_findings))
    return size


def scanner_fingerprint(cfg: ScannerConfig, detector_names: Sequence[str] = ()) -> bytes:
    """What the scanner's results depend on: its configuration and the terms it loaded.

    The terms file is read for its contents, so editing the file changes the
    fingerprint even though the configured path stays the same.
    """
    h = hashlib.sha256(b"hybridgate/scanner/v1\0")
    h.update(cfg.model_dump_json().encode())
    if cfg.terms_file:
        try:
            h.update(Path(cfg.terms_file).read_bytes())
        except OSError as exc:  # unreadable now: a distinct identity, never a shared one
            h.update(f"unreadable:{type(exc).__name__}:{secrets.token_hex(16)}".encode())
    for name in detector_names:
        h.update(b"\0" + name.encode())
    return h.digest()


@dataclass(frozen=True, eq=False)
class CachedScanner(Scanner):
    """A scanner that looks each text up before scanning it.

    Drop-in for :class:`Scanner`: build one with :meth:`wrap`. Scans of
    decoded base64/hex runs go through the plain inner scanner (they are
    part of the outer text's result, which is what is stored).
    """

    cache: ScanCache | None = None
    identity: bytes = b""
    _nonce: bytes = field(default_factory=lambda: secrets.token_bytes(16))

    @cached_property
    def _scope(self) -> bytes:
        return self.identity + self._nonce

    @cached_property
    def message_scope(self) -> bytes:
        """The identity whole messages are stored under (never read as a text's entry)."""
        return self._scope + b"/message"

    @classmethod
    def wrap(cls, scanner: Scanner, cache: ScanCache, fingerprint: bytes) -> CachedScanner:
        return cls(
            detectors=scanner.detectors,
            lexicon=scanner.lexicon,
            decode_runs=scanner.decode_runs,
            prefilter=scanner.prefilter,
            cache=cache,
            identity=fingerprint,
        )

    def analyze(self, text: str) -> Analysis:
        cache = self.cache
        if cache is None or not cache.enabled or not isinstance(text, str):
            return super().analyze(text)
        digest = cache.digest(self._scope, text)
        hit = cache.get(digest)
        if type(hit) is Analysis:
            return hit
        a = super().analyze(text)
        if a.result.complete:
            size = a.memo["bytes"] = estimate_bytes(a)  # read again when a message is stored
            cache.put(digest, a, size)
        else:
            cache.note_skipped()
        return a


def cached_scanner(scanner: Scanner, cfg: ScannerConfig, secret: bytes) -> Scanner:
    """The gateway's scanner: cached per the config's bounds, or ``scanner`` itself when off."""
    cache = ScanCache.from_secret(
        secret,
        max_entries=cfg.cache_max_entries,
        max_bytes=int(cfg.cache_max_mb * 1024 * 1024),
    )
    if not cache.enabled:
        return scanner
    return CachedScanner.wrap(scanner, cache, scanner_fingerprint(cfg, scanner.detector_names))
