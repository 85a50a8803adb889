"""Canonical JSON (RFC 8785) and strict base64, the byte formats everything is signed over."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import rfc8785


def canonical_json(obj: Any) -> bytes:
    """RFC 8785 bytes of ``obj``. Raises ``ValueError`` for what RFC 8785 cannot represent
    (floats that are NaN or infinite, integers beyond ±2**53, non-string keys)."""
    try:
        return rfc8785.dumps(obj)
    except rfc8785.CanonicalizationError as exc:
        raise ValueError(f"not canonicalizable: {exc}") from exc
    except TypeError as exc:  # unsupported types surface as TypeError inside rfc8785
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
