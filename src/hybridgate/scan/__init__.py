"""Sensitive-data scanning: what a request holds, found before anything is sent.

Public API used by the pipeline: :func:`build_scanner`, :meth:`Scanner.scan`,
:func:`extract_segments`, :func:`scan_request`.
"""

from hybridgate.scan.extract import extract_segments, path_str
from hybridgate.scan.findings import (
    DataClass,
    Finding,
    RequestScan,
    ScanResult,
    Segment,
    SegmentFindings,
)
from hybridgate.scan.numbers import IdSpec
from hybridgate.scan.request import scan_request
from hybridgate.scan.scanner import (
    Detector,
    Recognizer,
    Scanner,
    build_scanner,
    builtin_detector_names,
    resolve_overlaps,
)

__all__ = [
    "DataClass",
    "Detector",
    "Finding",
    "IdSpec",
    "Recognizer",
    "RequestScan",
    "ScanResult",
    "Scanner",
    "Segment",
    "SegmentFindings",
    "build_scanner",
    "builtin_detector_names",
    "extract_segments",
    "path_str",
    "resolve_overlaps",
    "scan_request",
]
