"""Loopback stand-ins for LoRA-serving engines, built on :class:`OpenAIUpstream`.

Each speaks the endpoints the gateway uses on the real engine, as documented
by its project, and records what it received:

* :class:`VLLMUpstream` — vLLM's OpenAI server with ``--enable-lora`` and
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``: ``POST /v1/load_lora_adapter``
  ``{"lora_name", "lora_path"}``, ``POST /v1/unload_lora_adapter``
  ``{"lora_name"}``, an adapter addressed by its ``lora_name`` as the
  ``model``, and ``GET /v1/models`` listing adapters with their ``parent``.
  ``max_loras`` is enforced as a hard limit on adapters loaded at once (the
  real server's ``--max-loras`` bounds adapters per batch and evicts from a
  CPU cache; refusing makes a gateway that overruns its slots visible).
* :class:`LoraxUpstream` — LoRAX's OpenAI-compatible chat, where ``model`` is
  the adapter id and adapters load on first use (``adapter_source: local``
  for a path on the server's disk).
* :class:`LlamaCppUpstream` — llama.cpp's ``llama-server`` started with
  ``--lora FILE`` adapters: ``GET /lora-adapters`` lists them (id, path,
  scale), ``POST /lora-adapters`` sets global scales, and a request's
  ``lora: [{"id", "scale"}]`` field applies adapters to that request only.

Answers come from the OpenAI stand-in, prefixed with the adapter that
answered (``[adapter NAME]``), so tests can tell which weights were used.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from hybridgate.testing._server import Call, Handler
from hybridgate.testing.openai_upstream import OpenAIUpstream


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(obj).encode(), status=status, content_type="application/json"
    )


class _Tagging(OpenAIUpstream):
    """The OpenAI stand-in, answering as ``[adapter NAME] <reply>`` when an adapter served."""

    def __init__(self, *, base_model: str, **behaviour: Any) -> None:
        super().__init__(**behaviour)
        self.base_model = base_model
        self._lock = threading.Lock()
        #: every (model, adapter) a chat request was answered with, in order
        self.served: list[tuple[str, str | None]] = []

    def _adapter_for(self, body: dict[str, Any]) -> str | web.Response | None:
        raise NotImplementedError

    async def _tagged_chat(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body if isinstance(call.body, dict) else {}
        adapter = self._adapter_for(body)
        if isinstance(adapter, web.Response):
            return adapter
        with self._lock:
            self.served.append((str(body.get("model")), adapter))
        if adapter is not None and call.behaviour.reply is None:
            tagged = replace(call.behaviour, reply=f"[adapter {adapter}] ok")
            call = Call(call.n, call.body, tagged)
        return await self._chat(request, call)


class VLLMUpstream(_Tagging):
    """vLLM's OpenAI server with runtime LoRA loading; ``max_loras`` slots."""

    def __init__(self, *, base_model: str = "base-model", max_loras: int = 2, **kw: Any) -> None:
        super().__init__(base_model=base_model, **kw)
        self.max_loras = max_loras
        self.loaded: dict[str, str] = {}  # lora_name -> lora_path
        self.admin_calls: list[tuple[str, str]] = []  # ("load"|"unload", name)

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/chat/completions", self._tagged_chat),
            ("GET", "/models", self._list_models),
            ("POST", "/load_lora_adapter", self._load),
            ("POST", "/unload_lora_adapter", self._unload),
        ]

    def _adapter_for(self, body: dict[str, Any]) -> str | web.Response | None:
        model = body.get("model")
        if model == self.base_model:
            return None
        with self._lock:
            if model in self.loaded:
                return str(model)
        return self._error(404, f"The model `{model}` does not exist.")

    async def _list_models(self, request: web.Request, call: Call) -> web.StreamResponse:
        with self._lock:
            loras = dict(self.loaded)
        data = [{"id": self.base_model, "object": "model", "root": self.base_model, "parent": None}]
        data += [
            {"id": n, "object": "model", "root": p, "parent": self.base_model}
            for n, p in loras.items()
        ]
        return _json({"object": "list", "data": data})

    async def _load(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body if isinstance(call.body, dict) else {}
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not isinstance(path, str):
            return self._error(400, "lora_name and lora_path are required")
        if not (Path(path) / "adapter_config.json").is_file():
            return self._error(400, f"No adapter found for {path}")
        with self._lock:
            self.admin_calls.append(("load", name))
            if name in self.loaded:
                return self._error(400, f"The lora adapter '{name}' has already been loaded.")
            if len(self.loaded) >= self.max_loras:
                return self._error(400, f"max_loras={self.max_loras} adapters already loaded")
            self.loaded[name] = path
        return web.Response(text=f"Success: LoRA adapter '{name}' added successfully.")

    async def _unload(self, request: web.Request, call: Call) -> web.StreamResponse:
        body = call.body if isinstance(call.body, dict) else {}
        name = body.get("lora_name")
        with self._lock:
            self.admin_calls.append(("unload", str(name)))
            if name not in self.loaded:
                return self._error(404, f"The lora adapter '{name}' cannot be found.")
            del self.loaded[name]
        return web.Response(text=f"Success: LoRA adapter '{name}' removed successfully.")


class LoraxUpstream(_Tagging):
    """LoRAX's OpenAI-compatible chat: ``model`` is the adapter id, loaded on first use."""

    def __init__(self, *, base_model: str = "base-model", **kw: Any) -> None:
        super().__init__(base_model=base_model, **kw)
        self.loaded: list[str] = []

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [("POST", "/chat/completions", self._tagged_chat)]

    def _adapter_for(self, body: dict[str, Any]) -> str | web.Response | None:
        model = body.get("model")
        if model in (None, "", self.base_model):
            return None
        source = body.get("adapter_source", "hub")
        if source != "local" or not (Path(str(model)) / "adapter_config.json").is_file():
            return self._error(400, f"adapter {model} not found (source {source})")
        with self._lock:
            if model not in self.loaded:
                self.loaded.append(str(model))
        return Path(str(model)).name


class LlamaCppUpstream(_Tagging):
    """llama.cpp's ``llama-server`` with adapters given at start (``--lora``)."""

    _base_path = ""

    def __init__(self, *, loras: list[str], base_model: str = "base-model", **kw: Any) -> None:
        super().__init__(base_model=base_model, **kw)
        self.loras = [{"id": i, "path": p, "scale": 0.0} for i, p in enumerate(loras)]

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("POST", "/v1/chat/completions", self._tagged_chat),
            ("GET", "/lora-adapters", self._list),
            ("POST", "/lora-adapters", self._set),
        ]

    async def _list(self, request: web.Request, call: Call) -> web.StreamResponse:
        with self._lock:
            return _json([dict(a) for a in self.loras])

    async def _set(self, request: web.Request, call: Call) -> web.StreamResponse:
        items = call.body if isinstance(call.body, list) else None
        if items is None:
            return self._error(400, "expected a list of {id, scale}")
        with self._lock:
            for it in items:
                if isinstance(it, dict) and isinstance(it.get("id"), int):
                    if not 0 <= it["id"] < len(self.loras):
                        return self._error(400, "invalid adapter id")
                    self.loras[it["id"]]["scale"] = float(it.get("scale", 0.0))
        return _json({"success": True})

    def _adapter_for(self, body: dict[str, Any]) -> str | web.Response | None:
        lora = body.get("lora")
        if lora is None:
            with self._lock:
                active = [a for a in self.loras if a["scale"]]
            return Path(str(active[0]["path"])).name if active else None
        if not isinstance(lora, list):
            return self._error(400, "lora must be a list")
        chosen = None
        for it in lora:
            if not isinstance(it, dict) or not isinstance(it.get("id"), int):
                return self._error(400, "lora items need an integer id")
            if not 0 <= it["id"] < len(self.loras):
                return self._error(400, "invalid adapter id")
            if float(it.get("scale", 0.0)):
                chosen = Path(str(self.loras[it["id"]]["path"])).name
        return chosen
