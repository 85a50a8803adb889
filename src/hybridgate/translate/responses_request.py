"""OpenAI Responses API requests -> Chat Completions requests (for routes of another family).

Pure functions. The Responses API is native on OpenAI routes; every other
route speaks Chat Completions (vLLM, llama.cpp, Ollama, local models) or
Anthropic Messages (reached through :mod:`.anthropic_request` from the chat
shape built here). A field or item with no faithful translation is refused
with a 400 that names it, never dropped: a gateway that quietly loses a tool
or a file answers a different question than the one asked.

Fields the gateway itself implements (``store``, ``previous_response_id``,
``include``, ``truncation``, ``stream_options``) are consumed before this
translation and never reach the upstream of a translated route.
"""

from __future__ import annotations

from typing import Any

from hybridgate.errors import InvalidRequest
from hybridgate.translate.parts import content_parts, part_text, part_type

#: Responses fields copied unchanged into the chat body.
_SAME_NAME = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "metadata",
    "prompt_cache_key",
    "safety_identifier",
    "service_tier",
)
#: Handled by the gateway (conversation state, stream framing), not forwarded.
GATEWAY_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "stream",
        "stream_options",
        "store",
        "previous_response_id",
        "include",
        "truncation",
    }
)
#: Known fields that have no Chat Completions equivalent: refused by name.
_UNTRANSLATABLE = {
    "background": "background responses are not supported on this route",
    "conversation": "`conversation` objects are not supported; use previous_response_id",
    "prompt": "reusable prompt templates are not supported on this route",
    "max_tool_calls": "`max_tool_calls` has no equivalent on this route",
}
#: `include` values that ask for optional output; a translated route has none to add.
KNOWN_INCLUDES = frozenset(
    {
        "reasoning.encrypted_content",
        "message.output_text.logprobs",
        "message.input_image.image_url",
        "computer_call_output.output.image_url",
        "file_search_call.results",
        "web_search_call.results",
        "web_search_call.action.sources",
        "code_interpreter_call.outputs",
    }
)
_INPUT_ROLES = frozenset({"user", "system", "developer", "assistant"})


def _bad(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _user_part(part: Any, where: str) -> dict[str, Any]:
    ptype = part_type(part, where)
    if ptype in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part_text(part, where)}
    if ptype == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise _bad(
                f"{where}: input_image needs `image_url` here (file_id has no translation)", where
            )
        image: dict[str, Any] = {"url": url}
        if isinstance(part.get("detail"), str):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if ptype == "input_file":
        data = part.get("file_data")
        if not isinstance(data, str) or not data:
            raise _bad(
                f"{where}: input_file needs inline `file_data` here "
                "(file_id and file_url have no translation)",
                where,
            )
        f: dict[str, Any] = {"file_data": data}
        if isinstance(part.get("filename"), str):
            f["filename"] = part["filename"]
        return {"type": "file", "file": f}
    raise _bad(f"{where}: content part type {ptype!r} has no translation on this route", where)


def _assistant_text(content: Any, where: str) -> tuple[str, str | None]:
    """An assistant message's text and refusal (output_text / refusal parts)."""
    if isinstance(content, str):
        return content, None
    texts: list[str] = []
    refusal: str | None = None
    for j, part in enumerate(content_parts(content, where)):
        pw = f"{where}.content[{j}]"
        ptype = part_type(part, pw)
        if ptype in ("output_text", "input_text", "text"):
            texts.append(part_text(part, pw))
        elif ptype == "refusal" and isinstance(part.get("refusal"), str):
            refusal = part["refusal"]
        else:
            raise _bad(f"{pw}: assistant content part {ptype!r} has no translation", pw)
    return "".join(texts), refusal


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    role = item.get("role")
    if role not in _INPUT_ROLES:
        raise _bad(f"{where}: role must be one of user, system, developer, assistant", where)
    content = item.get("content")
    if role == "assistant":
        text, refusal = _assistant_text(content, where)
        msg: dict[str, Any] = {"role": "assistant", "content": text}
        if refusal is not None:
            msg["refusal"] = refusal
        return msg
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [
        _user_part(p, f"{where}.content[{j}]") for j, p in enumerate(content_parts(content, where))
    ]
    if role in ("system", "developer"):
        if any(p["type"] != "text" for p in parts):
            raise _bad(f"{where}: {role} messages may only hold text", where)
        return {"role": role, "content": "\n".join(p["text"] for p in parts)}
    return {"role": role, "content": parts}


def _tool_output(output: Any, where: str) -> Any:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return [_user_part(p, f"{where}.output[{j}]") for j, p in enumerate(output)]
    raise _bad(f"{where}: `output` must be a string or a list of parts", where)


def input_to_messages(items: Any) -> list[dict[str, Any]]:
    """Responses input items -> chat messages (function calls folded into assistant turns)."""
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    if not isinstance(items, list):
        raise _bad("`input` must be a string or a list of items", "input")
    messages: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise _bad(f"{where}: each item must be an object", where)
        itype = item.get("type", "message")
        if itype == "message":
            messages.append(_message(item, where))
        elif itype == "function_call":
            cid, name, args = item.get("call_id"), item.get("name"), item.get("arguments")
            if not (isinstance(cid, str) and cid and isinstance(name, str) and name):
                raise _bad(f"{where}: function_call needs string `call_id` and `name`", where)
            if not isinstance(args, str):
                raise _bad(f"{where}: function_call `arguments` must be a JSON string", where)
            call = {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "refusal" not in last:
                last.setdefault("tool_calls", []).append(call)
                if last.get("content") == "":
                    last["content"] = None
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif itype == "function_call_output":
            cid = item.get("call_id")
            if not isinstance(cid, str) or not cid:
                raise _bad(f"{where}: function_call_output needs a string `call_id`", where)
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": cid,
                    "content": _tool_output(item.get("output"), where),
                }
            )
        elif itype == "reasoning":
            # A previous model's private reasoning state: meaningful only to the
            # provider that produced it, so it is not carried to another family.
            continue
        else:
            raise _bad(f"{where}: input item type {itype!r} has no translation here", where)
    return messages


def _tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("`tools` must be a list", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad(f"{where}: each tool must be an object", where)
        ttype = tool.get("type")
        if ttype != "function":
            raise _bad(
                f"{where}: tool type {ttype!r} has no translation on this route "
                "(only function tools cross API families)",
                where,
            )
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}: function tool needs a string `name`", where)
        fn: dict[str, Any] = {"name": name}
        for key in ("description", "parameters", "strict"):
            if tool.get(key) is not None:
                fn[key] = tool[key]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
    raise _bad("tool_choice has no translation on this route", "tool_choice")


def _text_format(text: Any, chat: dict[str, Any]) -> None:
    if not isinstance(text, dict):
        raise _bad("`text` must be an object", "text")
    for key in text:
        if key not in ("format", "verbosity"):
            raise _bad(f"text.{key} has no translation on this route", f"text.{key}")
    if text.get("verbosity") is not None:
        chat["verbosity"] = text["verbosity"]
    fmt = text.get("format")
    if fmt is None:
        return
    ftype = fmt.get("type") if isinstance(fmt, dict) else None
    if ftype == "text":
        return
    if ftype == "json_object":
        chat["response_format"] = {"type": "json_object"}
        return
    if ftype == "json_schema":
        assert isinstance(fmt, dict)
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        chat["response_format"] = {"type": "json_schema", "json_schema": schema}
        return
    raise _bad(f"text.format type {ftype!r} has no translation on this route", "text.format")


def responses_to_chat(body: dict[str, Any], history: list[Any] | None = None) -> dict[str, Any]:
    """A Responses body (with earlier turns' items in ``history``) as a chat body.

    ``history`` holds the input and output items of previous turns, oldest
    first, as the conversation store returns them.
    """
    for name, why in _UNTRANSLATABLE.items():
        if body.get(name) not in (None, False):
            raise _bad(f"`{name}`: {why}", name)
    known = (
        GATEWAY_FIELDS
        | set(_SAME_NAME)
        | {
            "tools",
            "tool_choice",
            "text",
            "reasoning",
            "max_output_tokens",
            "top_logprobs",
            *_UNTRANSLATABLE,
        }
    )
    for key in body:
        if key not in known:
            raise _bad(f"`{key}` has no translation on this route", key)
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if instructions is not None:
        if isinstance(instructions, list):
            messages.extend(input_to_messages(instructions))
        elif isinstance(instructions, str):
            if instructions:
                messages.append({"role": "system", "content": instructions})
        else:
            raise _bad("`instructions` must be a string", "instructions")
    if history:
        messages.extend(input_to_messages(history))
    inp = body.get("input")
    if inp is None:
        raise _bad("`input` is required", "input")
    messages.extend(input_to_messages(inp))
    if not messages:
        raise _bad("`input` must not be empty", "input")
    chat: dict[str, Any] = {"model": body.get("model"), "messages": messages}
    for key in _SAME_NAME:
        if body.get(key) is not None:
            chat[key] = body[key]
    if body.get("tools"):
        chat["tools"] = _tools(body["tools"])
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _tool_choice(body["tool_choice"])
    mot = body.get("max_output_tokens")
    if mot is not None:
        if not isinstance(mot, int) or isinstance(mot, bool) or mot < 1:
            raise _bad("`max_output_tokens` must be a positive integer", "max_output_tokens")
        chat["max_completion_tokens"] = mot
    if body.get("text") is not None:
        _text_format(body["text"], chat)
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _bad("`reasoning` must be an object", "reasoning")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    if body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list) or not all(isinstance(x, str) for x in include):
            raise _bad("`include` must be a list of strings", "include")
        for x in include:
            if x not in KNOWN_INCLUDES:
                raise _bad(f"include value {x!r} is not supported", "include")
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat
