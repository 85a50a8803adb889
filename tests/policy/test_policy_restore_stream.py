"""Restoring placeholders in responses, streamed or not, split at every possible point."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hybridgate.policy import Restorer, StreamRestorer

EMAIL = "jane.doe@example.com"
TRICKY = 'O"Brien \\ <x> \u00e9'  # quotes, a backslash, angle brackets, non-ASCII
MAP = {"<EMAIL_ADDRESS_1>": EMAIL, "<PERSON_1>": TRICKY, "<CREDIT_CARD_12>": "4111"}
R = Restorer(MAP)


def content_chunk(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "auto",
        "choices": [{"index": index, "delta": {"content": text}, "finish_reason": finish}],
    }


def args_chunk(text: str, tool: int = 0, index: int = 0) -> dict[str, Any]:
    call = {"index": tool, "function": {"arguments": text}}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "choices": [{"index": index, "delta": {"tool_calls": [call]}, "finish_reason": None}],
    }


def collect(stream: StreamRestorer, chunks: list[dict[str, Any]]) -> dict[tuple[int, str], str]:
    """Concatenate every field's text per choice, as a client would."""
    out: dict[tuple[int, str], str] = {}
    produced = [stream.feed_chunk(c) for c in chunks]
    tail = stream.flush()
    if tail is not None:
        produced.append(tail)
    for c in produced:
        for ch in c["choices"]:
            d = ch["delta"]
            if isinstance(d.get("content"), str):
                out[(ch["index"], "content")] = out.get((ch["index"], "content"), "") + d["content"]
            for tc in d.get("tool_calls") or []:
                key = (ch["index"], f"tool{tc['index']}")
                out[key] = out.get(key, "") + tc["function"]["arguments"]
    return out


def test_restore_text_and_unknown_placeholders() -> None:
    assert (
        R.restore_text("to <EMAIL_ADDRESS_1>, <EMAIL_ADDRESS_9>")
        == f"to {EMAIL}, <EMAIL_ADDRESS_9>"
    )
    assert R.restore_text("<CREDIT_CARD_12><PERSON_1>") == "4111" + TRICKY
    assert R.restore_text("a < b and <lower_1> and <EMAIL_ADDRESS_1") == (
        "a < b and <lower_1> and <EMAIL_ADDRESS_1"
    )
    # a restored value that looks like a placeholder is not expanded again
    r = Restorer({"<A_1>": "<B_1>", "<B_1>": "x"})
    assert r.restore_text("<A_1>") == "<B_1>"


def test_restore_completion_content_and_tool_arguments() -> None:
    args = json.dumps({"to": "<EMAIL_ADDRESS_1>", "name": "Mr <PERSON_1>"})
    body: dict[str, Any] = {
        "id": "x",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello <PERSON_1>",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": args},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
    out = R.restore_completion(body)
    msg = out["choices"][0]["message"]
    assert msg["content"] == f"Hello {TRICKY}"
    parsed = json.loads(msg["tool_calls"][0]["function"]["arguments"])
    assert parsed == {"to": EMAIL, "name": f"Mr {TRICKY}"}
    assert body["choices"][0]["message"]["content"] == "Hello <PERSON_1>"  # input untouched
    assert out["usage"] == body["usage"]


def test_go_style_escaped_placeholders_in_arguments() -> None:
    args = '{"to":"\\u003cEMAIL_ADDRESS_1\\u003e","p":"\\\\u003cPERSON_1\\u003e"}'
    restored = json.loads(R.restore_json_text(args))
    # the second is an escaped backslash followed by text, not an escaped "<"
    assert restored == {"to": EMAIL, "p": "\\u003cPERSON_1>"}


TEXT = "Dear <PERSON_1>, mail <EMAIL_ADDRESS_1> re <CREDIT_CARD_12>, <NOPE_1> < <EMAIL_ADDRESS_1>"


def test_every_two_way_split_of_content() -> None:
    expected = R.restore_text(TEXT)
    assert EMAIL in expected and TRICKY in expected and "<NOPE_1>" in expected
    for i in range(len(TEXT) + 1):
        got = collect(R.stream(), [content_chunk(TEXT[:i]), content_chunk(TEXT[i:])])
        assert got[(0, "content")] == expected, i


def test_every_three_way_split_of_a_placeholder_region() -> None:
    text = "x <EMAIL_ADDRESS_1><PERSON_1> y"
    expected = R.restore_text(text)
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            chunks = [content_chunk(text[:i]), content_chunk(text[i:j]), content_chunk(text[j:])]
            assert collect(R.stream(), chunks)[(0, "content")] == expected, (i, j)


def test_char_by_char_stream() -> None:
    got = collect(R.stream(), [content_chunk(c) for c in TEXT])
    assert got[(0, "content")] == R.restore_text(TEXT)


def test_every_split_of_tool_arguments_restores_valid_json() -> None:
    args = json.dumps({"to": "<EMAIL_ADDRESS_1>", "who": "<PERSON_1>", "s": 'q"\\'})
    go = args.replace("<", "\\u003c").replace(">", "\\u003e")
    for text in (args, go):
        for i in range(len(text) + 1):
            got = collect(R.stream(), [args_chunk(text[:i]), args_chunk(text[i:])])
            assert json.loads(got[(0, "tool0")]) == {"to": EMAIL, "who": TRICKY, "s": 'q"\\'}, i


def test_fields_choices_and_tools_are_independent() -> None:
    s = R.stream()
    chunks = [
        content_chunk("hi <EMAIL_ADD", index=0),
        content_chunk("bye <PERS", index=1),
        args_chunk('{"a":"<PERSON', tool=0),
        args_chunk('{"b":"<EMAIL', tool=1),
        content_chunk("RESS_1>!", index=0),
        args_chunk('_1>"}', tool=0),
        content_chunk("ON_1>", index=1),
        args_chunk('_ADDRESS_1>"}', tool=1),
    ]
    got = collect(s, chunks)
    assert got[(0, "content")] == f"hi {EMAIL}!"
    assert got[(1, "content")] == f"bye {TRICKY}"
    assert json.loads(got[(0, "tool0")]) == {"a": TRICKY}
    assert json.loads(got[(0, "tool1")]) == {"b": EMAIL}


def test_partial_at_end_is_released_by_finish_reason() -> None:
    s = R.stream()
    first = s.feed_chunk(content_chunk("see <EMAIL_ADDR"))
    assert first["choices"][0]["delta"]["content"] == "see "
    last = s.feed_chunk(
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}
    )
    assert last["choices"][0]["delta"]["content"] == "<EMAIL_ADDR"
    assert s.flush() is None


def test_flush_emits_held_text_as_a_final_chunk() -> None:
    s = R.stream()
    s.feed_chunk(content_chunk("a <PERSON_"))
    s.feed_chunk(args_chunk('{"x": "<EMAIL_ADDRESS_1', tool=2))
    tail = s.flush()
    assert tail is not None
    assert tail["id"] == "chatcmpl-1" and tail["object"] == "chat.completion.chunk"
    delta = tail["choices"][0]["delta"]
    assert delta["content"] == "<PERSON_"
    assert delta["tool_calls"] == [{"index": 2, "function": {"arguments": "<EMAIL_ADDRESS_1"}}]
    assert s.flush() is None


def test_hold_back_is_bounded() -> None:
    s = R.stream()
    long = "<" + "A" * 200
    out = s.feed_chunk(content_chunk(long))
    assert out["choices"][0]["delta"]["content"] == long  # too long to be a placeholder


@pytest.mark.parametrize(
    "chunk",
    [
        {"choices": []},
        {"object": "chat.completion.chunk", "usage": {"prompt_tokens": 1}},
        {"choices": ["junk", {"index": 0}]},
        {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f"}}]},
                }
            ]
        },
    ],
)
def test_chunks_without_text_pass_through(chunk: dict[str, Any]) -> None:
    assert R.stream().feed_chunk(chunk) == chunk
