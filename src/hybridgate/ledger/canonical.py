"""Canonical JSON (RFC 8785) and strict base64, the byte formats everything is signed over.

``canonical_json`` is on the request path (every receipt is canonicalized once),
and the pure-Python ``rfc8785`` serializer costs about as much as the Ed25519
signature. For the values receipts hold, the C ``json`` encoder with sorted
keys and no whitespace already writes RFC 8785 bytes; a quick walk confirms the
value is one of those (no floats outside the range where Python's shortest
repr and ECMAScript's number formatting agree, no integers beyond 2**53, no
astral characters in keys, whose UTF-16 sort order differs) and anything else
goes to ``rfc8785``. Tests compare both on generated values.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import rfc8785

_MAX_INT = 2**53 - 1
_MAX_DEPTH = 64
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":"), check_circular=True
)


def _plain(obj: Any, depth: int = 0) -> bool:
    """True when the stdlib encoder's output for ``obj`` is exactly RFC 8785."""
    if depth > _MAX_DEPTH:
        return False
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is int:
        return bool(-_MAX_INT <= obj <= _MAX_INT)
    if t is float:
        # Fixed notation in both languages, shortest round-trip digits in both; integral
        # values (Python "1.0", ECMAScript "1") and -0.0 take the slow path.
        a = abs(obj)
        return math.isfinite(obj) and 1e-4 <= a < 1e16 and not obj.is_integer()
    if t is list:
        return all(_plain(v, depth + 1) for v in obj)
    if t is dict:
        for k, v in obj.items():
            if type(k) is not str or not (k.isascii() or max(k) <= "\uffff"):
                return False
            if not _plain(v, depth + 1):
                return False
        return True
    return False


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj``. Raises ``ValueError`` for what RFC 8785 cannot represent
    (floats that are NaN or infinite, integers beyond ±2**53, non-string keys)."""
    if _plain(obj):
        try:
            return _ENCODER.encode(obj).encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates
            raise ValueError(f"not canonicalizable: {exc}") from exc
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, RecursionError) as exc:
        raise ValueError(f"not canonicalizable: {exc}") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str, *, max_len: int = 1 << 20) -> bytes:
    """Standard padded base64 only; anything else (whitespace, URL alphabet) is an error."""
    if not isinstance(text, str) or len(text) > max_len or not text.isascii():
        raise ValueError("not base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"not base64: {exc}") from exc
