"""Chat requests between OpenAI Chat Completions and Anthropic Messages, both ways.

Pure functions. Input may come straight off the network, so every shape is
checked and anything that cannot be translated faithfully is refused with
:class:`~hybridgate.errors.InvalidRequest` instead of being silently dropped:
a gateway that quietly loses a tool result or an image answers a different
question than the one asked.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from hybridgate.errors import InvalidRequest
from hybridgate.translate.parts import content_parts, part_text, part_type

DEFAULT_MAX_TOKENS = 4096
#: Chat fields that would change the answer and that Messages cannot express: refused.
#: (Caching and attribution hints such as ``prompt_cache_key`` or ``safety_identifier``
#: change no answer and are not carried.)
CHAT_FIELDS_REFUSED_ON_ANTHROPIC = (
    "response_format",
    "logprobs",
    "top_logprobs",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logit_bias",
    "prediction",
    "audio",
    "modalities",
    "reasoning_effort",
    "verbosity",
    "web_search_options",
    "functions",
    "function_call",
)
_DATA_URL = re.compile(r"data:(image/[a-zA-Z0-9.+-]{1,40});base64,", re.ASCII)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})


def _bad(message: str, param: str | None = None) -> InvalidRequest:
    return InvalidRequest(message, param=param)


def _text_of_parts(content: Any, where: str) -> str:
    """A string or a list of text parts as one string (system prompts, tool results)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    texts: list[str] = []
    for part in content_parts(content, where):
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            texts.append(part_text(part, where))
        else:
            raise _bad(f"{where}: only text content is supported here")
    return "\n".join(texts)


# --------------------------------------------------------------------------
# OpenAI -> Anthropic (the Anthropic provider)
# --------------------------------------------------------------------------


def _image_block(url: Any, where: str) -> dict[str, Any]:
    if not isinstance(url, str) or not url:
        raise _bad(f"{where}: image_url.url must be a non-empty string")
    m = _DATA_URL.match(url)
    if m:
        media = m.group(1).lower()
        if media not in _IMAGE_TYPES:
            raise _bad(f"{where}: image type {media} is not supported upstream")
        data = url[m.end() :]
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _bad(f"{where}: image data URL is not valid base64") from None
        return {"type": "image", "source": {"type": "base64", "media_type": media, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise _bad(f"{where}: image_url must be a data: URL or an http(s) URL")


def _user_blocks(content: Any, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks: list[dict[str, Any]] = []
    for j, part in enumerate(content_parts(content, where)):
        pw = f"{where}.content[{j}]"
        ptype = part_type(part, pw)
        if ptype == "text":
            text = part_text(part, pw)
            if text:
                blocks.append({"type": "text", "text": text})
        elif ptype == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu
            blocks.append(_image_block(url, pw))
        else:
            raise _bad(f"{pw}: content part type {ptype!r} is not supported by this route")
    return blocks


def _tool_use_blocks(calls: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        raise _bad(f"{where}.tool_calls must be a list")
    blocks: list[dict[str, Any]] = []
    for j, call in enumerate(calls):
        cw = f"{where}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(call, dict) or not isinstance(fn, dict):
            raise _bad(f"{cw}: must be an object with a `function`")
        cid, name, args = call.get("id"), fn.get("name"), fn.get("arguments")
        if not isinstance(cid, str) or not cid or not isinstance(name, str) or not name:
            raise _bad(f"{cw}: needs a string `id` and `function.name`")
        if args in (None, ""):
            parsed: Any = {}
        elif isinstance(args, str):
            try:
                parsed = json.loads(args)
            except ValueError:
                raise _bad(f"{cw}: function.arguments is not valid JSON") from None
        else:
            raise _bad(f"{cw}: function.arguments must be a JSON string")
        if not isinstance(parsed, dict):
            raise _bad(f"{cw}: function.arguments must encode a JSON object")
        blocks.append({"type": "tool_use", "id": cid, "name": name, "input": parsed})
    return blocks


def _messages_to_anthropic(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    if not isinstance(messages, list) or not messages:
        raise _bad("`messages` must be a non-empty list", "messages")
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _bad(f"{where}: each message must be an object")
        role = msg.get("role")
        content = msg.get("content")
        if role in ("system", "developer"):
            text = _text_of_parts(content, where)
            if text:
                system.append(text)
            continue
        if role == "user":
            blocks = _user_blocks(content, where)
            arole = "user"
        elif role == "assistant":
            blocks = []
            if content is not None:
                text = _text_of_parts(content, where)
                if text:
                    blocks.append({"type": "text", "text": text})
            refusal = msg.get("refusal")
            if isinstance(refusal, str) and refusal and not blocks:
                blocks.append({"type": "text", "text": refusal})
            if msg.get("tool_calls") is not None:
                blocks.extend(_tool_use_blocks(msg["tool_calls"], where))
            if msg.get("function_call") is not None:
                raise _bad(f"{where}: legacy function_call is not supported; use tool_calls")
            arole = "assistant"
        elif role == "tool":
            tcid = msg.get("tool_call_id")
            if not isinstance(tcid, str) or not tcid:
                raise _bad(f"{where}: tool message needs a string tool_call_id")
            blocks = [
                {
                    "type": "tool_result",
                    "tool_use_id": tcid,
                    "content": _text_of_parts(content, where),
                }
            ]
            arole = "user"
        else:
            raise _bad(f"{where}: unsupported role {role!r}")
        if not blocks:
            continue
        if out and out[-1]["role"] == arole:
            out[-1]["content"].extend(blocks)  # Anthropic wants strict alternation
        else:
            out.append({"role": arole, "content": blocks})
    if not out:
        raise _bad("`messages` has no user or assistant content", "messages")
    for m in out:  # tool results must lead their user turn
        if m["role"] == "user":
            m["content"].sort(key=lambda b: 0 if b["type"] == "tool_result" else 1)
    return system, out


def _tools_to_anthropic(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _bad("`tools` must be a list", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise _bad(f"tools[{i}]: only function tools are supported", "tools")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise _bad(f"tools[{i}]: needs function.name", "tools")
        params = fn.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise _bad(f"tools[{i}]: function.parameters must be an object", "tools")
        entry: dict[str, Any] = {"name": fn["name"], "input_schema": params}
        if isinstance(fn.get("description"), str):
            entry["description"] = fn["description"]
        out.append(entry)
    return out


def _tool_choice_to_anthropic(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if choice is None:
        tc: dict[str, Any] | None = None
    elif choice == "auto":
        tc = {"type": "auto"}
    elif choice == "required":
        tc = {"type": "any"}
    elif choice == "none":
        tc = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        name = choice["function"].get("name")
        if not isinstance(name, str) or not name:
            raise _bad("tool_choice.function.name must be a string", "tool_choice")
        tc = {"type": "tool", "name": name}
    else:
        raise _bad("unsupported tool_choice", "tool_choice")
    if parallel is False:
        tc = tc or {"type": "auto"}
        if tc["type"] != "none":
            tc["disable_parallel_tool_use"] = True
    return tc


def openai_request_to_anthropic(request: dict[str, Any]) -> dict[str, Any]:
    """OpenAI Chat body -> Anthropic Messages body (``model`` copied as is).

    Every system/developer message, wherever it sits, joins the top-level
    ``system`` (Anthropic has no mid-conversation system turns). Temperature
    is clamped to Anthropic's 0..1 range.
    """
    if not isinstance(request, dict):
        raise _bad("request body must be a JSON object")
    for name in CHAT_FIELDS_REFUSED_ON_ANTHROPIC:
        if request.get(name) not in (None, False):
            raise _bad(f"`{name}` has no translation for the Anthropic API; leave it out", name)
    n = request.get("n")
    if n not in (None, 1):
        raise _bad("n > 1 is not supported by this route", "n")
    system, messages = _messages_to_anthropic(request.get("messages"))
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if max_tokens is None:
        max_tokens = DEFAULT_MAX_TOKENS
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _bad("max_tokens must be a positive integer", "max_tokens")
    out: dict[str, Any] = {
        "model": request.get("model"),
        "max_tokens": max_tokens,
        "messages": messages,
    }
    if system:
        out["system"] = "\n\n".join(system)
    stop = request.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        if stop:
            out["stop_sequences"] = list(stop)
    elif stop is not None:
        raise _bad("stop must be a string or a list of strings", "stop")
    for key in ("temperature", "top_p"):
        val = request.get(key)
        if val is None:
            continue
        if not isinstance(val, (int, float)) or isinstance(val, bool):
            raise _bad(f"{key} must be a number", key)
        out[key] = min(float(val), 1.0) if key == "temperature" else float(val)
    if request.get("tools"):
        out["tools"] = _tools_to_anthropic(request["tools"])
    tc = _tool_choice_to_anthropic(request.get("tool_choice"), request.get("parallel_tool_calls"))
    if tc is not None and (out.get("tools") or tc["type"] == "none"):
        out["tool_choice"] = tc
    user = request.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    if request.get("stream") is True:
        out["stream"] = True
    return out


# --------------------------------------------------------------------------
# Anthropic -> OpenAI (the gateway's /v1/messages endpoint)
# --------------------------------------------------------------------------


def _image_part(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source")
    if not isinstance(src, dict):
        raise _bad(f"{where}: image block needs a `source`")
    if src.get("type") == "base64":
        media, data = src.get("media_type"), src.get("data")
        if media not in _IMAGE_TYPES or not isinstance(data, str):
            raise _bad(f"{where}: base64 image needs a supported media_type and string data")
        return {"type": "image_url", "image_url": {"url": f"data:{media};base64,{data}"}}
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return {"type": "image_url", "image_url": {"url": src["url"]}}
    raise _bad(f"{where}: unsupported image source")


def _tool_result_text(block: dict[str, Any], where: str) -> str:
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        parts: list[str] = []
        for k, item in enumerate(content):
            if part_type(item, f"{where}.content[{k}]") != "text":
                raise _bad(f"{where}.content[{k}]: only text is supported inside tool_result")
            parts.append(part_text(item, f"{where}.content[{k}]"))
        text = "\n".join(parts)
    else:
        raise _bad(f"{where}: tool_result content must be a string or a list of blocks")
    if block.get("is_error") is True:
        text = "[tool error] " + text
    return text


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    blocks = content_parts(content, where, noun="blocks")
    for j, b in enumerate(blocks):
        part_type(b, f"{where}.content[{j}]")
    return blocks


def _anthropic_message_to_openai(msg: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(msg, dict):
        raise _bad(f"{where}: each message must be an object")
    role = msg.get("role")
    blocks = _blocks(msg.get("content"), where)
    if role == "user":
        tools: list[dict[str, Any]] = []
        parts: list[dict[str, Any]] = []
        for j, b in enumerate(blocks):
            bw = f"{where}.content[{j}]"
            btype = b["type"]
            if btype == "text":
                parts.append({"type": "text", "text": part_text(b, bw)})
            elif btype == "image":
                parts.append(_image_part(b, bw))
            elif btype == "tool_result":
                tid = b.get("tool_use_id")
                if not isinstance(tid, str) or not tid:
                    raise _bad(f"{bw}: tool_result needs a string tool_use_id")
                tools.append(
                    {"role": "tool", "tool_call_id": tid, "content": _tool_result_text(b, bw)}
                )
            else:
                raise _bad(f"{bw}: block type {btype!r} is not supported")
        out = list(tools)
        if parts:
            if all(p["type"] == "text" for p in parts) and len(parts) == 1:
                out.append({"role": "user", "content": parts[0]["text"]})
            else:
                out.append({"role": "user", "content": parts})
        return out
    if role == "assistant":
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, b in enumerate(blocks):
            bw = f"{where}.content[{j}]"
            btype = b["type"]
            if btype == "text":
                texts.append(part_text(b, bw))
            elif btype == "tool_use":
                tid, name, inp = b.get("id"), b.get("name"), b.get("input", {})
                if not isinstance(tid, str) or not isinstance(name, str):
                    raise _bad(f"{bw}: tool_use needs string id and name")
                if not isinstance(inp, dict):
                    raise _bad(f"{bw}: tool_use input must be an object")
                calls.append(
                    {
                        "id": tid,
                        "type": "function",
                        "function": {"name": name, "arguments": json.dumps(inp)},
                    }
                )
            elif btype in ("thinking", "redacted_thinking"):
                continue  # reasoning traces are not replayable across providers
            else:
                raise _bad(f"{bw}: block type {btype!r} is not supported")
        m: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
        if calls:
            m["tool_calls"] = calls
        return [m]
    raise _bad(f"{where}: role must be 'user' or 'assistant'")


def _tool_choice_to_openai(tc: Any) -> tuple[Any, bool | None]:
    if not isinstance(tc, dict):
        raise _bad("tool_choice must be an object", "tool_choice")
    ttype = tc.get("type")
    parallel = False if tc.get("disable_parallel_tool_use") is True else None
    if ttype == "auto":
        return "auto", parallel
    if ttype == "any":
        return "required", parallel
    if ttype == "none":
        return "none", None
    if ttype == "tool" and isinstance(tc.get("name"), str):
        return {"type": "function", "function": {"name": tc["name"]}}, parallel
    raise _bad("unsupported tool_choice", "tool_choice")


def anthropic_request_to_openai(body: Any) -> dict[str, Any]:
    """Anthropic Messages body (as received from a client) -> OpenAI Chat body.

    ``metadata``, ``top_k`` and thinking settings are dropped: the internal
    shape has no place for them and none changes what data leaves.
    """
    if not isinstance(body, dict):
        raise _bad("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("`model` must be a non-empty string", "model")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise _bad("`max_tokens` must be a positive integer", "max_tokens")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise _bad("`messages` must be a non-empty list", "messages")
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system is not None:
        if isinstance(system, list):
            for j, b in enumerate(system):
                if not isinstance(b, dict) or b.get("type") != "text":
                    raise _bad(f"system[{j}]: only text blocks are allowed", "system")
        text = _text_of_parts(system, "system")
        if text:
            messages.append({"role": "system", "content": text})
    for i, m in enumerate(raw_messages):
        messages.extend(_anthropic_message_to_openai(m, f"messages[{i}]"))
    out: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": max_tokens}
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _bad("stop_sequences must be a list of strings", "stop_sequences")
        if stops:
            out["stop"] = list(stops)
    for key in ("temperature", "top_p"):
        val = body.get(key)
        if val is not None:
            if not isinstance(val, (int, float)) or isinstance(val, bool):
                raise _bad(f"{key} must be a number", key)
            out[key] = val
    tools = body.get("tools")
    if tools:
        if not isinstance(tools, list):
            raise _bad("`tools` must be a list", "tools")
        otools: list[dict[str, Any]] = []
        for i, t in enumerate(tools):
            if not isinstance(t, dict) or not isinstance(t.get("name"), str):
                raise _bad(f"tools[{i}]: needs a string name", "tools")
            schema = t.get("input_schema", {"type": "object", "properties": {}})
            if not isinstance(schema, dict):
                raise _bad(f"tools[{i}]: input_schema must be an object", "tools")
            fn: dict[str, Any] = {"name": t["name"], "parameters": schema}
            if isinstance(t.get("description"), str):
                fn["description"] = t["description"]
            otools.append({"type": "function", "function": fn})
        out["tools"] = otools
    if body.get("tool_choice") is not None:
        choice, parallel = _tool_choice_to_openai(body["tool_choice"])
        out["tool_choice"] = choice
        if parallel is not None:
            out["parallel_tool_calls"] = parallel
    if body.get("stream") is True:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out
