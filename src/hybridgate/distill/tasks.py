"""Which task an exchange belongs to, from what the client said. Pure.

A client names a task in one of three ways, checked in this order:

1. the ``x-hybridgate-task`` header;
2. ``metadata.task`` in the request body;
3. the virtual model ``task:NAME``.

A named task that is not configured is an error the client sees (a typo
must not silently bypass capture rules or promotion); a request naming no
task has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hybridgate.errors import InvalidRequest

TASK_HEADER = "x-hybridgate-task"
TASK_MODEL_PREFIX = "task:"


def task_of(
    header: str | None, body: Mapping[str, Any] | None, model: str | None, known: Mapping[str, Any]
) -> str | None:
    """The configured task this request names, ``None`` when it names none."""
    named: str | None = None
    where = ""
    if header is not None and header.strip():
        named, where = header.strip(), f"header {TASK_HEADER}"
    else:
        meta = body.get("metadata") if isinstance(body, Mapping) else None
        value = meta.get("task") if isinstance(meta, Mapping) else None
        if value is not None:
            if not isinstance(value, str) or not value.strip():
                raise InvalidRequest("`metadata.task` must be a non-empty string", param="metadata")
            named, where = value.strip(), "metadata.task"
        elif isinstance(model, str) and model.startswith(TASK_MODEL_PREFIX):
            named, where = model[len(TASK_MODEL_PREFIX) :], "model"
    if named is None:
        return None
    if named not in known:
        shown = named if len(named) <= 64 else named[:64] + "..."
        raise InvalidRequest(f"task {shown!r} ({where}) is not configured", param=where)
    return named
