"""A tiny random Llama with a word-level tokenizer, built locally (nothing downloaded).

For tests and the demo: small enough to train a LoRA on two CPU cores in
seconds, and loadable by the gateway's in-process provider like any model
directory. Needs the ``local`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIALS = ("[PAD]", "[UNK]", "[EOS]")


def build_tiny_base(
    out: str | Path, words: Sequence[str], *, seed: int = 0, hidden: int = 64, layers: int = 2
) -> Path:
    """Write a tokenizer and a randomly initialised Llama to ``out``; return the path."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = list(dict.fromkeys([*SPECIALS, *words]))
    tk = Tokenizer(models.WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    torch.manual_seed(seed)
    cfg: Any = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=None,
        initializer_range=0.2,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    # Large random query/key weights make attention near one-hot on arbitrary positions,
    # and a tiny model then stalls on a plateau; near-uniform attention at the start lets
    # every position see the whole prompt, which a LoRA can then sharpen.
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(0.1)
            layer.self_attn.k_proj.weight.mul_(0.1)
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    (path / "hybridgate-tiny.json").write_text(json.dumps({"seed": seed, "vocab": len(vocab)}))
    return path
