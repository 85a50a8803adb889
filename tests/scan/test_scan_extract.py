from __future__ import annotations

import json
from typing import Any

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner, extract_segments, scan_request


def _paths(body: Any, kinds: tuple[str, ...] = ("value",)) -> dict[tuple[str | int, ...], str]:
    segments, _ = extract_segments(body)
    return {s.path: s.text for s in segments if s.kind in kinds}


def _kinds(body: Any) -> dict[tuple[str, tuple[str | int, ...]], str]:
    segments, _ = extract_segments(body)
    return {(s.kind, s.path): s.text for s in segments}


def test_chat_request_every_string_leaf() -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "temperature": 0.2,
        "user": "jane@example.com",
        "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": [{"type": "text", "text": "Be terse."}]},
            {"role": "user", "name": "jane_doe", "content": "My card is 4111111111111111"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"ssn": "536-22-4817"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "IBAN GB82WEST12345698765432"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": "Look up a customer",
                    "parameters": {
                        "type": "object",
                        "properties": {"ssn": {"type": "string", "description": "the SSN"}},
                    },
                },
            }
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "out", "schema": {"type": "object", "title": "Result"}},
        },
        "x_vendor_extra": {"note": "Project Falcon"},
    }
    paths = _paths(body)
    assert paths[("user",)] == "jane@example.com"
    assert paths[("messages", 0, "content")] == "You are helpful."
    assert paths[("messages", 1, "content", 0, "text")] == "Be terse."
    assert paths[("messages", 2, "name")] == "jane_doe"
    assert paths[("messages", 3, "tool_calls", 0, "function", "arguments")].startswith('{"ssn"')
    assert paths[("messages", 4, "content")].startswith("IBAN")
    assert paths[("tools", 0, "function", "description")] == "Look up a customer"
    props = ("tools", 0, "function", "parameters", "properties", "ssn", "description")
    assert paths[props] == "the SSN"
    assert paths[("response_format", "json_schema", "schema", "title")] == "Result"
    assert paths[("x_vendor_extra", "note")] == "Project Falcon"
    # Structural identifiers are scanned too, as verbatim (never masked) segments.
    kinds = _kinds(body)
    assert kinds[("verbatim", ("model",))] == "gpt-4o"
    assert kinds[("verbatim", ("messages", 0, "role"))] == "system"
    assert kinds[("verbatim", ("messages", 3, "tool_calls", 0, "id"))] == "call_1"
    assert kinds[("verbatim", ("tools", 0, "type"))] == "function"
    # Every key and every number is a segment of its own.
    assert kinds[("key", ("tools", 0, "function", "parameters", "properties", "ssn"))] == "ssn"
    assert kinds[("number", ("temperature",))] == "0.2"
    assert ("value", ("model",)) not in kinds


def test_structural_key_with_non_identifier_value_is_still_scanned() -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user 4111 1111 1111 1111", "content": "x"}]}
    assert ("messages", 0, "role") in _paths(body, ("verbatim",))


def test_unscannable_parts() -> None:
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is in this image?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png?u=jane"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGR", "format": "wav"}},
                    {"type": "file", "file": {"file_data": "JVBER", "filename": "scan.pdf"}},
                ],
            }
        ]
    }
    segments, unscannable = extract_segments(body)
    assert unscannable == [
        "messages[0].content[1]",
        "messages[0].content[2]",
        "messages[0].content[3]",
        "messages[0].content[4]",
    ]
    texts = [s.text for s in segments]
    assert "what is in this image?" in texts
    assert "https://x.test/a.png?u=jane" in texts  # a URL leaves the building: scanned
    assert "scan.pdf" in texts
    assert all("base64" not in t and t not in ("UklGR", "JVBER") for t in texts)


def test_embeddings_and_unknown_shapes() -> None:
    assert _paths({"model": "e", "input": "hello"}) == {("input",): "hello"}
    assert _paths({"input": ["a", "b"]}) == {("input", 0): "a", ("input", 1): "b"}
    _, unscannable = extract_segments({"input": [101, 2023, 102]})
    assert unscannable == ["input"]  # token ids cannot be read as text
    assert _paths(["x", {"y": "z"}]) == {(0,): "x", (1, "y"): "z"}
    segments, unscannable = extract_segments({"metadata": {"4111111111111111": 4111111111111111}})
    assert unscannable == []
    assert [(s.kind, s.text) for s in segments] == [
        ("key", "metadata"),
        ("key", "4111111111111111"),
        ("number", "4111111111111111"),
    ]


def test_keys_and_numbers_are_scanned_and_not_maskable(scanner: Scanner) -> None:
    body = {"metadata": {"4111 1111 1111 1111": "v", "card": 5500000000000004}}
    segments, unscannable = extract_segments(body)
    scan = scan_request(scanner, segments, unscannable)
    assert {c.value for c in scan.data_classes} == {"financial"}
    assert {c.value for c in scan.unmaskable_classes} == {"financial"}
    assert all(not s.maskable for s in scan.segments)


def test_deep_nesting_does_not_recurse() -> None:
    # As deep as json.loads accepts (it refuses ~1000 levels); the walk is iterative anyway.
    depth = 450
    raw = '{"a": [' * depth + '"deep 4111111111111111"' + "]}" * depth
    segments, _ = extract_segments(json.loads(raw))
    values = [s for s in segments if s.kind == "value"]
    assert [s.text for s in values] == ["deep 4111111111111111"]
    assert len(values[0].path) == 2 * depth


def test_scan_request_tool_result_and_system_parts(scanner: Scanner) -> None:
    """Anthropic tool_result / system blocks arrive translated to these OpenAI shapes."""
    body = {
        "messages": [
            {"role": "system", "content": [{"type": "text", "text": "Key AKIAIOSFODNN7EXAMPLE"}]},
            {"role": "tool", "tool_call_id": "t1", "content": "patient MRN: 00482913"},
            {"role": "user", "content": "hi"},
        ]
    }
    segments, unscannable = extract_segments(body)
    scan = scan_request(scanner, segments, unscannable)
    assert scan.complete and scan.finding_count == 2
    by_seg = {segments[s.segment].path: [f.type for f in s.findings] for s in scan.segments}
    assert by_seg == {
        ("messages", 0, "content", 0, "text"): ["AWS_ACCESS_KEY"],
        ("messages", 1, "content"): ["MEDICAL_RECORD_NUMBER"],
    }
    assert {c.value for c in scan.data_classes} == {"secret", "health"}


def test_scan_request_incomplete_when_unscannable_or_failing() -> None:
    class Boom:
        name = "boom"

        def recognize(self, text: str) -> list[object]:
            raise RuntimeError

    sc = build_scanner(ScannerConfig())
    segs, _ = extract_segments({"messages": [{"role": "user", "content": "hi"}]})
    scan = scan_request(sc, segs, ["messages[0].content[1]"])
    assert not scan.complete and scan.unscannable == ("messages[0].content[1]",)
    failing = build_scanner(ScannerConfig(), plugins=[Boom()])  # type: ignore[list-item]
    scan = scan_request(failing, segs, [])
    assert not scan.complete
    assert "messages[0].content: boom: RuntimeError" in scan.errors
    assert "messages[0].{key}: boom: RuntimeError" in scan.errors  # a key's text is never shown


def _masked_spans(scanner: Scanner, body: dict[str, Any]) -> dict[str, list[str]]:
    segments, unscannable = extract_segments(body)
    scan = scan_request(scanner, segments, unscannable)
    out: dict[str, list[str]] = {}
    for s in scan.segments:
        text = segments[s.segment].text
        out[text] = [text[f.start : f.end] for f in s.findings]
    return out


def test_a_seam_never_stretches_a_whole_value_into_the_next_message(scanner: Scanner) -> None:
    """Joined, ``alice@example.com`` + ``Thanks`` reads as one longer address; the
    address is whole in its own message, and the next message's first word is not."""
    body = {
        "messages": [
            {"role": "user", "content": "reach me at alice@example.com"},
            {"role": "assistant", "content": "Thanks, noted."},
            {"role": "user", "content": "Call me at"},
            {"role": "user", "content": "bob@example.org please"},
        ]
    }
    spans = _masked_spans(scanner, body)
    assert spans == {
        "reach me at alice@example.com": ["alice@example.com"],
        "bob@example.org please": ["bob@example.org"],
    }


def test_a_value_split_across_messages_is_still_found_in_both_halves(scanner: Scanner) -> None:
    body = {
        "messages": [
            {"role": "user", "content": "card 4111 1111"},
            {"role": "user", "content": "1111 1111 thanks"},
            {"role": "user", "content": "mail alice@exa"},
            {"role": "user", "content": "mple.com today"},
        ]
    }
    spans = _masked_spans(scanner, body)
    assert spans["card 4111 1111"] == ["4111 1111"]
    assert spans["1111 1111 thanks"] == ["1111 1111"]
    assert spans["mail alice@exa"] == ["alice@exa"]
    assert spans["mple.com today"] == ["mple.com"]
