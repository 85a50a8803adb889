"""Legacy OpenAI Completions (``POST /v1/completions``) <-> Chat Completions.

Pure. Clients such as llama-index still default to the legacy endpoint; every
route speaks chat, so a prompt becomes one user message and the answer's
message becomes ``choices[].text``. Fields with no chat equivalent
(``suffix``, ``echo``, ``best_of`` > 1, batched prompts) are refused by name.
"""

from __future__ import annotations

from typing import Any

from hybridgate.errors import InvalidRequest

_COPIED = (
    "model",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "logit_bias",
    "user",
    "stream",
    "stream_options",
)


def completions_to_chat(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest(
            "`prompt` must be one string (batched and token-id prompts have no chat translation)",
            param="prompt",
        )
    for name in ("suffix", "echo", "logprobs"):
        if body.get(name) not in (None, False):
            raise InvalidRequest(f"`{name}` has no translation on this gateway", param=name)
    if body.get("best_of") not in (None, 1):
        raise InvalidRequest("`best_of` has no translation on this gateway", param="best_of")
    known = {*_COPIED, "prompt", "suffix", "echo", "logprobs", "best_of"}
    for key in body:
        if key not in known:
            raise InvalidRequest(f"`{key}` has no translation on this gateway", param=key)
    chat: dict[str, Any] = {k: body[k] for k in _COPIED if body.get(k) is not None}
    chat["messages"] = [{"role": "user", "content": prompt}]
    if "max_tokens" not in chat:
        chat["max_tokens"] = 16  # the legacy API's default
    return chat


def chat_to_completion(chat: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for c in chat.get("choices") or ():
        if not isinstance(c, dict):
            continue
        msg = c.get("message") if isinstance(c.get("message"), dict) else {}
        assert isinstance(msg, dict)
        text = msg.get("content")
        choices.append(
            {
                "index": c.get("index", 0),
                "text": text if isinstance(text, str) else "",
                "logprobs": None,
                "finish_reason": c.get("finish_reason") or "stop",
            }
        )
    raw_id = str(chat.get("id") or "")
    return {
        "id": "cmpl-" + raw_id.removeprefix("chatcmpl-"),
        "object": "text_completion",
        "created": chat.get("created"),
        "model": chat.get("model"),
        "choices": choices,
        "usage": chat.get("usage"),
    }


def chunk_to_completion(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = []
    for c in chunk.get("choices") or ():
        if not isinstance(c, dict):
            continue
        delta = c.get("delta") if isinstance(c.get("delta"), dict) else {}
        assert isinstance(delta, dict)
        text = delta.get("content")
        choices.append(
            {
                "index": c.get("index", 0),
                "text": text if isinstance(text, str) else "",
                "logprobs": None,
                "finish_reason": c.get("finish_reason"),
            }
        )
    raw_id = str(chunk.get("id") or "")
    out: dict[str, Any] = {
        "id": "cmpl-" + raw_id.removeprefix("chatcmpl-"),
        "object": "text_completion",
        "created": chunk.get("created"),
        "model": chunk.get("model"),
        "choices": choices,
    }
    if "usage" in chunk:
        out["usage"] = chunk["usage"]
    return out
