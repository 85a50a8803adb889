"""OpenAI <-> Anthropic request translation (pure)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hybridgate.errors import InvalidRequest
from hybridgate.translate.anthropic import (
    DEFAULT_MAX_TOKENS,
    anthropic_request_to_openai,
    openai_request_to_anthropic,
)

PNG = "iVBORw0KGgo="
WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_system_developer_messages_join_system_and_defaults() -> None:
    out = openai_request_to_anthropic(
        {
            "model": "claude",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
                {"role": "user", "content": "Bonjour"},
                {"role": "system", "content": "Late rule."},
            ],
        }
    )
    assert out["system"] == "Be brief.\n\nUse French.\n\nLate rule."
    assert out["max_tokens"] == DEFAULT_MAX_TOKENS
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Bonjour"}]}]
    assert "stream" not in out and "stop_sequences" not in out


def test_params_stop_temperature_top_p_user_stream() -> None:
    out = openai_request_to_anthropic(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 50,
            "stop": "END",
            "temperature": 1.7,
            "top_p": 0.9,
            "user": "u-1",
            "stream": True,
        }
    )
    assert out["max_tokens"] == 50
    assert out["stop_sequences"] == ["END"]
    assert out["temperature"] == 1.0  # clamped to Anthropic's range
    assert out["top_p"] == 0.9
    assert out["metadata"] == {"user_id": "u-1"}
    assert out["stream"] is True
    out2 = openai_request_to_anthropic(
        {"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"], "max_tokens": 7}
    )
    assert out2["stop_sequences"] == ["a", "b"] and out2["max_tokens"] == 7


def test_multiturn_merging_tools_and_tool_results() -> None:
    req: dict[str, Any] = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "user", "content": "Quickly."},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {
                "role": "tool",
                "tool_call_id": "call_2",
                "content": [{"type": "text", "text": "21C"}],
            },
            {"role": "user", "content": "Thanks"},
        ],
        "tools": [WEATHER_TOOL, {"type": "function", "function": {"name": "noargs"}}],
        "tool_choice": "required",
        "parallel_tool_calls": False,
    }
    out = openai_request_to_anthropic(req)
    msgs = out["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0]["content"] == [
        {"type": "text", "text": "Weather in Paris and Rome?"},
        {"type": "text", "text": "Quickly."},
    ]
    assert msgs[1]["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {}},
    ]
    assert msgs[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
        {"type": "text", "text": "Thanks"},
    ]
    assert out["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
            "description": "Weather for a city",
        },
        {"name": "noargs", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("none", {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"type": "tool", "name": "get_weather"},
        ),
    ],
)
def test_tool_choice_mapping(choice: Any, expected: dict[str, Any]) -> None:
    out = openai_request_to_anthropic(
        {
            "messages": [{"role": "user", "content": "x"}],
            "tools": [WEATHER_TOOL],
            "tool_choice": choice,
        }
    )
    assert out["tool_choice"] == expected


def test_images_data_url_and_http_url() -> None:
    out = openai_request_to_anthropic(
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is this?"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
                    ],
                }
            ]
        }
    )
    blocks = out["messages"][0]["content"]
    assert blocks[1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
    }
    assert blocks[2] == {
        "type": "image",
        "source": {"type": "url", "url": "https://example.com/a.jpg"},
    }


@pytest.mark.parametrize(
    "req",
    [
        {"messages": []},
        {"messages": "hi"},
        {"messages": [{"role": "user", "content": "x"}], "n": 2},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": 5}]},
        {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,@@@"}}
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}
                    ],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{bad"}}],
                }
            ]
        },
        {
            "messages": [
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}],
                }
            ]
        },
        {"messages": [{"role": "tool", "content": "no id"}]},
        {"messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
        {"messages": [{"role": "user", "content": "x"}], "stop": 5},
        {"messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
        {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]},
        {"messages": [{"role": "user", "content": "x"}], "tools": [WEATHER_TOOL], "tool_choice": 3},
        {"messages": [{"role": "system", "content": "only a system prompt"}]},
    ],
)
def test_openai_to_anthropic_rejects(req: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        openai_request_to_anthropic(req)


def test_anthropic_to_openai_full() -> None:
    body = {
        "model": "claude-x",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "Rule one."}, {"type": "text", "text": "Rule two."}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look:"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PNG},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "lookup", "input": {"q": "dog"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a cat"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "not"},
                            {"type": "text", "text": "found"},
                        ],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Go on"},
                ],
            },
        ],
        "tools": [{"name": "lookup", "description": "Find", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "lookup", "disable_parallel_tool_use": True},
        "stop_sequences": ["STOP"],
        "temperature": 0.2,
        "top_p": 0.5,
        "top_k": 5,
        "metadata": {"user_id": "secret-user"},
        "stream": True,
    }
    out = anthropic_request_to_openai(body)
    assert out["model"] == "claude-x" and out["max_tokens"] == 300
    msgs = out["messages"]
    assert msgs[0] == {"role": "system", "content": "Rule one.\nRule two."}
    assert msgs[1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PNG}"},
    }
    assert msgs[2]["content"] == "Let me check."
    assert [json.loads(c["function"]["arguments"]) for c in msgs[2]["tool_calls"]] == [
        {"q": "cat"},
        {"q": "dog"},
    ]
    assert msgs[3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a cat"}
    assert msgs[4] == {
        "role": "tool",
        "tool_call_id": "toolu_2",
        "content": "[tool error] not\nfound",
    }
    assert msgs[5] == {"role": "user", "content": "Go on"}
    assert out["tools"] == [
        {
            "type": "function",
            "function": {"name": "lookup", "parameters": {"type": "object"}, "description": "Find"},
        }
    ]
    assert out["tool_choice"] == {"type": "function", "function": {"name": "lookup"}}
    assert out["parallel_tool_calls"] is False
    assert out["stop"] == ["STOP"] and out["temperature"] == 0.2 and out["top_p"] == 0.5
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert "metadata" not in out and "top_k" not in out
    assert "secret-user" not in json.dumps(out)


@pytest.mark.parametrize(
    ("choice", "expected"),
    [({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none")],
)
def test_anthropic_tool_choice(choice: dict[str, Any], expected: str) -> None:
    out = anthropic_request_to_openai(
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": choice,
        }
    )
    assert out["tool_choice"] == expected


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": True, "messages": [{"role": "user", "content": "x"}]},
        {"model": "m", "max_tokens": 5, "messages": []},
        {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "document"}]}],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": [{"type": "tool_result"}]}],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "image"}]}
                    ],
                }
            ],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t", "name": "n", "input": [1]}],
                }
            ],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "text/html", "data": "x"},
                        }
                    ],
                }
            ],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "system": [{"type": "image"}],
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "stop_sequences": "STOP",
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tool_choice": {"type": "magic"},
        },
        {
            "model": "m",
            "max_tokens": 5,
            "messages": [{"role": "user", "content": "x"}],
            "tools": [{"description": "no name"}],
        },
        {"model": "m", "max_tokens": 5, "messages": ["not an object"]},
    ],
)
def test_anthropic_to_openai_rejects(body: Any) -> None:
    with pytest.raises(InvalidRequest):
        anthropic_request_to_openai(body)


def test_round_trip_anthropic_openai_anthropic_preserves_conversation() -> None:
    original: dict[str, Any] = {
        "model": "m",
        "max_tokens": 64,
        "system": "Sys",
        "messages": [
            {"role": "user", "content": "Q1"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "calling"},
                    {"type": "tool_use", "id": "toolu_9", "name": "f", "input": {"a": [1, 2]}},
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}],
            },
        ],
        "stop_sequences": ["X"],
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
    }
    back = openai_request_to_anthropic(anthropic_request_to_openai(original))
    assert back["system"] == "Sys"
    assert back["max_tokens"] == 64 and back["stop_sequences"] == ["X"]
    assert back["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Q1"}]},
        original["messages"][1],
        original["messages"][2]
        | {"content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]},
    ]
    assert back["tools"] == [{"name": "f", "input_schema": {"type": "object"}}]
