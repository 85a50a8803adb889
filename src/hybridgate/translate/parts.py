"""Content parts: the one check of what a message's content holds.

Every API spells a message's content as a string or a list of typed parts
(Chat: ``text``, ``image_url``; Responses: ``input_text``, ``output_text``,
``input_image``, ``input_file``; Messages: ``text``, ``image``, ``tool_use``,
``tool_result``, ``document``). Whichever way a body is translated, its parts
are read through these functions, so a malformed part is refused the same way,
by its path, and a part is either understood or refused — never dropped.
"""

from __future__ import annotations

from typing import Any

from hybridgate.errors import InvalidRequest


def content_parts(content: Any, where: str, *, noun: str = "parts") -> list[Any]:
    """The content's parts (a string is one text part); anything else is refused."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}: content must be a string or a list of {noun}", param=where)
    return content


def part_type(part: Any, where: str) -> str:
    """A part's ``type``; a part that is not an object with a string type is refused."""
    if not isinstance(part, dict) or not isinstance(part.get("type"), str):
        raise InvalidRequest(f"{where}: each part must be an object with a type", param=where)
    return str(part["type"])


def part_text(part: dict[str, Any], where: str) -> str:
    """A text part's ``text``; a text part without a string ``text`` is refused."""
    text = part.get("text")
    if not isinstance(text, str):
        raise InvalidRequest(
            f"{where}: {part.get('type')} part without a string `text`", param=where
        )
    return text
