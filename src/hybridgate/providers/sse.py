"""Incremental Server-Sent Events decoder (WHATWG event-stream rules).

Upstreams are hostile input: lines are bounded, CR / LF / CRLF all end a line,
comments (``:``) are skipped, multi-line ``data`` is joined with ``\\n``, and a
trailing partial event at end-of-stream is discarded rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass

from hybridgate.errors import UpstreamError

#: One SSE line larger than this is a protocol violation, not a big answer.
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str | None
    data: str


class SSEDecoder:
    """Feed raw bytes, get complete events; keeps partial lines between feeds."""

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._buf = bytearray()
        self._max = max_line_bytes
        self._event: str | None = None
        self._data: list[str] = []
        self._pending_cr = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        if self._pending_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF split across reads
        self._pending_cr = False
        self._buf += chunk
        start = 0
        buf = self._buf
        n = len(buf)
        while start < n:
            cr = buf.find(b"\r", start)
            lf = buf.find(b"\n", start)
            if cr == -1 and lf == -1:
                break
            if cr == -1 or (lf != -1 and lf < cr):
                end, nxt = lf, lf + 1
            else:
                end = cr
                if cr + 1 < n:
                    nxt = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    nxt = cr + 1
                    self._pending_cr = True
            self._line(bytes(buf[start:end]), out)
            start = nxt
        del buf[:start]
        if len(buf) > self._max:
            raise UpstreamError(
                "upstream sent an oversized event-stream line", code="upstream_protocol_error"
            )
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        if len(raw) > self._max:
            raise UpstreamError(
                "upstream sent an oversized event-stream line", code="upstream_protocol_error"
            )
        if not raw:
            if self._data or self._event is not None:
                if self._data:
                    out.append(SSEEvent(self._event, "\n".join(self._data)))
                self._event = None
                self._data = []
            return
        line = raw.decode("utf-8", "replace")
        if line.startswith(":"):
            return
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        # "id" and "retry" carry nothing a model stream needs.
