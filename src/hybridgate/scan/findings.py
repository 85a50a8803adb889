"""The scanner's output types, shared by scanning, policy, redaction and receipts.

They are immutable (frozen dataclasses, one named tuple) so every stage downstream stays a pure
function over data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple


class DataClass(StrEnum):
    """Coarse sensitivity classes the policy writes rules for."""

    FINANCIAL = "financial"
    GOVERNMENT_ID = "government_id"
    CONTACT = "contact"
    SECRET = "secret"
    HEALTH = "health"
    ORG_CONFIDENTIAL = "org_confidential"
    PERSON = "person"


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive span in one scanned text.

    ``start``/``end`` are character (not byte) offsets into the text that was
    scanned, ``end`` exclusive, so ``text[start:end]`` is the value.
    """

    type: str  # e.g. "CREDIT_CARD", "IBAN_CODE", "AWS_ACCESS_KEY"
    data_class: DataClass
    start: int
    end: int
    confidence: float
    detector: str
    #: Data classes of overlapping findings this one won over. The span that
    #: is masked is this one's, but the policy must still see every class the
    #: text held (an org term inside an e-mail address is still org data).
    absorbed: tuple[DataClass, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "type": self.type,
            "class": self.data_class.value,
            "start": self.start,
            "end": self.end,
            "confidence": self.confidence,
            "detector": self.detector,
        }


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Findings for one text.

    ``complete`` is False when any detector failed or the input could not be
    decoded: the result is then *unknown*, never *clean*, and the policy
    treats it as sensitive (fail closed).
    """

    findings: tuple[Finding, ...] = ()
    complete: bool = True
    errors: tuple[str, ...] = ()


class Segment(NamedTuple):
    """One string of a request that is scanned and may be masked.

    ``path`` locates the string in the request's JSON (e.g.
    ``("messages", 2, "tool_calls", 0, "function", "arguments")``).
    Immutable like the dataclasses here, but a named tuple: a request has one
    per string, key and number, and a tuple is built in a fifth of the time.
    """

    path: tuple[str | int, ...]
    text: str
    #: ``value``: a string the gateway may mask; ``verbatim``: a string the
    #: protocol needs unchanged (ids, enums); ``key``: the object key at the end
    #: of ``path``; ``number``: a JSON number's decimal text. Only values can be
    #: masked: a finding anywhere else confines or refuses the request.
    kind: str = "value"
    #: Read before the text when scanning (the key it sits under, e.g.
    #: ``password``), so a value keeps the context its key gives it.
    context: str = ""

    @property
    def maskable(self) -> bool:
        return self.kind == "value"


@dataclass(frozen=True, slots=True)
class SegmentFindings:
    segment: int  # index into the request's segment list
    findings: tuple[Finding, ...]
    #: False for keys, numbers and verbatim fields: these findings cannot be masked.
    maskable: bool = True


@dataclass(frozen=True, slots=True)
class RequestScan:
    """Findings across every segment of a request."""

    segments: tuple[SegmentFindings, ...] = ()
    complete: bool = True
    errors: tuple[str, ...] = ()
    #: Parts of the request that could not be scanned (images, audio, files).
    unscannable: tuple[str, ...] = field(default=())

    @property
    def data_classes(self) -> frozenset[DataClass]:
        classes = {f.data_class for s in self.segments for f in s.findings}
        classes.update(c for s in self.segments for f in s.findings for c in f.absorbed)
        return frozenset(classes)

    @property
    def unmaskable_classes(self) -> frozenset[DataClass]:
        """Classes found where a mask cannot go (keys, numbers, ids, enums)."""
        classes: set[DataClass] = set()
        for s in self.segments:
            if not s.maskable:
                classes.update(f.data_class for f in s.findings)
                classes.update(c for f in s.findings for c in f.absorbed)
        return frozenset(classes)

    @property
    def finding_count(self) -> int:
        return sum(len(s.findings) for s in self.segments)
