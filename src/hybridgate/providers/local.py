"""In-process transformers model (optionally with a PEFT LoRA adapter) as a provider.

The ``local`` extra (torch, transformers, peft) is imported only when a model
is first used, so the gateway installs and starts without it. Loading and
generation run in worker threads so the event loop keeps serving; one lock per
model serializes generation, because a single CPU/GPU model does not get
faster from concurrent ``generate`` calls, only less predictable.

Tokens are counted exactly with the model's tokenizer. Tool calling is not
supported: a small local model has no reliable tool-call format, and
pretending would hand clients malformed calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from hybridgate.config import LocalModel, RouteConfig
from hybridgate.errors import InvalidRequest, UpstreamError, UpstreamTimeout
from hybridgate.providers.base import Completion, Usage


@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    device: str
    lock: threading.Lock


@dataclass(frozen=True, slots=True)
class _Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


def _texts(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        out: list[str] = []
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                out.append(part["text"])
                continue
            raise InvalidRequest(f"{where}: local models accept text content only")
        return "\n".join(out)
    raise InvalidRequest(f"{where}: content must be a string or a list of text parts")


def chat_messages(request: dict[str, Any]) -> list[dict[str, str]]:
    """Validated ``{"role", "content"}`` string messages; tool use is refused."""
    if request.get("tools") or request.get("tool_choice") not in (None, "none"):
        raise InvalidRequest("tool calling is not supported by local models", param="tools")
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("`messages` must be a non-empty list", param="messages")
    out: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where}: each message must be an object")
        role = m.get("role")
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise InvalidRequest(f"{where}: role {role!r} is not supported by local models")
        if m.get("tool_calls"):
            raise InvalidRequest(f"{where}: tool calling is not supported by local models")
        out.append({"role": role, "content": _texts(m.get("content"), where)})
    return out


def plain_prompt(messages: list[dict[str, str]]) -> str:
    """Fallback prompt for tokenizers without a chat template."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    lines.append("assistant:")
    return "\n".join(lines)


def _stops(request: dict[str, Any]) -> list[str]:
    stop = request.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


def _cut_at_stop(text: str, stops: list[str]) -> tuple[str, bool]:
    cut = min((i for i in (text.find(s) for s in stops) if i != -1), default=-1)
    return (text[:cut], True) if cut != -1 else (text, False)


class LocalProvider:
    """Provider running a causal LM in this process (the ``local`` extra)."""

    def __init__(self, route: RouteConfig) -> None:
        if route.local is None:
            raise UpstreamError(f"route {route.name}: no `local:` section", retryable=False)
        self.route = route
        self._cfg: LocalModel = route.local
        self._loaded: _Loaded | None = None
        self._load_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------

    def _load(self) -> _Loaded:
        with self._load_lock:
            if self._loaded is not None:
                return self._loaded
            self._loaded = self._load_model()
            return self._loaded

    def _load_model(self) -> _Loaded:
        name = self.route.name
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise UpstreamError(
                f"route {name}: local models need the 'local' extra "
                "(pip install 'hybridgate[local]')",
                retryable=False,
                code="local_extra_missing",
            ) from None
        cfg = self._cfg
        dtype: Any = "auto" if cfg.dtype == "auto" else getattr(torch, cfg.dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(cfg.model_path, local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                cfg.model_path, dtype=dtype, local_files_only=True
            )
            if cfg.adapter_path:
                try:
                    from peft import PeftModel
                except ImportError:
                    raise UpstreamError(
                        f"route {name}: LoRA adapters need peft (pip install 'hybridgate[local]')",
                        retryable=False,
                        code="local_extra_missing",
                    ) from None
                model = PeftModel.from_pretrained(model, cfg.adapter_path, is_trainable=False)
            model.to(cfg.device)
            model.eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise UpstreamError(
                f"route {name}: cannot load local model ({type(exc).__name__})",
                retryable=True,
                code="local_model_unavailable",
            ) from exc
        if tokenizer.pad_token_id is None and tokenizer.eos_token_id is not None:
            tokenizer.pad_token = tokenizer.eos_token
        return _Loaded(model, tokenizer, cfg.device, threading.Lock())

    # -- generation --------------------------------------------------------------

    def _inputs(self, loaded: _Loaded, request: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        messages = chat_messages(request)
        tok = loaded.tokenizer
        if getattr(tok, "chat_template", None):
            prompt = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        else:
            enc = tok(plain_prompt(messages), return_tensors="pt")
        enc = enc.to(loaded.device)
        limit = self._cfg.max_new_tokens
        asked = request.get("max_completion_tokens", request.get("max_tokens"))
        if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
            limit = min(limit, asked)
        kwargs: dict[str, Any] = {
            "max_new_tokens": limit,
            "pad_token_id": tok.pad_token_id,
            "eos_token_id": tok.eos_token_id,
        }
        temperature = request.get("temperature")
        # Greedy unless sampling is asked for: reproducible answers by default.
        if isinstance(temperature, (int, float)) and temperature > 0:
            kwargs["do_sample"] = True
            kwargs["temperature"] = float(temperature)
            top_p = request.get("top_p")
            if isinstance(top_p, (int, float)) and 0 < top_p <= 1:
                kwargs["top_p"] = float(top_p)
        else:
            kwargs["do_sample"] = False
        return enc, kwargs

    def _finish(self, loaded: _Loaded, new_ids: Any, limit: int) -> str:
        eos = loaded.tokenizer.eos_token_id
        n = int(new_ids.shape[-1])
        if n >= limit and (n == 0 or int(new_ids[-1]) != eos):
            return "length"
        return "stop"

    def _generate(
        self, request: dict[str, Any], streamer: Any = None, stop: Any = None
    ) -> _Generation:
        loaded = self._load()
        enc, kwargs = self._inputs(loaded, request)
        if streamer is not None:
            kwargs["streamer"] = streamer
        if stop is not None:
            kwargs["stopping_criteria"] = stop
        prompt_len = int(enc["input_ids"].shape[-1])
        window = getattr(getattr(loaded.model, "config", None), "max_position_embeddings", None)
        if isinstance(window, int) and prompt_len + kwargs["max_new_tokens"] > window:
            if streamer is not None:
                streamer.end()
            raise InvalidRequest(
                f"prompt of {prompt_len} tokens plus {kwargs['max_new_tokens']} new tokens "
                f"exceeds this model's {window}-token context",
                param="messages",
            )
        try:
            with loaded.lock:
                import torch

                with torch.inference_mode():
                    out = loaded.model.generate(**enc, **kwargs)
        except (RuntimeError, ValueError, IndexError) as exc:
            raise UpstreamError(
                f"route {self.route.name}: local generation failed ({type(exc).__name__})"
            ) from exc
        finally:
            if streamer is not None:
                streamer.end()  # wake a waiting consumer even when generate() failed
        new_ids = out[0][prompt_len:]
        text = loaded.tokenizer.decode(new_ids, skip_special_tokens=True)
        finish = self._finish(loaded, new_ids, kwargs["max_new_tokens"])
        text, stopped = _cut_at_stop(text, _stops(request))
        return _Generation(text, prompt_len, int(new_ids.shape[-1]), "stop" if stopped else finish)

    def _body(self, gen: _Generation) -> dict[str, Any]:
        return {
            "id": "chatcmpl-" + uuid.uuid4().hex[:24],
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.route.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": gen.text, "refusal": None},
                    "finish_reason": gen.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": gen.prompt_tokens,
                "completion_tokens": gen.completion_tokens,
                "total_tokens": gen.prompt_tokens + gen.completion_tokens,
            },
        }

    async def chat(self, request: dict[str, Any]) -> Completion:
        chat_messages(request)  # refuse tool use before paying for a model load
        gen = await asyncio.to_thread(self._generate, request)
        # Counted with the model's own tokenizer: exact, so it counts as reported.
        return Completion(
            self._body(gen), Usage(gen.prompt_tokens, gen.completion_tokens, reported=True)
        )

    async def chat_stream(self, request: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        chat_messages(request)
        loaded = await asyncio.to_thread(self._load)
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        streamer = TextIteratorStreamer(
            loaded.tokenizer,
            skip_prompt=True,
            skip_special_tokens=True,
            timeout=self.route.timeout_s,
        )
        cancel = threading.Event()
        stop = StoppingCriteriaList([_cancel_criterion(cancel)])
        task = asyncio.ensure_future(asyncio.to_thread(self._generate, request, streamer, stop))
        cid = "chatcmpl-" + uuid.uuid4().hex[:24]
        created = int(time.time())

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": self.route.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        stops = _stops(request)
        sent = ""
        pieces: Iterator[str] = iter(streamer)
        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                piece = await asyncio.to_thread(next, pieces, None)
                if piece is None:
                    break
                if not piece:
                    continue
                # Stop sequences are matched on the accumulated text; one split across
                # pieces may leave its first piece already sent (documented).
                candidate = sent + piece
                text, stopped = _cut_at_stop(candidate, stops)
                if len(text) > len(sent):
                    yield chunk({"content": text[len(sent) :]})
                    sent = text
                if stopped:
                    cancel.set()
                    break
            gen = await task
        except queue.Empty:
            cancel.set()
            raise UpstreamTimeout(
                f"route {self.route.name}: local model produced nothing for "
                f"{self.route.timeout_s:g}s"
            ) from None
        finally:
            cancel.set()
            if not task.done():
                with contextlib.suppress(UpstreamError, InvalidRequest):
                    await task
        yield chunk({}, gen.finish_reason)
        done = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": self.route.model,
            "choices": [],
            "usage": self._body(gen)["usage"],
        }
        yield done

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        raise UpstreamError(
            f"route {self.route.name}: embeddings are not supported by local chat models",
            retryable=False,
            code="not_supported",
        )

    async def aclose(self) -> None:
        self._loaded = None  # drop references so the weights can be freed


def _cancel_criterion(cancel: threading.Event) -> Any:
    """A StoppingCriteria that ends generation once the consumer has gone away."""
    import torch
    from transformers import StoppingCriteria

    class _Cancel(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full(
                (input_ids.shape[0],), cancel.is_set(), dtype=torch.bool, device=input_ids.device
            )

    return _Cancel()
