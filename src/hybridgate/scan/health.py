"""Health identifiers that only mean something next to their label.

A bare date or a six-digit number is not health data; ``DOB: 03/14/1962``
and ``MRN 00482913`` are. Both detectors start from the label keywords the
shared pass already found and read a bounded stretch right after them.
"""

from __future__ import annotations

import re

from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.text import DOB, MRN, TextView

_MRN_VALUE = re.compile(
    r"[ \t]{0,3}(?:(?:number|num|no\.?|id|#)[ \t]{0,2})?[:#=\-]?[ \t]{0,3}"
    r"((?:[A-Za-z]{1,4}-?)?\d[\d\-]{2,18}\d)(?![A-Za-z0-9])"
)

_MONTHS = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]{0,6}\.?"
_DOB_VALUE = re.compile(
    r"[ \t]{0,3}(?:[:=\-][ \t]{0,3})?(?:(?:is|was|on)[ \t]{1,3})?"
    r"(?P<d>(?P<a>\d{1,2})[/.\-](?P<b>\d{1,2})[/.\-](?P<y>\d{4}|\d{2})"
    r"|(?P<y2>\d{4})[/.\-](?P<m2>\d{1,2})[/.\-](?P<d2>\d{1,2})"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?[ \t]+{_MONTHS},?[ \t]+\d{{4}}"
    rf"|{_MONTHS}[ \t]+\d{{1,2}}(?:st|nd|rd|th)?,?[ \t]+\d{{4}})(?![0-9])",
    re.IGNORECASE,
)


def _date_ok(m: re.Match[str]) -> bool:
    if m.group("a") is not None:
        a, b = int(m.group("a")), int(m.group("b"))
        # Either day-first or month-first must be a real day/month pair.
        return (1 <= a <= 31 and 1 <= b <= 12) or (1 <= a <= 12 and 1 <= b <= 31)
    if m.group("y2") is not None:
        return 1 <= int(m.group("m2")) <= 12 and 1 <= int(m.group("d2")) <= 31
    return True


class MrnDetector:
    name = "medical_record_number"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        for _s, e in view.keyword_hits(MRN):
            m = _MRN_VALUE.match(text, e)
            if m is None or sum(c.isdigit() for c in m.group(1)) < 4:
                continue
            out.append(
                Finding(
                    "MEDICAL_RECORD_NUMBER", DataClass.HEALTH, m.start(1), m.end(1), 0.85, self.name
                )
            )
        return out


class DobDetector:
    name = "date_of_birth"
    #: Finds nothing in a text without an ASCII digit (the scanner skips it there).
    digits_required = True

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        for _s, e in view.keyword_hits(DOB):
            m = _DOB_VALUE.match(text, e)
            if m is None or not _date_ok(m):
                continue
            out.append(
                Finding(
                    "DATE_OF_BIRTH", DataClass.HEALTH, m.start("d"), m.end("d"), 0.85, self.name
                )
            )
        return out
