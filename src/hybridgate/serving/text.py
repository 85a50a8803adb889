"""Incremental detokenized text with stop sequences, as pure logic.

The engine decodes a row's generated ids after every step; this tracker turns
the growing text into *safe* deltas: text that can no longer turn out to be
the start of a stop sequence, and no half-decoded character (U+FFFD at the
end means the tokenizer is waiting for more bytes). When a stop sequence
appears the text is cut just before it and the row is finished, so a stop
sequence split across tokens is never partly streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_STOPS = 8
MAX_STOP_CHARS = 256


def normalize_stops(stop: object) -> tuple[str, ...]:
    """OpenAI's ``stop`` (a string or a list of up to 4+ strings) as a tuple; junk dropped."""
    if isinstance(stop, str):
        items = [stop]
    elif isinstance(stop, list):
        items = [s for s in stop if isinstance(s, str)]
    else:
        return ()
    return tuple(s[:MAX_STOP_CHARS] for s in items if s)[:MAX_STOPS]


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing chars of ``text`` could still begin a stop sequence."""
    hold = 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), hold, -1):
            if text.endswith(s[:k]):
                hold = k
                break
    return hold


@dataclass
class TextTracker:
    stops: tuple[str, ...] = ()
    emitted: str = ""
    stopped: bool = False
    _final: str | None = field(default=None, repr=False)

    def update(self, text: str, *, final: bool = False) -> str:
        """Feed the full text decoded so far; returns the new delta that is safe to send."""
        if self.stopped:
            return ""
        cut = min((i for i in (text.find(s) for s in self.stops) if i != -1), default=-1)
        if cut != -1:
            text, self.stopped, final = text[:cut], True, True
        if final:
            safe = text
        else:
            safe = text[: len(text) - _held_back(text, self.stops)]
            if safe.endswith("\ufffd"):
                safe = safe.rstrip("\ufffd")
        if not safe.startswith(self.emitted):
            # The tokenizer rewrote earlier text (rare with byte-level BPE cleanup);
            # never resend: hold until the text grows past what was sent.
            return ""
        delta = safe[len(self.emitted) :]
        self.emitted = safe
        return delta
