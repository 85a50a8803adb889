"""Responses <-> Chat Completions translation, native-answer restoration, and sealing:
pure functions, no servers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.conversations import Sealer
from hybridgate.conversations.sealing import SealError
from hybridgate.errors import InvalidRequest
from hybridgate.policy.restore import Restorer
from hybridgate.translate.native_restore import NativeRestorer
from hybridgate.translate.responses_request import responses_to_chat
from hybridgate.translate.responses_response import (
    ChatToResponsesStream,
    chat_to_response,
    response_shell,
)


def test_every_input_role_and_item_kind() -> None:
    chat = responses_to_chat(
        {
            "model": "m",
            "instructions": "sys",
            "input": [
                {"role": "developer", "content": "dev"},
                {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "u"}],
                },
                {"role": "assistant", "content": [{"type": "output_text", "text": "a"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "r1"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"role": "system", "content": "late"},
            ],
            "max_output_tokens": 7,
            "parallel_tool_calls": False,
            "prompt_cache_key": "p",
            "reasoning": {"effort": "high"},
            "text": {"format": {"type": "json_schema", "name": "s", "schema": {}}},
            "stream": True,
        }
    )
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "developer", "user", "assistant", "tool", "system"]
    assistant = chat["messages"][3]
    assert [c["id"] for c in assistant["tool_calls"]] == ["c1", "c2"]
    assert chat["max_completion_tokens"] == 7
    assert chat["parallel_tool_calls"] is False
    assert chat["prompt_cache_key"] == "p"
    assert chat["reasoning_effort"] == "high"
    assert chat["response_format"]["type"] == "json_schema"
    assert chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"tools": [{"type": "web_search"}]}, "web_search"),
        ({"background": True}, "background"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"unknown_field": 1}, "unknown_field"),
        ({"input": [{"type": "computer_call", "id": "x"}]}, "computer_call"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "file_id",
        ),
        ({"text": {"format": {"type": "grammar"}}}, "grammar"),
        ({"include": ["nonsense"]}, "nonsense"),
    ],
)
def test_untranslatable_is_refused_by_name(body: dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        responses_to_chat({"model": "m", "input": "x", **body})


def test_chat_answer_to_response_object() -> None:
    shell = response_shell({"model": "m", "input": "x"}, "m", None)
    out = chat_to_response(
        {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "content": "hi",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "{}"},
                            }
                        ],
                    },
                    "finish_reason": "length",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        },
        shell,
    )
    assert [o["type"] for o in out["output"]] == ["message", "function_call"]
    assert out["status"] == "incomplete"
    assert out["incomplete_details"] == {"reason": "max_output_tokens"}
    assert out["usage"]["total_tokens"] == 5


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_stream_events_are_ordered_and_complete() -> None:
    conv = ChatToResponsesStream(response_shell({"model": "m", "input": "x"}, "m", None))
    events = conv.start()
    events += conv.feed(_chunk({"content": "he"}))
    events += conv.feed(_chunk({"content": "llo"}))
    events += conv.feed(
        _chunk(
            {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]}
        )
    )
    events += conv.feed(
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}, "tool_calls")
    )
    events += conv.feed({"choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}})
    events += conv.finish()
    seqs = [e["sequence_number"] for e in events]
    assert seqs == list(range(len(events)))
    types = [e["type"] for e in events]
    assert types[0] == "response.created" and types[-1] == "response.completed"
    final = events[-1]["response"]
    assert final["output"][0]["content"][0]["text"] == "hello"
    assert final["output"][1]["arguments"] == "{}"
    assert final["usage"]["output_tokens"] == 2


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=12), st.text(alphabet="ab <>", max_size=20))
def test_native_stream_restores_placeholders_split_anywhere(step: int, noise: str) -> None:
    secret = "jane@example.com"
    restorer = NativeRestorer(Restorer({"<EMAIL_ADDRESS_1>": secret}))
    text = f"{noise}mail <EMAIL_ADDRESS_1> now{noise}"
    out: list[str] = []
    events: list[dict[str, Any]] = []
    for i in range(0, len(text), step):
        ev = {
            "type": "response.output_text.delta",
            "sequence_number": i,
            "output_index": 0,
            "content_index": 0,
            "delta": text[i : i + step],
        }
        events += restorer.response_event(ev)
    events += restorer.response_event(
        {
            "type": "response.output_text.done",
            "sequence_number": 999,
            "output_index": 0,
            "content_index": 0,
            "text": text,
        }
    )
    out = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    expected = text.replace("<EMAIL_ADDRESS_1>", secret)
    assert "".join(out) == expected
    assert events[-1]["text"] == expected
    assert [e["sequence_number"] for e in events] == list(range(len(events)))


def test_native_message_stream_restores_text_and_tool_input() -> None:
    r = NativeRestorer(Restorer({"<PERSON_1>": "Ada"}))
    evs = r.message_event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "hi <PER"},
        }
    )
    evs += r.message_event(
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": "SON_1>!"},
        }
    )
    evs += r.message_event({"type": "content_block_stop", "index": 0})
    text = "".join(e["delta"]["text"] for e in evs if e["type"] == "content_block_delta")
    assert text == "hi Ada!"
    msg = r.message({"content": [{"type": "tool_use", "input": {"who": ["<PERSON_1>"]}}]})
    assert msg["content"][0]["input"] == {"who": ["Ada"]}


def test_sealed_turns_are_bound_to_id_and_team() -> None:
    s = Sealer(b"k" * 32)
    blob = s.seal("resp_1", "team-a", {"input": ["SSN 536-22-1234"]})
    assert b"536-22-1234" not in blob
    assert s.open("resp_1", "team-a", blob) == {"input": ["SSN 536-22-1234"]}
    for rid, team in (("resp_2", "team-a"), ("resp_1", "team-b")):
        with pytest.raises(SealError):
            s.open(rid, team, blob)
    with pytest.raises(SealError):
        Sealer(b"x" * 32).open("resp_1", "team-a", blob)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(SealError):
        s.open("resp_1", "team-a", tampered)
    assert json.loads(json.dumps(s.open("resp_1", "team-a", blob)))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
_item = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(
            ["message", "function_call", "function_call_output", "reasoning", "x"]
        ),
        "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]),
        "content": _json,
        "call_id": _json,
        "name": _json,
        "arguments": _json,
        "output": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(st.text(max_size=10), st.lists(_item | _json, max_size=5), _json),
    st.dictionaries(
        st.sampled_from(
            ["tools", "tool_choice", "text", "reasoning", "max_output_tokens", "include", "top_p"]
        ),
        _json,
        max_size=3,
    ),
)
def test_any_responses_body_translates_or_is_refused(inp: Any, extra: dict[str, Any]) -> None:
    """Hostile bodies: a chat body or a 400 (InvalidRequest), never another exception."""
    try:
        chat = responses_to_chat({"model": "m", "input": inp, **extra})
    except InvalidRequest:
        return
    assert isinstance(chat["messages"], list) and chat["messages"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.fixed_dictionaries({"role": _json, "content": _json}), min_size=1, max_size=4))
def test_any_messages_body_translates_or_is_refused(messages: list[Any]) -> None:
    from hybridgate.api.messages import to_chat

    try:
        to_chat({"model": "m", "max_tokens": 5, "messages": messages})
    except InvalidRequest:
        return
