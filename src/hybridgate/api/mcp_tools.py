"""Task adapters as tools: the definitions agents see, and one call path for all of them.

Every registered adapter that some route serves is a tool: its name, its
task as the description, its input schema. A call becomes a chat request for
``<route>:<adapter>`` (the task as the system message, the arguments as the
user message) and goes through the pipeline like any request: scanner,
policy, budgets, the adapter's route, and exactly one receipt, also when the
call is refused. The MCP endpoint and the OpenAI-style ``/v1/tools`` endpoints
both call :func:`call_tool`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from hybridgate.adapters import DEFAULT_INPUT_SCHEMA, Adapter
from hybridgate.api.common import json_bytes
from hybridgate.errors import GatewayError, InvalidRequest, NotFound
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import Pipeline

log = logging.getLogger("hybridgate.api")

MAX_ARGUMENT_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class ToolResult:
    text: str
    is_error: bool
    receipt_id: str
    adapter: Adapter | None
    route: str | None
    error_code: str | None = None


def tool_definitions(pipeline: Pipeline) -> list[tuple[str, Adapter]]:
    """``(model name, adapter)`` for every adapter a route serves, sorted by tool name."""
    return sorted(pipeline.gw.adapter_models(), key=lambda t: t[1].name)


def openai_tool(adapter: Adapter, model: str) -> dict[str, Any]:
    """An adapter as an OpenAI function tool (plus where the gateway serves it)."""
    return {
        "type": "function",
        "function": {
            "name": adapter.name,
            "description": adapter.description,
            "parameters": adapter.input_schema,
        },
        "x-hybridgate": {"model": model, "adapter_sha256": adapter.sha256},
    }


def _user_content(adapter: Adapter, arguments: dict[str, Any]) -> str:
    if adapter.input_schema == DEFAULT_INPUT_SCHEMA and isinstance(arguments.get("input"), str):
        return str(arguments["input"])
    return json.dumps(arguments, ensure_ascii=False, sort_keys=True)


def _check_arguments(adapter: Adapter, arguments: Any) -> dict[str, Any]:
    if not isinstance(arguments, dict):
        raise InvalidRequest("tool arguments must be a JSON object", param="arguments")
    import jsonschema

    try:
        jsonschema.validate(arguments, adapter.input_schema)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
        raise InvalidRequest(
            f"arguments do not match the tool's input schema at {where}: "
            f"{exc.validator} constraint",
            param="arguments",
        ) from None
    except jsonschema.SchemaError:
        raise InvalidRequest("the tool's input schema is invalid", param="arguments") from None
    return arguments


async def call_tool(
    pipeline: Pipeline,
    key: KeyInfo,
    name: str,
    arguments: Any,
    *,
    api: str,
    max_tokens: int | None = None,
) -> ToolResult:
    """Run one adapter tool call through the pipeline; always ends in one receipt."""
    raw = json_bytes({"tool": name, "arguments": arguments})
    ex = pipeline.begin(api, key, raw)
    found: tuple[str, Adapter] | None = None
    try:
        if len(raw) > MAX_ARGUMENT_BYTES:
            raise InvalidRequest("tool arguments are larger than 256 KiB", param="arguments")
        found = next(((m, a) for m, a in tool_definitions(pipeline) if a.name == name), None)
        if found is None:
            raise NotFound(f"no tool named {name[:64]!r}", code="tool_not_found")
        model, adapter = found
        args = _check_arguments(adapter, arguments)
        body: dict[str, Any] = {
            "model": model,
            "messages": [
                {"role": "system", "content": adapter.description},
                {"role": "user", "content": _user_content(adapter, args)},
            ],
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        prepared = await pipeline.prepare_chat(ex, body)
        out = await pipeline.complete(ex, prepared)
        message = out["choices"][0].get("message") or {}
        text = message.get("content") or ""
        ex.sent(text.encode("utf-8"))
        await pipeline.finish(ex)  # durable receipt before the answer leaves
        return ToolResult(
            text, False, ex.receipt_id, ex.adapter, ex.route.name if ex.route else None
        )
    except GatewayError as err:
        return await _refused(pipeline, ex, err, found)
    except Exception:  # never a traceback to the agent; the receipt still records it
        log.exception("tool call %s failed", name[:64])
        return await _refused(pipeline, ex, GatewayError("internal error"), found)


async def _refused(
    pipeline: Pipeline, ex: Any, err: GatewayError, found: tuple[str, Adapter] | None
) -> ToolResult:
    if not ex.finished:
        ex.fail(err)
        ex.sent(err.message.encode("utf-8"))
        try:
            await pipeline.finish(ex)
        except GatewayError as receipt_err:
            log.error(
                "receipt for refused tool call %s not written: %s", ex.request_id, receipt_err
            )
    return ToolResult(
        err.message,
        True,
        ex.receipt_id,
        ex.adapter or (found[1] if found else None),
        ex.route.name if ex.route else None,
        err.code,
    )
