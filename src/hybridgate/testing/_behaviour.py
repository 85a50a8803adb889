"""Runtime knobs and request recording shared by the loopback upstreams (pure, thread-safe)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie", "x-goog-api-key"}
)


@dataclass(frozen=True, slots=True)
class Behaviour:
    """How the upstream answers. Change it with ``upstream.configure(...)``.

    ``reply=None`` echoes the last user message as ``"echo: <text>"`` so a
    test can see exactly what reached the upstream (and what came back).
    """

    reply: str | None = None
    #: answer with ``respond(last user text)`` instead (a stand-in that does a task)
    respond: Callable[[str], str] | None = None
    latency_s: float = 0.0
    #: streaming: pause this long between events (an upstream that generates at a pace)
    chunk_interval_s: float = 0.0
    #: hold every request this long before answering (> the client's timeout)
    stall_s: float = 0.0
    #: streaming: close the connection after this many events, with no final event
    cut_after: int | None = None
    #: answer with a call to the first offered tool when the request has ``tools``
    tool_calls: bool = False
    #: arguments of that call; ``None`` means ``{"text": <last user text>}``
    tool_arguments: dict[str, Any] | None = None
    #: include ``usage`` in answers (OpenAI streams: only with include_usage)
    report_usage: bool = True
    #: demand this key (Bearer / x-api-key); ``None`` accepts anything
    api_key: str | None = None
    embedding_dim: int = 8
    record: bool = True


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    #: header names lower-cased; credential values replaced by ``"<redacted>"``
    headers: dict[str, str]
    #: parsed JSON body, or ``None`` when it was not JSON
    body: Any


@dataclass(slots=True)
class _Failures:
    remaining: int = 0
    status: int = 500
    message: str = "injected failure"


@dataclass
class Controller:
    """The mutable state of one upstream, guarded by a lock (handlers run in another thread)."""

    behaviour: Behaviour = field(default_factory=Behaviour)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _failures: _Failures = field(default_factory=_Failures)
    _requests: list[RecordedRequest] = field(default_factory=list)
    _count: int = 0

    def configure(self, **changes: Any) -> Behaviour:
        with self._lock:
            self.behaviour = dataclasses.replace(self.behaviour, **changes)
            return self.behaviour

    def reset(self) -> None:
        with self._lock:
            self.behaviour = Behaviour()
            self._failures = _Failures()

    def fail_next(self, n: int, status: int, message: str) -> None:
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("fail_next needs n >= 0 and an HTTP error status")
        with self._lock:
            self._failures = _Failures(n, status, message)

    def admit(
        self, method: str, path: str, headers: dict[str, str], body: Any
    ) -> tuple[int, Behaviour, tuple[int, str] | None]:
        """Record one request; return its sequence number, the knobs, and an injected failure."""
        with self._lock:
            self._count += 1
            beh = self.behaviour
            if beh.record:
                self._requests.append(RecordedRequest(method, path, headers, body))
            fail: tuple[int, str] | None = None
            if self._failures.remaining > 0:
                self._failures.remaining -= 1
                fail = (self._failures.status, self._failures.message)
            return self._count, beh, fail

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()


def safe_headers(items: Iterator[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in items:
        key = k.lower()
        out[key] = "<redacted>" if key in _SECRET_HEADERS else v
    return out


def strings(value: Any) -> Iterator[str]:
    """Every string value inside a JSON document, depth-first."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            stack.extend(reversed(list(v.values())))
        elif isinstance(v, list):
            stack.extend(reversed(v))


def word_count(value: Any) -> int:
    """Deterministic 'tokens' of the loopback upstreams: whitespace-separated words."""
    return sum(len(s.split()) for s in strings(value))


def split_words(text: str) -> list[str]:
    """Stream pieces that concatenate back to ``text`` exactly."""
    if not text:
        return []
    pieces: list[str] = []
    start = 0
    for i in range(1, len(text)):
        if text[i] == " " and text[i - 1] != " ":
            pieces.append(text[start:i])
            start = i
    pieces.append(text[start:])
    return pieces


def apply_stops(text: str, stops: list[str]) -> tuple[str, str | None]:
    """Cut ``text`` at the earliest stop sequence, as real servers do."""
    best: tuple[int, str] | None = None
    for s in stops:
        if s:
            i = text.find(s)
            if i != -1 and (best is None or i < best[0]):
                best = (i, s)
    if best is None:
        return text, None
    return text[: best[0]], best[1]
