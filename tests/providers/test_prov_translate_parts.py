"""Every translator checks content parts through one validator (translate/parts.py):
the same malformed part is refused the same way, naming its path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from hybridgate.errors import InvalidRequest
from hybridgate.translate.anthropic import (
    anthropic_request_to_openai,
    openai_request_to_anthropic,
)
from hybridgate.translate.responses_request import responses_to_chat


def chat(content: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}]}


def messages(content: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": content}]}


def responses(content: Any) -> dict[str, Any]:
    return {"model": "m", "input": [{"type": "message", "role": "user", "content": content}]}


TRANSLATORS: list[tuple[str, Callable[[Any], Any], Callable[[Any], dict[str, Any]], str]] = [
    ("chat->messages", openai_request_to_anthropic, chat, "messages[0].content[0]"),
    ("messages->chat", anthropic_request_to_openai, messages, "messages[0].content[0]"),
    ("responses->chat", responses_to_chat, responses, "input[0].content[0]"),
]
IDS = [t[0] for t in TRANSLATORS]


@pytest.mark.parametrize(("name", "translate", "body", "where"), TRANSLATORS, ids=IDS)
def test_text_part_without_string_text_is_refused_by_path(
    name: str, translate: Callable[[Any], Any], body: Callable[[Any], Any], where: str
) -> None:
    kind = "input_text" if name.startswith("responses") else "text"
    with pytest.raises(InvalidRequest) as e:
        translate(body([{"type": kind, "text": 42}]))
    assert e.value.message == f"{where}: {kind} part without a string `text`"
    assert e.value.param == where


@pytest.mark.parametrize(("name", "translate", "body", "where"), TRANSLATORS, ids=IDS)
@pytest.mark.parametrize("part", ["just a string", 7, {"text": "no type"}, {"type": 3}])
def test_part_that_is_not_a_typed_object_is_refused_by_path(
    name: str, translate: Callable[[Any], Any], body: Callable[[Any], Any], where: str, part: Any
) -> None:
    with pytest.raises(InvalidRequest) as e:
        translate(body([part]))
    assert e.value.message == f"{where}: each part must be an object with a type"


@pytest.mark.parametrize(("name", "translate", "body", "where"), TRANSLATORS, ids=IDS)
def test_content_that_is_neither_string_nor_list_is_refused(
    name: str, translate: Callable[[Any], Any], body: Callable[[Any], Any], where: str
) -> None:
    with pytest.raises(InvalidRequest) as e:
        translate(body({"type": "text", "text": "an object, not a list"}))
    assert "content must be a string or a list of" in e.value.message


@pytest.mark.parametrize(("name", "translate", "body", "where"), TRANSLATORS, ids=IDS)
def test_text_parts_translate(
    name: str, translate: Callable[[Any], Any], body: Callable[[Any], Any], where: str
) -> None:
    kind = "input_text" if name.startswith("responses") else "text"
    out = translate(body([{"type": kind, "text": "hello"}, {"type": kind, "text": "there"}]))
    assert "hello" in repr(out) and "there" in repr(out)
