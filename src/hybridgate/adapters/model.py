"""What an adapter *is*, as pure data: its name, identity, base and tool face.

An adapter is a small set of weights (a LoRA) trained for one narrow task on
top of one base model. The gateway names it for people (``name``), but
identifies it by content: ``sha256`` is the digest of its config and weight
files (see :mod:`hybridgate.adapters.files`), so a receipt that carries it
says exactly which weights answered, whatever the adapter is called today.

Nothing here does I/O; the store and the file digest live next door.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from hybridgate.errors import InvalidRequest

#: Adapter names are also MCP tool names and the suffix of ``base:adapter`` model
#: names, so they stay short, lower-case and free of ``:``.
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_TASK_CHARS = 2000
MAX_SCHEMA_BYTES = 64 * 1024

#: The tool input an adapter takes when it was registered without a schema.
DEFAULT_INPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"input": {"type": "string", "description": "the text to work on"}},
    "required": ["input"],
    "additionalProperties": False,
}


def validate_name(name: str) -> str:
    """The name, or a clear error saying what an adapter name may be."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise InvalidRequest(
            "adapter name must be 1-64 characters of a-z, 0-9, '_' or '-', "
            "starting with a letter or digit",
            param="name",
        )
    return name


def validate_task(task: str | None) -> str | None:
    if task is None:
        return None
    if not isinstance(task, str) or len(task) > MAX_TASK_CHARS:
        raise InvalidRequest(f"task must be a string of at most {MAX_TASK_CHARS} characters")
    return task.strip() or None


def validate_schema(schema: Any) -> dict[str, Any]:
    """A tool input schema: a JSON object schema (what MCP and OpenAI tools require)."""
    if not isinstance(schema, dict):
        raise InvalidRequest("input schema must be a JSON object", param="schema")
    if schema.get("type") != "object":
        raise InvalidRequest('input schema must have "type": "object"', param="schema")
    props = schema.get("properties", {})
    if not isinstance(props, dict):
        raise InvalidRequest('input schema "properties" must be an object', param="schema")
    try:
        encoded = json.dumps(schema, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"input schema is not plain JSON ({exc})", param="schema") from None
    if len(encoded.encode("utf-8")) > MAX_SCHEMA_BYTES:
        raise InvalidRequest("input schema is larger than 64 KiB", param="schema")
    return schema


@dataclass(frozen=True, slots=True)
class Adapter:
    """One registered adapter. ``path`` is its immutable, content-addressed copy."""

    name: str
    sha256: str
    base: str
    path: str
    format: str
    size_bytes: int
    created_ns: int
    task: str | None = None
    input_schema: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_INPUT_SCHEMA))
    #: The route (usually a frontier one) this adapter's calls would otherwise go to;
    #: usage reports price the savings against it.
    replaces: str | None = None

    @property
    def short_id(self) -> str:
        return self.sha256[:12]

    @property
    def description(self) -> str:
        """What an agent reads when it decides whether to call this adapter as a tool."""
        if self.task:
            return self.task
        return f"Task adapter {self.name!r} on base model {self.base!r}."

    def serves_on(self, base_names: tuple[str, ...]) -> bool:
        """True when a route that answers for any of ``base_names`` can load it."""
        return self.base in base_names

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sha256": self.sha256,
            "base": self.base,
            "task": self.task,
            "format": self.format,
            "size_bytes": self.size_bytes,
            "path": self.path,
            "input_schema": self.input_schema,
            "replaces": self.replaces,
            "created_ns": self.created_ns,
        }


def split_model_name(model: str) -> tuple[str, str] | None:
    """``"base:adapter"`` -> ``("base", "adapter")`` when the suffix is a valid adapter name."""
    base, sep, adapter = model.rpartition(":")
    if not sep or not base or not NAME_RE.match(adapter):
        return None
    return base, adapter
