"""Train a LoRA adapter for a task's small base model on its captured pairs.

Plain PyTorch + PEFT (no trainer framework: the loop is twenty lines and
every knob that matters is in :class:`~hybridgate.distill.config.TrainConfig`).
The prompt is built exactly as the gateway's in-process provider builds it
(chat template when the tokenizer has one, else ``role: content`` lines), and
the loss covers the answer tokens only. Deterministic given the seed on one
device: seeded init, seeded shuffling, deterministic algorithms.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hybridgate.distill.config import TrainConfig
from hybridgate.distill.dataset import Example

ProgressFn = Callable[[int, int, float], None]  # (step, total steps, loss)


@dataclass(frozen=True)
class TrainResult:
    adapter_dir: Path
    params: dict[str, Any]
    examples: int
    steps: int
    final_loss: float
    seconds: float
    device: str
    losses: list[float] = field(default_factory=list)


def pick_device(requested: str | None) -> str:
    import torch

    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def prompt_text(tokenizer: Any, messages: Sequence[dict[str, Any]]) -> str:
    """The prompt the gateway's local provider builds for these messages."""
    from hybridgate.providers.local import chat_messages, plain_prompt

    msgs = chat_messages({"messages": list(messages)})
    if getattr(tokenizer, "chat_template", None):
        text: str = tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        return text
    return plain_prompt(msgs)


def encode_example(tokenizer: Any, ex: Example) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt): the model learns the answer only."""
    prompt = prompt_text(tokenizer, ex.messages)
    templated = bool(getattr(tokenizer, "chat_template", None))
    p_ids: list[int] = tokenizer(prompt, add_special_tokens=not templated)["input_ids"]
    a_ids: list[int] = tokenizer(" " + ex.answer.strip(), add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None:
        a_ids = [*a_ids, int(tokenizer.eos_token_id)]
    return [*p_ids, *a_ids], [-100] * len(p_ids) + a_ids


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def base_model_hash(path: str | Path) -> str:
    """SHA-256 over the base model's weight, config and tokenizer files (names and digests)."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith(".")):
        h.update(f.name.encode() + b"\0" + bytes.fromhex(file_sha256(f)))
    return h.hexdigest()


def train_lora(
    base_model: str | Path,
    examples: Sequence[Example],
    cfg: TrainConfig,
    out_dir: str | Path,
    *,
    device: str | None = None,
    progress: ProgressFn | None = None,
) -> TrainResult:
    """Train and save a PEFT LoRA adapter to ``out_dir``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not examples:
        raise ValueError("no training examples: capture some traffic first")
    dev = pick_device(device)
    if cfg.cpu_threads is not None:
        torch.set_num_threads(cfg.cpu_threads)
    t0 = time.perf_counter()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(base_model), local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model: Any = AutoModelForCausalLM.from_pretrained(
        str(base_model), local_files_only=True, dtype=torch.float32
    )
    present = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules()}
    targets = [t for t in cfg.target_modules if t in present]
    if not targets:
        raise ValueError(f"none of {cfg.target_modules} is a module of the base model")
    lora = LoraConfig(
        r=cfg.rank,
        lora_alpha=cfg.alpha,
        lora_dropout=0.0,
        target_modules=targets,
        bias="none",
        modules_to_save=list(cfg.modules_to_save) or None,
    )
    model = get_peft_model(model, lora)
    model.to(dev)
    model.train()
    encoded = [encode_example(tokenizer, e) for e in examples]
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate
    )
    order = list(range(len(encoded)))
    rng = random.Random(cfg.seed)
    per_epoch = (len(order) + cfg.batch_size - 1) // cfg.batch_size
    total = per_epoch * cfg.epochs
    pad = int(tokenizer.pad_token_id)
    losses: list[float] = []
    step = 0
    for _ in range(cfg.epochs):
        rng.shuffle(order)
        for i in range(0, len(order), cfg.batch_size):
            batch = [encoded[j] for j in order[i : i + cfg.batch_size]]
            width = max(len(ids) for ids, _ in batch)
            ids = torch.tensor([x + [pad] * (width - len(x)) for x, _ in batch], device=dev)
            labels = torch.tensor([y + [-100] * (width - len(y)) for _, y in batch], device=dev)
            mask = torch.tensor(
                [[1] * len(x) + [0] * (width - len(x)) for x, _ in batch], device=dev
            )
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
            step += 1
            losses.append(float(loss.item()))
            if progress is not None:
                progress(step, total, losses[-1])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    params = {
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "learning_rate": cfg.learning_rate,
        "batch_size": cfg.batch_size,
        "rank": cfg.rank,
        "alpha": cfg.alpha,
        "target_modules": targets,
        "modules_to_save": list(cfg.modules_to_save),
        "optimizer": "AdamW",
        "loss": "answer tokens only",
        "torch": torch.__version__,
        "cpu_threads": torch.get_num_threads(),
    }
    return TrainResult(
        adapter_dir=out,
        params=params,
        examples=len(examples),
        steps=step,
        final_loss=losses[-1] if losses else float("nan"),
        seconds=time.perf_counter() - t0,
        device=dev,
        losses=losses,
    )
