"""mask_request(): typed placeholders, stable across turns, valid JSON, fail closed."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from hybridgate.policy import Decision, MaskTarget, RedactionError, Restorer, mask_request
from hybridgate.policy.model import Action
from hybridgate.policy.redact import placeholder_type
from hybridgate.scan.findings import Segment

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
OTHER_EMAIL = "bob@example.org"


def decision(*masks: MaskTarget) -> Decision:
    return Decision(Action.REDACT, ("gpt",), masks, (), ("contact",), "0" * 64, False)


def span(seg: Segment, value: str, type_: str, i: int, nth: int = 0) -> MaskTarget:
    start = -1
    for _ in range(nth + 1):
        start = seg.text.index(value, start + 1)
    return MaskTarget(i, start, start + len(value), type_)


def chat(*contents: str) -> tuple[dict[str, Any], list[Segment]]:
    roles = ["user", "assistant"]
    body = {
        "model": "auto",
        "messages": [{"role": roles[i % 2], "content": c} for i, c in enumerate(contents)],
    }
    segs = [Segment(("messages", i, "content"), c) for i, c in enumerate(contents)]
    return body, segs


def masked_texts(body: dict[str, Any]) -> list[str]:
    return [m["content"] for m in body["messages"]]


def test_typed_placeholders_with_counters_per_type() -> None:
    body, segs = chat(f"mail {EMAIL} or {OTHER_EMAIL}, card {CARD}")
    d = decision(
        span(segs[0], EMAIL, "EMAIL_ADDRESS", 0),
        span(segs[0], OTHER_EMAIL, "EMAIL_ADDRESS", 0),
        span(segs[0], CARD, "CREDIT_CARD", 0),
    )
    out, restorer = mask_request(body, segs, d)
    assert masked_texts(out) == [
        "mail <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>, card <CREDIT_CARD_1>"
    ]
    assert restorer.restore_text(out["messages"][0]["content"]) == segs[0].text
    assert body["messages"][0]["content"] == segs[0].text  # the input is not modified


def test_same_value_same_placeholder_across_turns() -> None:
    body, segs = chat(f"I am {EMAIL}", f"Noted, {EMAIL}.", f"Send it to {EMAIL} and {OTHER_EMAIL}")
    d = decision(
        span(segs[0], EMAIL, "EMAIL_ADDRESS", 0),
        span(segs[1], EMAIL, "EMAIL_ADDRESS", 1),
        span(segs[2], EMAIL, "EMAIL_ADDRESS", 2),
        span(segs[2], OTHER_EMAIL, "EMAIL_ADDRESS", 2),
    )
    out, restorer = mask_request(body, segs, d)
    assert masked_texts(out) == [
        "I am <EMAIL_ADDRESS_1>",
        "Noted, <EMAIL_ADDRESS_1>.",
        "Send it to <EMAIL_ADDRESS_1> and <EMAIL_ADDRESS_2>",
    ]
    assert len(restorer.placeholders) == 2


def test_unflagged_occurrences_of_a_masked_value_are_masked_too() -> None:
    body, segs = chat(f"I am {EMAIL}", f"so {EMAIL}, ok", f"x{EMAIL}y is glued")
    out, _ = mask_request(body, segs, decision(span(segs[0], EMAIL, "EMAIL_ADDRESS", 0)))
    texts = masked_texts(out)
    assert texts[:2] == ["I am <EMAIL_ADDRESS_1>", "so <EMAIL_ADDRESS_1>, ok"]
    assert texts[2] == segs[2].text  # glued to letters: a different token, left alone


def test_overlapping_findings_merge_into_one_placeholder() -> None:
    body, segs = chat(f"card {CARD} end")
    a = span(segs[0], CARD, "CREDIT_CARD", 0)
    inner = MaskTarget(0, a.start + 5, a.start + 9, "US_BANK_NUMBER")
    out, restorer = mask_request(body, segs, decision(a, inner))
    assert masked_texts(out) == ["card <CREDIT_CARD_1> end"]
    assert restorer.restore_text("<CREDIT_CARD_1>") == CARD


def test_user_text_that_looks_like_a_placeholder_is_not_reused() -> None:
    body, segs = chat(f"literal <EMAIL_ADDRESS_1> and real {EMAIL}")
    out, restorer = mask_request(body, segs, decision(span(segs[0], EMAIL, "EMAIL_ADDRESS", 0)))
    assert masked_texts(out) == ["literal <EMAIL_ADDRESS_1> and real <EMAIL_ADDRESS_2>"]
    assert restorer.restore_text("<EMAIL_ADDRESS_1>") == "<EMAIL_ADDRESS_1>"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("EMAIL_ADDRESS", "EMAIL_ADDRESS"),
        ("iban-code", "IBAN_CODE"),
        ("org term", "ORG_TERM"),
        ("123", "X_123"),
        ("", "REDACTED"),
        ("a" * 80, "A" * 40),
        ("<x>", "X"),
    ],
)
def test_placeholder_type_names(raw: str, expected: str) -> None:
    assert placeholder_type(raw) == expected


def _tool_request(args: Any) -> tuple[dict[str, Any], list[Segment]]:
    text = args if isinstance(args, str) else json.dumps(args)
    body = {
        "model": "auto",
        "messages": [
            {"role": "user", "content": "look it up"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": text}}
                ],
            },
        ],
    }
    path = ("messages", 1, "tool_calls", 0, "function", "arguments")
    return body, [Segment(("messages", 0, "content"), "look it up"), Segment(path, text)]


def _args(body: dict[str, Any]) -> str:
    return str(body["messages"][1]["tool_calls"][0]["function"]["arguments"])


def test_masking_inside_tool_arguments_keeps_valid_json() -> None:
    body, segs = _tool_request({"to": EMAIL, "note": f'say "hi" to {EMAIL}\\n'})
    out, restorer = mask_request(body, segs, decision(span(segs[1], EMAIL, "EMAIL_ADDRESS", 1)))
    masked = json.loads(_args(out))
    assert masked == {"to": "<EMAIL_ADDRESS_1>", "note": 'say "hi" to <EMAIL_ADDRESS_1>\\n'}
    assert json.loads(restorer.restore_json_text(_args(out))) == json.loads(segs[1].text)


def test_value_with_quotes_and_backslashes_in_arguments() -> None:
    value = 'Dr "Who" \\ O\'Neil'
    body, segs = _tool_request({"name": value, "n": 1})
    raw = segs[1].text
    escaped = json.dumps(value)[1:-1]
    start = raw.index(escaped)
    # the finding cuts into the middle of escape sequences at both ends
    t = MaskTarget(1, start + 4, start + len(escaped) - 3, "PERSON")
    out, restorer = mask_request(body, segs, decision(t))
    masked = json.loads(_args(out))
    assert masked["n"] == 1 and value not in json.dumps(masked)
    restored = json.loads(restorer.restore_json_text(_args(out)))
    assert restored == {"name": value, "n": 1}


def test_number_tokens_in_arguments_become_quoted_placeholders() -> None:
    body, segs = _tool_request('{"card": 4111111111111111, "ok": true}')
    raw = segs[1].text
    t = MaskTarget(1, raw.index("4111") + 2, raw.index("4111") + 10, "CREDIT_CARD")
    out, restorer = mask_request(body, segs, decision(t))
    assert json.loads(_args(out)) == {"card": "<CREDIT_CARD_1>", "ok": True}
    assert restorer.restore_text("<CREDIT_CARD_1>") == "4111111111111111"


def test_non_ascii_value_in_ascii_escaped_arguments() -> None:
    value = "José Müller"
    body, segs = _tool_request({"who": value})  # json.dumps escapes to \\u00e9
    plain, _ = chat(f"who is {value}?")
    segs = [Segment(("messages", 0, "content"), f"who is {value}?"), segs[1]]
    body["messages"][0]["content"] = segs[0].text
    out, _ = mask_request(body, segs, decision(span(segs[0], value, "PERSON", 0)))
    assert out["messages"][0]["content"] == "who is <PERSON_1>?"
    assert json.loads(_args(out)) == {"who": "<PERSON_1>"}  # swept, escaped spelling
    assert plain  # builder still usable


def test_broken_arguments_are_masked_as_text() -> None:
    body, segs = _tool_request('{"to": "' + EMAIL + '", ')  # truncated JSON from a model
    out, _ = mask_request(body, segs, decision(span(segs[1], EMAIL, "EMAIL_ADDRESS", 1)))
    assert _args(out) == '{"to": "<EMAIL_ADDRESS_1>", '


def test_path_into_embedded_json() -> None:
    args = json.dumps({"q": f"find {EMAIL}"})
    body, segs = _tool_request(args)
    inner = Segment(("messages", 1, "tool_calls", 0, "function", "arguments", "q"), f"find {EMAIL}")
    out, _ = mask_request(body, [segs[0], inner], decision(span(inner, EMAIL, "EMAIL_ADDRESS", 1)))
    assert json.loads(_args(out)) == {"q": "find <EMAIL_ADDRESS_1>"}


@pytest.mark.parametrize(
    "bad",
    [
        MaskTarget(5, 0, 1, "X"),
        MaskTarget(0, 3, 2, "X"),
        MaskTarget(0, 0, 999, "X"),
        MaskTarget(0, -1, 2, "X"),
    ],
)
def test_impossible_masks_refuse_the_request(bad: MaskTarget) -> None:
    body, segs = chat("hello there")
    with pytest.raises(RedactionError):
        mask_request(body, segs, decision(bad))


def test_request_changed_under_the_scan_refuses() -> None:
    body, segs = chat(f"mail {EMAIL}")
    changed = copy.deepcopy(body)
    changed["messages"][0]["content"] = "something else entirely"
    with pytest.raises(RedactionError) as e:
        mask_request(changed, segs, decision(span(segs[0], EMAIL, "EMAIL_ADDRESS", 0)))
    assert e.value.status == 503 and EMAIL not in e.value.message


def test_restorer_repr_hides_values() -> None:
    r = Restorer({"<EMAIL_ADDRESS_1>": EMAIL})
    assert EMAIL not in repr(r) and EMAIL not in str(r)


def test_any_span_over_arguments_keeps_json_valid() -> None:
    """Property-style: every possible finding span over a small arguments text."""
    obj = {"a": 'x"y\\z\u00e9\n<', "n": -12.5e3, "b": [True, None, "ok"]}
    for text in (json.dumps(obj), json.dumps(obj, ensure_ascii=False, separators=(",", ":"))):
        body, segs = _tool_request(text)
        a_start = text.index('"a": "') + 6 if '"a": "' in text else text.index('"a":"') + 5
        a_end = a_start + len(json.dumps(obj["a"], ensure_ascii="\\u00e9" in text)) - 2
        for start in range(len(text)):
            for end in range(start + 1, len(text) + 1):
                out, restorer = mask_request(body, segs, decision(MaskTarget(1, start, end, "T")))
                masked = json.loads(_args(out))  # always valid JSON
                if a_start <= start and end <= a_end:
                    assert masked["n"] == obj["n"] and masked["b"] == obj["b"]
                    assert json.loads(restorer.restore_json_text(_args(out))) == obj


def test_identifier_fields_get_bracketless_placeholders() -> None:
    body = {"messages": [{"role": "user", "name": "jane_doe", "content": "I am jane_doe"}]}
    segs = [
        Segment(("messages", 0, "name"), "jane_doe"),
        Segment(("messages", 0, "content"), "I am jane_doe"),
    ]
    out, _ = mask_request(body, segs, decision(MaskTarget(0, 0, 8, "PERSON")))
    assert out["messages"][0]["name"] == "PERSON_1"
    assert out["messages"][0]["content"] == "I am <PERSON_1>"
