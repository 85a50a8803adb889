"""orjson where it gives the standard library's answer, the standard library where not.

Every request body is parsed once and every answer serialized once on the event
loop; orjson does both several times faster than :mod:`json`, which matters for
agent turns of hundreds of kilobytes. Its answers differ from the standard
library's only at the edges, and each edge goes to the standard library:

* integers beyond 64 bits: orjson turns them into floats (digits lost, and a
  number the scanner must see whole). A body with a run of 19 or more digits
  anywhere is parsed by :mod:`json` instead;
* anything orjson refuses (NaN, ``1e400``, lone surrogates, depth over 1024,
  non-string keys, objects it cannot serialize) is handed to :mod:`json`, so a
  refusal keeps its exact message and a value :mod:`json` accepts is accepted;
  a string with a lone surrogate (which UTF-8 cannot carry) is written escaped.

The one difference kept: a float NaN or infinity in an answer is written as
``null`` (the standard library writes ``NaN``, which no JSON parser accepts).
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

#: orjson parses integers past 64 bits as floats; 19 digits is the shortest such run.
#: Found by mapping every digit to ``0`` and searching for 19 of them (a C substring
#: search; a regex character-class repeat costs ten times more on large bodies).
_LONG_RUN = b"0" * 19
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")


class _Unsure:
    """The marker :func:`try_loads` returns when the standard library must decide."""


UNSURE: Final = _Unsure()


def try_loads(raw: bytes) -> Any:
    """``raw`` parsed by orjson, or :data:`UNSURE` when :mod:`json` must parse it.

    A value returned here equals what ``json.loads(raw.decode())`` returns.
    """
    if _LONG_RUN in raw.translate(_DIGITS_TO_ZERO):
        return UNSURE
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNSURE


def loads(raw: bytes | str) -> Any:
    """``json.loads`` with orjson's speed (same values, same exceptions)."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    value = try_loads(data)
    if value is UNSURE:
        return json.loads(raw)
    return value


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON: ``json.dumps(obj, ensure_ascii=False, separators=(",", ":"))``."""
    try:
        return orjson.dumps(obj)
    except orjson.JSONEncodeError:
        pass
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only an escape can carry it
        return json.dumps(obj, separators=(",", ":")).encode("ascii")
