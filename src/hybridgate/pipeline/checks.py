"""Request-shape checks the pipeline owns: chat bodies, embeddings input, output limits.

They run before anything is scanned or sent, so a malformed request is a 400
in the client's own format and never reaches a stage that would choke on it.
"""

from __future__ import annotations

from typing import Any

from hybridgate.errors import InvalidRequest
from hybridgate.jsonlimits import MAX_DEPTH, text_deeper_than

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
#: The largest output limit a request may ask for (no model comes close).
MAX_OUTPUT_TOKENS = 2**31 - 1
#: Choices per request (OpenAI's ``n``); each is billed.
MAX_N = 128


#: The longest model name a request may give (real ones are a few dozen characters);
#: it is echoed in errors, logs and receipts, so it is bounded.
MAX_MODEL_CHARS = 256


def model_request(body: Any) -> dict[str, Any]:
    """A JSON object naming a model: what every API's body must be first (generation
    and embeddings alike)."""
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model or len(model) > MAX_MODEL_CHARS:
        raise InvalidRequest(
            f"`model` must be a non-empty string of at most {MAX_MODEL_CHARS} characters",
            param="model",
        )
    return body


def validate_chat(raw: Any) -> dict[str, Any]:
    """A chat-completions body: model, messages with known roles, bounded limits."""
    body = model_request(raw)
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise InvalidRequest("`messages` must be a non-empty array", param="messages")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        if m.get("role") not in _ROLES:
            raise InvalidRequest(
                f"messages[{i}].role is missing or unknown", param=f"messages[{i}]"
            )
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InvalidRequest(
                f"messages[{i}].content must be a string or an array", param=f"messages[{i}]"
            )
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean", param="stream")
    check_output_limits(body)
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_N):
        raise InvalidRequest(f"`n` must be an integer from 1 to {MAX_N}", param="n")
    for i, m in enumerate(msgs):
        calls = m.get("tool_calls")
        for j, call in enumerate(calls if isinstance(calls, list) else []):
            fn = call.get("function") if isinstance(call, dict) else None
            args = fn.get("arguments") if isinstance(fn, dict) else None
            if isinstance(args, str) and text_deeper_than(args):
                where = f"messages[{i}].tool_calls[{j}].function.arguments"
                raise InvalidRequest(
                    f"{where} is nested more than {MAX_DEPTH} levels deep", param=where
                )
    return body


def check_output_limits(body: dict[str, Any]) -> None:
    """Output-token limits are positive integers no model comes close to exceeding."""
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        v = body.get(name)
        if v is not None and (
            not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= MAX_OUTPUT_TOKENS
        ):
            raise InvalidRequest(
                f"`{name}` must be an integer from 1 to {MAX_OUTPUT_TOKENS}", param=name
            )


def validate_embeddings(body: Any) -> tuple[dict[str, Any], str, bool]:
    """An embeddings body: returns it, its model, and whether its input is token ids
    (text the scanner cannot read without the client's tokenizer)."""
    body = model_request(body)
    model, inp = body["model"], body.get("input")
    if not (
        isinstance(inp, str)
        or (isinstance(inp, list) and inp and all(isinstance(x, str | int) for x in inp))
        or (isinstance(inp, list) and inp and all(_token_ids(x) for x in inp))
    ):
        raise InvalidRequest("`input` must be a string or a non-empty array", param="input")
    unreadable = isinstance(inp, list) and any(not isinstance(x, str) for x in inp)
    return body, model, unreadable


def _token_ids(x: Any) -> bool:
    return (
        isinstance(x, list)
        and bool(x)
        and all(isinstance(t, int) and not isinstance(t, bool) for t in x)
    )
