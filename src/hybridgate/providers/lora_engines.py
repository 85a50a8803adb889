"""External LoRA-serving engines as route kinds: vLLM, LoRAX, llama.cpp's server.

Each is an OpenAI-compatible server that can answer with an adapter; they
differ in how an adapter gets there:

* ``vllm`` — adapters are loaded at run time (``POST /v1/load_lora_adapter``,
  needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True`` on the server) and then
  addressed by name as the ``model``. The engine holds at most ``lora_slots``
  adapters (set it to the server's ``--max-loras``): the gateway loads an
  adapter on its first request, unloads the least recently used idle one to
  make room, and never unloads one a request is still using; when every slot
  is busy a request waits for one (up to the route's timeout, then a
  retryable ``lora_slots_busy``). The served name is ``NAME-<id prefix>``, so
  re-registered weights are a new name, never stale ones.
* ``lorax`` — adapters load on first use; the ``model`` is the adapter id (its
  stored path, ``adapter_source: local``), so the server must see the
  gateway's adapter directory.
* ``llamacpp`` — ``llama-server`` cannot load adapters at run time: start it
  with ``--lora`` for each registered GGUF adapter (the stored copy under
  ``HOME/adapters/<sha256>/``) and ``--lora-init-without-apply``. The gateway
  reads ``GET /lora-adapters`` and applies exactly one adapter per request
  (``lora: [{"id", "scale"}]``, every other adapter at scale 0).

Chat requests themselves go through :class:`OpenAICompatProvider` (one per
served model name), so streaming, usage and protocol checks are the same as
for any OpenAI-compatible route.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig
from hybridgate.errors import UpstreamError
from hybridgate.providers._http import (
    HTTPClient,
    error_message_from_body,
    status_error,
    transport_error,
)
from hybridgate.providers.base import Completion
from hybridgate.providers.openai_compat import OpenAICompatProvider


class _PerModel:
    """OpenAI-compatible providers for one route, one per ``model`` name sent upstream."""

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        self.base = OpenAICompatProvider(route)
        self._by_model: dict[str, OpenAICompatProvider] = {}

    def for_model(self, model: str) -> OpenAICompatProvider:
        if model == self.route.model:
            return self.base
        p = self._by_model.get(model)
        if p is None:
            p = OpenAICompatProvider(self.route.model_copy(update={"model": model}))
            self._by_model[model] = p
        return p

    def drop(self, model: str) -> OpenAICompatProvider | None:
        return self._by_model.pop(model, None)

    async def aclose(self) -> None:
        await self.base.aclose()
        for p in self._by_model.values():
            await p.aclose()
        self._by_model.clear()


class _AdapterEngine:
    """Shared shape: base requests as usual, adapter requests through ``_call``."""

    serves_adapters = True

    def __init__(self, route: RouteConfig) -> None:
        self.route = route
        self._models = _PerModel(route)
        headers = {"content-type": "application/json"}
        if route.api_key:
            headers["authorization"] = f"Bearer {route.api_key}"
        headers.update(route.headers)
        self._http = HTTPClient(route, headers)
        self._root = (route.base_url or "").rstrip("/")

    async def _admin(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        """One management call (load/unload/list); transport failures are retryable errors."""
        try:
            async with self._http.session().request(
                method, self._root + path, json=body, timeout=self._http.timeout(stream=False)
            ) as resp:
                return resp.status, await resp.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(self.route, exc) from None

    async def _prepare(
        self, request: dict[str, Any], adapter: Adapter
    ) -> tuple[OpenAICompatProvider, dict[str, Any]]:
        raise NotImplementedError

    async def _release(self, adapter: Adapter) -> None:
        return None

    async def chat(self, request: dict[str, Any], adapter: Adapter | None = None) -> Completion:
        if adapter is None:
            return await self._models.base.chat(request)
        provider, body = await self._prepare(request, adapter)
        try:
            return await provider.chat(body)
        finally:
            await self._release(adapter)

    async def chat_stream(
        self, request: dict[str, Any], adapter: Adapter | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        if adapter is None:
            async for chunk in self._models.base.chat_stream(request):
                yield chunk
            return
        provider, body = await self._prepare(request, adapter)
        try:
            async for chunk in provider.chat_stream(body):
                yield chunk
        finally:
            await self._release(adapter)

    async def embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        return await self._models.base.embeddings(request)

    async def aclose(self) -> None:
        await self._models.aclose()
        await self._http.aclose()


def served_name(adapter: Adapter) -> str:
    """The name an adapter is loaded under: new weights, new name."""
    return f"{adapter.name}-{adapter.sha256[:12]}"


class VLLMProvider(_AdapterEngine):
    """vLLM's OpenAI server with runtime LoRA loading, within ``lora_slots``."""

    def __init__(self, route: RouteConfig) -> None:
        super().__init__(route)
        self.slots = route.lora_slots
        self._loaded: OrderedDict[str, int] = OrderedDict()  # served name -> requests in flight
        self._cond: asyncio.Condition | None = None
        self._synced = False

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:
            self._cond = asyncio.Condition()
        return self._cond

    async def _sync(self) -> None:
        """Adopt adapters the server already holds (e.g. loaded before a gateway restart)."""
        status, raw = await self._admin("GET", "/models")
        if status >= 400:
            raise status_error(self.route, status, error_message_from_body(raw))
        try:
            data = json.loads(raw).get("data", [])
        except (ValueError, AttributeError):
            data = []
        for m in data if isinstance(data, list) else []:
            if isinstance(m, dict) and m.get("parent") and isinstance(m.get("id"), str):
                self._loaded.setdefault(m["id"], 0)
        self._synced = True

    def loaded(self) -> list[str]:
        """Served names the gateway believes are loaded, least recently used first."""
        return list(self._loaded)

    async def _prepare(
        self, request: dict[str, Any], adapter: Adapter
    ) -> tuple[OpenAICompatProvider, dict[str, Any]]:
        name = served_name(adapter)
        cond = self._condition()
        async with cond:
            if not self._synced:
                await self._sync()
            if name in self._loaded:
                self._loaded[name] += 1
                self._loaded.move_to_end(name)
                return self._models.for_model(name), request
            try:
                await asyncio.wait_for(
                    cond.wait_for(
                        lambda: (
                            len(self._loaded) < self.slots
                            or any(n == 0 for n in self._loaded.values())
                        )
                    ),
                    timeout=self.route.timeout_s,
                )
            except TimeoutError:
                raise UpstreamError(
                    f"route {self.route.name}: all {self.slots} LoRA slots are busy",
                    retryable=True,
                    code="lora_slots_busy",
                ) from None
            while len(self._loaded) >= self.slots:
                victim = next(n for n, users in self._loaded.items() if users == 0)
                await self._unload(victim)
            await self._load(name, adapter)
            self._loaded[name] = 1
            return self._models.for_model(name), request

    async def _load(self, name: str, adapter: Adapter) -> None:
        status, raw = await self._admin(
            "POST", "/load_lora_adapter", {"lora_name": name, "lora_path": adapter.path}
        )
        if status < 400 or b"already been loaded" in raw:
            return
        message = error_message_from_body(raw)
        raise UpstreamError(
            f"route {self.route.name}: could not load adapter {adapter.name!r} "
            f"(HTTP {status}: {message[:200]})",
            retryable=status >= 500,
            code="adapter_unavailable",
            upstream_status=status,
        )

    async def _unload(self, name: str) -> None:
        status, raw = await self._admin("POST", "/unload_lora_adapter", {"lora_name": name})
        if status >= 400 and status != 404:  # 404: already gone, which is what we wanted
            raise status_error(self.route, status, error_message_from_body(raw))
        self._loaded.pop(name, None)
        dropped = self._models.drop(name)
        if dropped is not None:
            await dropped.aclose()

    async def _release(self, adapter: Adapter) -> None:
        name = served_name(adapter)
        cond = self._condition()
        async with cond:
            if self._loaded.get(name, 0) > 0:
                self._loaded[name] -= 1
            cond.notify_all()


class LoraxProvider(_AdapterEngine):
    """LoRAX: the adapter id is the ``model``; LoRAX loads and caches adapters itself."""

    async def _prepare(
        self, request: dict[str, Any], adapter: Adapter
    ) -> tuple[OpenAICompatProvider, dict[str, Any]]:
        return self._models.for_model(adapter.path), {**request, "adapter_source": "local"}


class LlamaCppProvider(_AdapterEngine):
    """llama.cpp's server: adapters given at start, one applied per request by id."""

    def __init__(self, route: RouteConfig) -> None:
        super().__init__(route)
        base = (route.base_url or "").rstrip("/")
        self._root = base[: -len("/v1")] if base.endswith("/v1") else base
        self._ids: dict[str, int] = {}
        self._count = 0

    async def _refresh(self) -> None:
        status, raw = await self._admin("GET", "/lora-adapters")
        if status >= 400:
            raise status_error(self.route, status, error_message_from_body(raw))
        try:
            items = json.loads(raw)
        except ValueError:
            items = None
        if not isinstance(items, list):
            raise UpstreamError(
                f"route {self.route.name}: /lora-adapters did not answer a list",
                code="upstream_protocol_error",
            )
        self._ids = {}
        for it in items:
            if isinstance(it, dict) and isinstance(it.get("id"), int):
                self._ids[str(Path(str(it.get("path", ""))))] = it["id"]
        self._count = len(items)

    def _match(self, adapter: Adapter) -> int | None:
        stored = str(Path(adapter.path))
        if stored in self._ids:
            return self._ids[stored]
        for path, i in self._ids.items():  # the same content-addressed copy, mounted elsewhere
            p = Path(path)
            if p.parent.name == adapter.sha256 and p.name == Path(stored).name:
                return i
        return None

    async def _prepare(
        self, request: dict[str, Any], adapter: Adapter
    ) -> tuple[OpenAICompatProvider, dict[str, Any]]:
        found = self._match(adapter)
        if found is None:
            await self._refresh()
            found = self._match(adapter)
        if found is None:
            raise UpstreamError(
                f"route {self.route.name}: adapter {adapter.name!r} is not loaded on this "
                "llama-server (start it with --lora for the stored copy)",
                retryable=False,
                code="adapter_unavailable",
            )
        lora = [{"id": i, "scale": 1.0 if i == found else 0.0} for i in range(self._count)]
        return self._models.base, {**request, "lora": lora}


def build_lora_engine(route: RouteConfig) -> VLLMProvider | LoraxProvider | LlamaCppProvider:
    if route.provider == "vllm":
        return VLLMProvider(route)
    if route.provider == "lorax":
        return LoraxProvider(route)
    return LlamaCppProvider(route)
