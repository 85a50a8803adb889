"""The in-process serving engine: one base model, many LoRA adapters, mixed batches.

One engine thread owns the model. Requests arrive from the event loop through
a queue; each loop iteration the thread

1. **admits** waiting requests into free batch rows, loading each one's
   adapter first if it is not in memory (LRU eviction under a byte budget;
   a request whose adapter cannot fit while others are busy waits);
2. **prefills** the admitted prompts together (left-padded, one forward);
3. **decodes** one token for every running row in one forward, whatever
   adapter each row uses: PEFT applies each row's LoRA to its own row
   (``adapter_names``), so rows of one batch use different adapters;
4. hands each row's new text to its caller and retires finished rows, whose
   places the next iteration fills (continuous batching).

The KV cache of the running batch is kept as one left-padded tensor per
layer with an attention mask; rows joining are padded to the batch's length
and rows leaving are cut out, so a step never recomputes a prompt.

Generation never runs on the event loop: callers await an ``asyncio.Queue``
the thread feeds with ``call_soon_threadsafe``. Greedy decoding of a row
gives the same tokens as that request run alone (tests check this).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from hybridgate.errors import GatewayError, InvalidRequest, UpstreamError
from hybridgate.serving.metrics import ServingMetrics
from hybridgate.serving.requests import (
    AdapterRef,
    Delta,
    Done,
    EngineConfig,
    Event,
    Failed,
    GenRequest,
)
from hybridgate.serving.slots import AdapterSlots
from hybridgate.serving.text import TextTracker

__all__ = [
    "AdapterRef",
    "Delta",
    "Done",
    "EngineConfig",
    "Event",
    "Failed",
    "GenRequest",
    "ServingEngine",
]

log = logging.getLogger("hybridgate.serving")

BASE = "__base__"  # PEFT's name for "no adapter on this row"


@dataclass(eq=False)
class _Row:
    req: GenRequest
    emit: Callable[[Event], None]
    submitted: float = field(default_factory=time.perf_counter)
    tracker: TextTracker = field(default_factory=TextTracker)
    generated: list[int] = field(default_factory=list)
    adapter_name: str = BASE
    slot_key: str | None = None
    pos: int = 0
    ttft_s: float = 0.0
    cancelled: bool = False
    finished: bool = False
    generator: Any = None

    @property
    def label(self) -> str:
        return self.req.adapter.name if self.req.adapter else "base"


class ServingEngine:
    """Continuous batching over one base model with LoRA adapters loaded on demand."""

    def __init__(self, cfg: EngineConfig, metrics: ServingMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics if metrics is not None else ServingMetrics()
        self.slots = AdapterSlots(cfg.adapter_memory_bytes, cfg.max_adapters)
        self._cv = threading.Condition()
        self._pending: deque[_Row] = deque()
        self._rows: list[_Row] = []
        self._kv: list[tuple[Any, Any]] | None = None
        self._mask: Any = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._paused = False
        self._load_lock = threading.Lock()
        self._tok_lock = threading.Lock()
        self._base: Any = None
        self._peft: Any = None
        self.tokenizer: Any = None
        self.window: int | None = None
        self._eos: set[int] = set()
        self.steps = 0  # decode steps run (for tests and benchmarks)
        self.max_rows_seen = 0

    # -- loading ------------------------------------------------------------------
    def load(self) -> None:
        """Load the base model and start the engine thread (idempotent, blocking)."""
        with self._load_lock:
            if self._thread is not None:
                return
            if self._closed:
                raise UpstreamError(f"route {self.cfg.name}: engine closed", retryable=True)
            self._load_base()
            self._thread = threading.Thread(
                target=self._run, name=f"hybridgate-engine-{self.cfg.name}", daemon=True
            )
            self._thread.start()

    def _load_base(self) -> None:
        name = self.cfg.name
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
        dtype: Any = "auto" if self.cfg.dtype == "auto" else getattr(torch, self.cfg.dtype)
        try:
            tok: Any = AutoTokenizer.from_pretrained(self.cfg.model_path, local_files_only=True)
            model: Any = AutoModelForCausalLM.from_pretrained(
                self.cfg.model_path, dtype=dtype, local_files_only=True
            )
            model.to(self.cfg.device)
            model.eval()
        except (OSError, ValueError, RuntimeError) as exc:
            raise UpstreamError(
                f"route {name}: cannot load local model ({type(exc).__name__})",
                retryable=True,
                code="local_model_unavailable",
            ) from exc
        if tok.pad_token_id is None and tok.eos_token_id is not None:
            tok.pad_token = tok.eos_token
        self.tokenizer, self._base = tok, model
        window = getattr(model.config, "max_position_embeddings", None)
        self.window = window if isinstance(window, int) else None
        eos = getattr(model.generation_config, "eos_token_id", None) or tok.eos_token_id
        self._eos = set(eos) if isinstance(eos, list) else ({eos} if eos is not None else set())

    # -- tokenizer helpers (shared with the engine thread, so under a lock) -------------
    def encode_chat(self, messages: list[dict[str, Any]], tools: list[Any] | None) -> list[int]:
        """Prompt ids through the model's chat template (tools rendered by it too)."""
        tok = self.tokenizer
        with self._tok_lock:
            if getattr(tok, "chat_template", None):
                kwargs: dict[str, Any] = {"add_generation_prompt": True, "tokenize": False}
                if tools:
                    kwargs["tools"] = tools
                try:
                    prompt = tok.apply_chat_template(messages, **kwargs)
                except Exception as exc:  # a template may refuse a message shape
                    raise InvalidRequest(
                        f"this model's chat template cannot render the request "
                        f"({type(exc).__name__})",
                        param="messages",
                    ) from None
                return list(tok(prompt, add_special_tokens=False)["input_ids"])
            if tools:
                raise InvalidRequest(
                    "this model has no chat template, so it cannot take tools", param="tools"
                )
            lines = [f"{m['role']}: {m.get('content') or ''}" for m in messages]
            lines.append("assistant:")
            return list(tok("\n".join(lines))["input_ids"])

    def _decode(self, ids: list[int]) -> str:
        with self._tok_lock:
            return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    # -- the async face -------------------------------------------------------------
    async def generate(self, req: GenRequest) -> AsyncIterator[Delta | Done]:
        """Text deltas, then one :class:`Done`. Cancelling the iterator frees the row."""
        await asyncio.to_thread(self.load)
        if self.window is not None and len(req.prompt_ids) + req.max_new_tokens > self.window:
            raise InvalidRequest(
                f"prompt of {len(req.prompt_ids)} tokens plus {req.max_new_tokens} new tokens "
                f"exceeds this model's {self.window}-token context",
                param="messages",
            )
        if not req.prompt_ids:
            raise InvalidRequest("the prompt is empty", param="messages")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def emit(ev: Event) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
                loop.call_soon_threadsafe(queue.put_nowait, ev)

        row = _Row(req, emit)
        row.tracker = TextTracker(req.stops)
        with self._cv:
            if self._closed:
                raise UpstreamError(f"route {self.cfg.name}: engine closed", retryable=True)
            self._pending.append(row)
            self.metrics.queued.labels(self.cfg.name).set(len(self._pending))
            self._cv.notify()
        try:
            while True:
                ev = await queue.get()
                if isinstance(ev, Failed):
                    raise ev.error
                yield ev
                if isinstance(ev, Done):
                    return
        finally:
            row.cancelled = True
            with self._cv:
                self._cv.notify()

    def pause(self) -> None:
        """Stop admitting and stepping (requests queue up); for tests and benchmarks."""
        with self._cv:
            self._paused = True

    def resume(self) -> None:
        with self._cv:
            self._paused = False
            self._cv.notify_all()

    @property
    def queued(self) -> int:
        with self._cv:
            return len(self._pending)

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._base = self._peft = None

    # -- the engine thread --------------------------------------------------------------
    def _run(self) -> None:
        import torch

        while True:
            with self._cv:
                while not self._closed and (self._paused or (not self._pending and not self._rows)):
                    self._cv.wait()
                if self._closed:
                    err = UpstreamError(f"route {self.cfg.name}: engine closed", retryable=True)
                    for r in [*self._pending, *self._rows]:
                        self._fail(r, err)
                    self._pending.clear()
                    self._rows.clear()
                    return
                waiting = list(self._pending)
                self._pending.clear()
            try:
                with torch.inference_mode():
                    admitted, deferred = self._admit(waiting)
                    with self._cv:
                        self._pending.extendleft(reversed(deferred))
                        self.metrics.queued.labels(self.cfg.name).set(len(self._pending))
                    if admitted:
                        self._prefill(admitted)
                    if self._rows:
                        self._step()
                    elif deferred and not admitted:
                        with self._cv:  # nothing runs and nothing fits: wait for a change
                            self._cv.wait(timeout=0.05)
            except Exception as exc:  # a failed forward fails its batch, never the thread
                log.exception("engine %s: batch failed", self.cfg.name)
                err = UpstreamError(
                    f"route {self.cfg.name}: local generation failed ({type(exc).__name__})"
                )
                with self._cv:
                    queued = set(self._pending)
                for r in dict.fromkeys([*waiting, *self._rows]):
                    if not r.finished and r not in queued:
                        self._fail(r, err)
                self._rows, self._kv, self._mask = [], None, None

    def _admit(self, waiting: list[_Row]) -> tuple[list[_Row], list[_Row]]:
        admitted: list[_Row] = []
        deferred: list[_Row] = []
        for row in waiting:
            if row.cancelled:
                continue
            if len(self._rows) + len(admitted) >= self.cfg.max_batch:
                deferred.append(row)
                continue
            try:
                ok = self._attach_adapter(row)
            except GatewayError as err:
                self._fail(row, err)
                continue
            (admitted if ok else deferred).append(row)
        return admitted, deferred

    # -- adapters -----------------------------------------------------------------
    def _attach_adapter(self, row: _Row) -> bool:
        ref = row.req.adapter
        if ref is None:
            return True
        if ref.sha256 not in self.slots and not self._load_adapter(ref):
            return False
        slot = self.slots.acquire(ref.sha256)
        row.adapter_name, row.slot_key = slot.name, slot.key
        return True

    def _load_adapter(self, ref: AdapterRef) -> bool:
        from hybridgate.adapters.files import verify

        estimate = max(ref.size_bytes, 1)
        if estimate > self.slots.budget_bytes:
            raise UpstreamError(
                f"adapter {ref.name!r} ({estimate} bytes) is larger than route "
                f"{self.cfg.name}'s adapter memory budget",
                retryable=False,
                code="adapter_too_large",
            )
        evict = self.slots.plan(estimate)
        if evict is None:
            return False
        for key in evict:
            self._unload(key)
        t0 = time.perf_counter()
        name = "a" + ref.sha256[:16]
        try:
            verify(ref.path, ref.sha256)
            from peft import PeftModel

            if self._peft is None:
                self._peft = PeftModel.from_pretrained(
                    self._base, ref.path, adapter_name=name, is_trainable=False
                )
            else:
                self._peft.load_adapter(ref.path, adapter_name=name, is_trainable=False)
            self._peft.eval()
        except (GatewayError, OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:
            raise UpstreamError(
                f"route {self.cfg.name}: cannot load adapter {ref.name!r} ({type(exc).__name__})",
                retryable=False,
                code="adapter_unavailable",
            ) from exc
        nbytes = sum(
            p.numel() * p.element_size()
            for n, p in self._peft.named_parameters()
            if f".{name}." in n or n.endswith(f".{name}")
        )
        self.slots.add(ref.sha256, name, max(nbytes, 1))
        m = self.metrics
        m.loads.labels(self.cfg.name, ref.name).inc()
        m.load_seconds.labels(self.cfg.name).observe(time.perf_counter() - t0)
        m.loaded.labels(self.cfg.name).set(len(self.slots))
        m.adapter_bytes.labels(self.cfg.name).set(self.slots.used_bytes)
        return True

    def _unload(self, key: str) -> None:
        slot = self.slots.remove(key)
        if self._peft is not None:
            self._peft.delete_adapter(slot.name)
            left = list(self._peft.peft_config)
            if left:
                self._peft.set_adapter(left[0])  # PEFT keeps a stale active name otherwise
            else:
                self._base = self._peft.unload()  # back to the plain base model
                self._peft = None
        self.metrics.evictions.labels(self.cfg.name, slot.name).inc()
        self.metrics.loaded.labels(self.cfg.name).set(len(self.slots))
        self.metrics.adapter_bytes.labels(self.cfg.name).set(self.slots.used_bytes)

    def loaded_adapters(self) -> list[str]:
        """sha256 of adapters in memory, least recently used first."""
        return [s.key for s in self.slots.slots()]

    # -- the forward passes ------------------------------------------------------------
    def _forward(self, rows: list[_Row], **kwargs: Any) -> Any:
        if self._peft is not None:
            return self._peft(**kwargs, adapter_names=[r.adapter_name for r in rows])
        return self._base(**kwargs)

    def _prefill(self, rows: list[_Row]) -> None:
        import torch
        from transformers import DynamicCache

        dev = self.cfg.device
        pad = self.tokenizer.pad_token_id or 0
        width = max(len(r.req.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r.req.prompt_ids)
            ids[i, width - n :] = torch.tensor(r.req.prompt_ids, dtype=torch.long)
            mask[i, width - n :] = 1
            r.pos = n - 1  # _advance moves it to n: where the first new token sits
            if r.req.seed is not None:
                r.generator = torch.Generator(device=dev).manual_seed(r.req.seed)
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self._forward(
            rows,
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        kv = _layers(cache)
        now = time.perf_counter()
        for r in rows:
            r.ttft_s = now - r.submitted
            self.metrics.ttft.labels(self.cfg.name, r.label).observe(r.ttft_s)
        keep = self._advance(rows, out.logits[:, -1, :])
        self._join([rows[i] for i in keep], kv, mask, keep)

    def _step(self) -> None:
        import torch
        from transformers import DynamicCache

        rows = self._rows
        assert self._kv is not None and self._mask is not None
        dev = self.cfg.device
        ids = torch.tensor([[r.generated[-1]] for r in rows], dtype=torch.long, device=dev)
        positions = torch.tensor([[r.pos] for r in rows], dtype=torch.long, device=dev)
        mask = torch.cat([self._mask, torch.ones((len(rows), 1), dtype=torch.long, device=dev)], 1)
        cache = DynamicCache(ddp_cache_data=self._kv)
        out = self._forward(
            rows,
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        self.steps += 1
        self.max_rows_seen = max(self.max_rows_seen, len(rows))
        self.metrics.batch_rows.labels(self.cfg.name).observe(len(rows))
        kv = _layers(cache)
        keep = self._advance(rows, out.logits[:, -1, :])
        self._rows, self._kv, self._mask = [], None, None
        self._join([rows[i] for i in keep], kv, mask, keep)

    def _join(
        self, rows: list[_Row], kv: list[tuple[Any, Any]], mask: Any, keep: list[int]
    ) -> None:
        """Add ``rows`` (with their cache and mask, selected by ``keep``) to the batch."""
        import torch

        if not rows:
            return
        idx = torch.tensor(keep, dtype=torch.long, device=mask.device)
        kv = [(k.index_select(0, idx), v.index_select(0, idx)) for k, v in kv]
        mask = mask.index_select(0, idx)
        # Drop leading columns no row uses any more (rows that left took their padding).
        used = mask.any(0).nonzero()
        start = int(used[0]) if used.numel() else 0
        if start:
            kv = [(k[:, :, start:], v[:, :, start:]) for k, v in kv]
            mask = mask[:, start:]
        if self._kv is None:
            self._rows, self._kv, self._mask = rows, kv, mask
            return
        a, b = self._mask.shape[1], mask.shape[1]
        width = max(a, b)

        def left(t: Any, n: int, dim: int) -> Any:
            if n == 0:
                return t
            shape = list(t.shape)
            shape[dim] = n
            return torch.cat([t.new_zeros(shape), t], dim)

        self._kv = [
            (
                torch.cat([left(k0, width - a, 2), left(k1, width - b, 2)], 0),
                torch.cat([left(v0, width - a, 2), left(v1, width - b, 2)], 0),
            )
            for (k0, v0), (k1, v1) in zip(self._kv, kv, strict=True)
        ]
        self._mask = torch.cat([left(self._mask, width - a, 1), left(mask, width - b, 1)], 0)
        self._rows = [*self._rows, *rows]

    def _pick(self, row: _Row, logits: Any) -> int:
        import torch

        t = row.req.temperature
        if t <= 0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits.float() / t, -1)
        if row.req.top_p < 1.0:
            sorted_p, order = torch.sort(probs, descending=True)
            cut = torch.cumsum(sorted_p, -1) - sorted_p > row.req.top_p
            sorted_p[cut] = 0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        return int(torch.multinomial(probs, 1, generator=row.generator))

    def _advance(self, rows: list[_Row], logits: Any) -> list[int]:
        """Pick each row's next token, stream its text; the indices of rows still running."""
        keep: list[int] = []
        for i, r in enumerate(rows):
            if r.cancelled:
                self._retire(r)
                continue
            tok = self._pick(r, logits[i])
            r.pos += 1
            finish: str | None = None
            if tok in self._eos:
                finish = "stop"
            else:
                r.generated.append(tok)
            if finish is None and len(r.generated) >= r.req.max_new_tokens:
                finish = "length"
            delta = r.tracker.update(self._decode(r.generated), final=finish is not None)
            if r.tracker.stopped:
                finish = "stop"
            if delta:
                r.emit(Delta(delta))
            if finish is None:
                keep.append(i)
                continue
            self._retire(r)
            r.finished = True
            n_out = len(r.generated) + (1 if tok in self._eos else 0)
            m = self.metrics
            m.requests.labels(self.cfg.name, r.label, finish).inc()
            m.tokens.labels(self.cfg.name, r.label, "in").inc(len(r.req.prompt_ids))
            m.tokens.labels(self.cfg.name, r.label, "out").inc(n_out)
            r.emit(
                Done(
                    r.tracker.emitted,
                    finish,
                    len(r.req.prompt_ids),
                    n_out,
                    r.ttft_s,
                    tuple(r.generated),
                )
            )
        return keep

    def _fail(self, row: _Row, err: GatewayError) -> None:
        self._retire(row)
        row.finished = True
        row.emit(Failed(err))

    def _retire(self, row: _Row) -> None:
        if row.slot_key is not None:
            self.slots.release(row.slot_key)
            row.slot_key = None


def _layers(cache: Any) -> list[tuple[Any, Any]]:
    """Each layer's (keys, values) tensors of a DynamicCache."""
    return [(layer.keys, layer.values) for layer in cache.layers]
