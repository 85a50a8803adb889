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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hybridgate.adapters import DEFAULT_INPUT_SCHEMA, Adapter
from hybridgate.api.common import Authenticate, json_bytes
from hybridgate.errors import GatewayError, InvalidRequest, NotFound
from hybridgate.keys import KeyInfo
from hybridgate.pipeline import Exchange, Pipeline

log = logging.getLogger("hybridgate.api")

MAX_ARGUMENT_BYTES = 256 * 1024


@dataclass(frozen=True)
class ToolDeps:
    """What the tool endpoints use, and nothing else of the gateway."""

    pipeline: Pipeline
    #: The app's one authenticator.
    authenticate: Authenticate
    #: ``(model name, adapter)`` for every registered adapter some route serves (read per call).
    adapter_models: Callable[[], list[tuple[str, Adapter]]]
    max_body_bytes: int


@dataclass(frozen=True, slots=True)
class ToolResult:
    text: str
    is_error: bool
    receipt_id: str
    adapter: Adapter | None
    route: str | None
    error_code: str | None = None


def tool_definitions(deps: ToolDeps) -> list[tuple[str, Adapter]]:
    """``(model name, adapter)`` for every adapter a route serves, sorted by tool name."""
    return sorted(deps.adapter_models(), key=lambda t: t[1].name)


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
    deps: ToolDeps,
    key: KeyInfo,
    name: str,
    arguments: Any,
    *,
    api: str,
    max_tokens: int | None = None,
) -> ToolResult:
    """Run one adapter tool call through the pipeline; always ends in one receipt.

    The exchange commits what the agent is given: the answer text, or the
    refusal's message.
    """
    pipeline = deps.pipeline
    raw = json_bytes({"tool": name, "arguments": arguments})
    found: tuple[str, Adapter] | None = None
    ex: Exchange | None = None
    try:
        async with pipeline.exchange(api, key, error_bytes=_refusal_text) as ex:
            ex.raw_body = raw
            if len(raw) > MAX_ARGUMENT_BYTES:
                raise InvalidRequest("tool arguments are larger than 256 KiB", param="arguments")
            found = next(((m, a) for m, a in tool_definitions(deps) if a.name == name), None)
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
        # closed: the receipt is durable before the answer leaves
    except GatewayError as err:  # a refusal (unexpected errors arrive as internal errors)
        assert ex is not None
        return ToolResult(
            err.message,
            True,
            ex.receipt_id,
            ex.adapter or (found[1] if found else None),
            ex.route.name if ex.route else None,
            err.code,
        )
    return ToolResult(text, False, ex.receipt_id, ex.adapter, ex.route.name if ex.route else None)


def _refusal_text(err: GatewayError) -> bytes:
    """A refused tool call answers with the error's message (committed as such)."""
    return err.message.encode("utf-8")
