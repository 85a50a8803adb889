"""Every ordinary spelling, in any field, through both SDKs: nothing readable leaves.

The spelling corpus (``hybridgate.scan.variants``) is sent through the
official OpenAI and Anthropic SDKs; hypothesis picks the field each prompt
goes into. The external upstreams' recordings must not hold the value in
any readable form (verbatim, normalized, decoded, digits only), and every
receipt must name the value's class.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import anthropic
import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_harness import Harness, running_gateway
from hybridgate.scan.variants import ORDINARY, Variant, exposed, org_terms, variant_corpus

CORPUS = [v for v in variant_corpus(random.Random(424242), 1) if v.family == ORDINARY]


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    with running_gateway(tmp_path_factory.mktemp("gw"), scanner={"terms": org_terms()}) as harness:
        yield harness


def _external(h: Harness) -> str:
    bodies = [r.body for r in h.external.requests] + [r.body for r in h.claude.requests]
    return "\n".join(json.dumps(b, ensure_ascii=False) for b in bodies)


def _receipt(h: Harness, headers: Mapping[str, str]) -> dict[str, Any]:
    r = httpx.get(
        f"{h.url}/v1/receipts/{headers['x-hybridgate-receipt']}",
        headers={"authorization": f"Bearer {h.key}"},
    )
    assert r.status_code == 200
    body: dict[str, Any] = r.json()["receipt"]
    return body


def _tool_call(args: str) -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": "look it up"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": args},
                }
            ],
        },
    ]


#: OpenAI chat placements: prompt -> messages (and extra fields)
OPENAI_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "user": lambda p: {"messages": [{"role": "user", "content": p}]},
    "system": lambda p: {
        "messages": [{"role": "system", "content": p}, {"role": "user", "content": "go"}]
    },
    "content_part": lambda p: {
        "messages": [{"role": "user", "content": [{"type": "text", "text": p}]}]
    },
    "history": lambda p: {
        "messages": [
            {"role": "user", "content": p},
            {"role": "assistant", "content": "Noted."},
            {"role": "user", "content": "And now?"},
        ]
    },
    "tool_result": lambda p: {
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "messages": [
            *_tool_call("{}"),
            {"role": "tool", "tool_call_id": "call_1", "content": p},
        ],
    },
    "tool_arguments": lambda p: {
        "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        "messages": [
            *_tool_call(json.dumps({"note": p})),  # ensure_ascii: \u escapes for non-ASCII
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
        ],
    },
}

ANTHROPIC_FIELDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "anthropic_user": lambda p: {"messages": [{"role": "user", "content": p}]},
    "anthropic_system": lambda p: {
        "system": [{"type": "text", "text": p}],
        "messages": [{"role": "user", "content": "go"}],
    },
    "anthropic_tool_input": lambda p: {
        "messages": [
            {"role": "user", "content": "use it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {"q": p}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1"}]},
        ]
    },
    "anthropic_tool_result": lambda p: {
        "messages": [
            {"role": "user", "content": "use it"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "x", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": p}],
            },
        ]
    },
}


def send(h: Harness, field: str, prompt: str) -> tuple[int, Mapping[str, str]]:
    if field in OPENAI_FIELDS:
        try:
            raw = h.openai().chat.completions.with_raw_response.create(
                model="any", **OPENAI_FIELDS[field](prompt)
            )
        except openai.APIStatusError as e:
            return e.status_code, e.response.headers
        return raw.http_response.status_code, raw.headers
    try:
        a = h.anthropic().messages.with_raw_response.create(
            model="claude", max_tokens=32, **ANTHROPIC_FIELDS[field](prompt)
        )
    except anthropic.APIStatusError as e:
        return e.status_code, e.response.headers
    return a.http_response.status_code, a.headers


def check(h: Harness, v: Variant, field: str) -> None:
    h.external.clear()
    h.claude.clear()
    status, headers = send(h, field, v.prompt)
    assert status in (200, 403, 503), (field, v.spelling, status)
    leaked = exposed(_external(h), v.forbidden)
    assert not leaked, (v.kind, v.spelling, field)
    r = _receipt(h, headers)
    assert v.data_class.value in r["data_classes"], (v.kind, v.spelling, field, r)


FIELDS = sorted([*OPENAI_FIELDS, *ANTHROPIC_FIELDS])


@pytest.mark.parametrize("v", CORPUS, ids=lambda v: f"{v.kind}-{v.spelling}")
def test_every_ordinary_spelling_in_the_user_message(h: Harness, v: Variant) -> None:
    check(h, v, "user")


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(v=st.sampled_from(CORPUS), field=st.sampled_from(FIELDS))
def test_spellings_in_any_field_of_either_api(h: Harness, v: Variant, field: str) -> None:
    check(h, v, field)
