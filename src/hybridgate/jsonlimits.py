"""Bounds on hostile JSON: nesting depth, number size and Unicode validity.

Network JSON can be valid and still break a gateway: a 5,000-deep array
exhausts the interpreter stack in any recursive walk, a 5,000-digit integer
raises ``ValueError`` in :func:`int`, and ``1e400`` becomes ``inf`` (not JSON
on the way out). Each is a client error, checked once at the boundary,
with walks that are iterative and run only when a cheap pre-check says they
are needed.
"""

from __future__ import annotations

import enum
import json
import math
from typing import Any

#: Deeper than any real request (tool schemas nest a dozen levels); far below the stack.
MAX_DEPTH = 100


class JSONLimitError(ValueError):
    """The JSON is well formed but outside what the gateway accepts."""


def finite_float(text: str) -> float:
    """``parse_float`` for :func:`json.loads`: a number too large for a float is refused."""
    value = float(text)
    if not math.isfinite(value):
        raise JSONLimitError(f"number {text[:20]}… is out of range")
    return value


def deeper_than(obj: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``obj`` nests containers more than ``limit`` levels (iterative).

    :func:`survey` looking at depth only.
    """
    return survey(obj, limit, wide=None) is Survey.TOO_DEEP


class Survey(enum.Enum):
    """What one walk of a parsed JSON value found."""

    FITS = "fits"
    TOO_DEEP = "too_deep"
    #: A float at least as large as :data:`WIDE_FLOAT`: orjson may have made it from an integer.
    WIDE_FLOAT = "wide_float"


#: orjson parses an integer it cannot hold in 64 bits as a float, and every such float
#: is at least 2**63 in magnitude; a float this large may be one (1e19 in the text, too).
WIDE_FLOAT = 9.2e18


def survey(obj: Any, limit: int = MAX_DEPTH, wide: float | None = WIDE_FLOAT) -> Survey:
    """Walk ``obj`` once: nested deeper than ``limit``, or holding a float of ``wide`` or more.

    The first found is returned; either sends a body to the standard library, which
    decides (a body that is both is refused there). ``wide=None`` looks at depth only.

    Level by level, one list per level: every request body of any size is walked
    once, and a per-node stack entry cost twice as much on agent-size bodies.
    Children are told apart by ``type(c) is``, in a plain loop: half the time of a
    comprehension with ``isinstance`` (0.15 against 0.29 ms on a 400 KB agent body);
    parsed JSON holds exactly ``dict`` and ``list``, never subclasses.
    """
    top = type(obj)
    if top is float and wide is not None:
        return Survey.WIDE_FLOAT if obj >= wide or obj <= -wide else Survey.FITS
    if top is not dict and top is not list:
        return Survey.FITS
    level: list[Any] = [obj]
    depth = 1
    while level:
        below: list[Any] = []
        for node in level:
            for c in node.values() if type(node) is dict else node:
                t = type(c)
                if t is dict or t is list:
                    below.append(c)
                elif t is float and wide is not None and (c >= wide or c <= -wide):
                    return Survey.WIDE_FLOAT
        if below and depth >= limit:
            return Survey.TOO_DEEP
        level = below
        depth += 1
    return Survey.FITS


def text_deeper_than(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether JSON ``text`` nests more than ``limit`` levels (False when it is not JSON).

    Parsing is C; the walk only runs when the text has enough brackets to matter.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    try:
        value = json.loads(text)
    except RecursionError:
        return True
    except ValueError:
        return False
    return deeper_than(value, limit)
