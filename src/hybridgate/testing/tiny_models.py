"""A tiny random Llama and LoRA adapters for it, built offline in a directory.

Tests, benchmarks and the demo create these at run time (nothing is
downloaded and no weights are committed). The model has two layers, a
word-level vocabulary and a chat template that renders tools, so the whole
serving path (templates, tool calls, stop sequences, adapters) runs in
seconds on a CPU. Needs the ``local`` extra (torch, transformers, peft).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = (  # noqa: SIM905
    "the a an is are was of to and in on for with hello world echo say name colour red "
    "green blue one two three four five six seven eight nine ten yes no what who why how "
    "ticket order refund summary urgent billing login error customer status open closed "
    "call tool weather city paris london result done ok please thanks"
).split()
SPECIAL = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
PUNCT = ["{", "}", ":", ",", '"', "<tool_call>", "</tool_call>", "arguments"]
TEMPLATE = (
    "{% if tools %}<|system|> tools: {% for t in tools %}{{ t['function']['name'] }} "
    "{% endfor %}{% endif %}"
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] or '' }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def vocabulary() -> dict[str, int]:
    tokens = [*SPECIAL, *PUNCT, *WORDS]
    assert len(set(tokens)) == len(tokens), "duplicate token"
    return {tok: i for i, tok in enumerate(tokens)}


def make_tiny_llama(
    root: Path,
    *,
    hidden: int = 32,
    layers: int = 2,
    seed: int = 0,
    window: int = 512,
) -> Path:
    """Save a random 2-layer Llama with its tokenizer under ``root``; returns the path."""
    import tokenizers
    import torch
    import transformers

    root.mkdir(parents=True, exist_ok=True)
    vocab = vocabulary()
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
    tk.add_special_tokens(SPECIAL)
    tok: Any = transformers.PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )
    tok.chat_template = TEMPLATE
    tok.save_pretrained(root)
    torch.manual_seed(seed)
    cfg = transformers.LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=window,
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        pad_token_id=vocab["<pad>"],
    )
    transformers.LlamaForCausalLM(cfg).save_pretrained(root)
    return root


def make_lora(model_dir: Path, out: Path, *, seed: int, rank: int = 4, scale: float = 1.0) -> Path:
    """Save a random (non-zero) LoRA adapter for the model at ``model_dir``."""
    import peft
    import torch
    import transformers

    base: Any = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    torch.manual_seed(seed)
    cfg = peft.LoraConfig(
        r=rank,
        lora_alpha=rank * 4,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,
    )
    model: Any = peft.get_peft_model(base, cfg)
    if scale != 1.0:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_" in n:
                    p.mul_(scale)
    model.save_pretrained(out)
    return out
