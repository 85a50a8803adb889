"""orjson where it gives the standard library's answer, the standard library where not.

Every request body is parsed once and every answer serialized once on the event
loop; orjson does both several times faster than :mod:`json`, which matters for
agent turns of hundreds of kilobytes. Its answers differ from the standard
library's only at the edges, and each edge goes to the standard library:

* integers beyond 64 bits: orjson turns them into floats (digits lost, and a
  number the scanner must see whole). A parsed value holding a float of 9.2e18
  (just under 2**63) or more in magnitude is parsed again by :mod:`json`;
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

from hybridgate.jsonlimits import Survey, survey


class _Unsure:
    """The marker :func:`try_loads` returns when the standard library must decide."""


class _TooDeep:
    """The marker :func:`try_loads` returns for a value nested past its ``max_depth``."""


UNSURE: Final = _Unsure()
TOO_DEEP: Final = _TooDeep()
#: orjson refuses anything deeper than this itself.
_ORJSON_DEPTH = 1024


def try_loads(raw: bytes, max_depth: int = _ORJSON_DEPTH) -> Any:
    """``raw`` parsed by orjson, :data:`UNSURE` when :mod:`json` must parse it, or
    :data:`TOO_DEEP` when it nests more than ``max_depth`` levels.

    A value returned here equals what ``json.loads(raw.decode())`` returns: one walk
    of the parsed value (:func:`~hybridgate.jsonlimits.survey`) checks the depth and
    looks for a float orjson may have made from an integer past 64 bits. That walk
    replaced a search of the raw bytes for a run of 19 digits, which cost twice as
    much on agent-size bodies and sent every body holding a long number in a string
    (a nanosecond timestamp, an account number) to the slower parser.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return UNSURE
    found = survey(value, max_depth)
    if found is Survey.FITS:
        return value
    return TOO_DEEP if found is Survey.TOO_DEEP else UNSURE


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
