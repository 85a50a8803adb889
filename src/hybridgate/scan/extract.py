"""Which strings of a request are scanned, and which parts cannot be.

The walk is generic on purpose: every string leaf of the body is scanned
unless it sits under a purely structural key (``model``, ``role`` ...) *and*
looks like an identifier. Unknown fields, new content-part types and vendor
extensions are therefore scanned by default (fail closed). Images, audio and
files cannot be scanned as text; their paths are returned separately so the
policy treats the request as unknown.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from hybridgate.scan.findings import RequestScan, Segment, SegmentFindings
from hybridgate.scan.scanner import Scanner

#: Keys whose string values are protocol structure, not content.
STRUCTURAL_KEYS = frozenset(
    {"model", "role", "type", "stream", "tool_call_id", "id", "object", "encoding_format"}
)
#: A structural value must look like this to be skipped; anything else is scanned.
_IDENTIFIER_VALUE = re.compile(r"[A-Za-z0-9._:/@+\-]{0,128}")
#: Dict keys that are ordinary names; other keys cannot be masked, so they are unscannable.
_PLAIN_KEY = re.compile(r"(?!\d)[\w$@][\w .\-$@:/]{0,127}")
#: Content-part types carrying binary data the text scanner cannot see into.
UNSCANNABLE_PARTS = frozenset({"image_url", "input_image", "image", "input_audio", "audio", "file"})
#: Fields of an unscannable part holding the payload itself (not scanned as text).
_PAYLOAD_KEYS = frozenset({"data", "file_data", "b64_json"})

Path = tuple[str | int, ...]


def path_str(path: Path) -> str:
    """``("messages", 2, "content", 1)`` -> ``messages[2].content[1]``."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += f".{p}" if out else p
    return out or "$"


def extract_segments(request: Any) -> tuple[list[Segment], list[str]]:
    """Every string worth scanning with its JSON path, plus unscannable paths.

    Works for Chat Completions and embeddings bodies and, for anything it
    does not recognise, scans every string it contains. The walk is
    iterative so hostile nesting cannot exhaust the interpreter stack.
    """
    segments: list[Segment] = []
    unscannable: list[str] = []
    stack: list[tuple[Path, Any, bool]] = [((), request, False)]
    while stack:
        path, node, in_binary_part = stack.pop()
        if isinstance(node, str):
            if in_binary_part and (node.startswith("data:") or path[-1] in _PAYLOAD_KEYS):
                continue
            segments.append(Segment(path=path, text=node))
        elif isinstance(node, dict):
            part_type = node.get("type")
            binary = in_binary_part
            if isinstance(part_type, str) and part_type in UNSCANNABLE_PARTS:
                unscannable.append(path_str(path))
                binary = True
            children: list[tuple[Path, Any, bool]] = []
            for key, value in node.items():
                if not isinstance(key, str):
                    unscannable.append(path_str((*path, str(key))))
                    continue
                if not _PLAIN_KEY.fullmatch(key):
                    # A key can hold data too, but a path cannot address it for masking.
                    unscannable.append(path_str((*path, key)))
                if (
                    key in STRUCTURAL_KEYS
                    and isinstance(value, str)
                    and _IDENTIFIER_VALUE.fullmatch(value)
                ):
                    continue
                children.append(((*path, key), value, binary))
            stack.extend(reversed(children))
        elif isinstance(node, list | tuple):
            if (
                node
                and path
                and path[-1] in ("input", "prompt")
                and all(isinstance(x, int) and not isinstance(x, bool) for x in node)
            ):
                unscannable.append(path_str(path))  # token ids: text we cannot read
                continue
            stack.extend(reversed([((*path, i), v, in_binary_part) for i, v in enumerate(node)]))
        elif node is None or isinstance(node, bool | int | float):
            continue
        else:
            unscannable.append(path_str(path))
    return segments, unscannable


def scan_request(
    scanner: Scanner, segments: Sequence[Segment], unscannable: Sequence[str]
) -> RequestScan:
    """Scan every segment; incomplete if any scan failed or anything was unscannable."""
    results: list[SegmentFindings] = []
    errors: list[str] = []
    complete = not unscannable
    for i, seg in enumerate(segments):
        res = scanner.scan(seg.text)
        if not res.complete:
            complete = False
            errors.extend(f"{path_str(seg.path)}: {e}" for e in res.errors)
        if res.findings:
            results.append(SegmentFindings(segment=i, findings=res.findings))
    return RequestScan(
        segments=tuple(results),
        complete=complete,
        errors=tuple(errors),
        unscannable=tuple(unscannable),
    )
