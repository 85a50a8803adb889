"""LocalProvider with a tiny random Llama and a LoRA adapter built offline in tmp_path."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hybridgate.config import LocalModel, RouteConfig
from hybridgate.errors import InvalidRequest, UpstreamError
from hybridgate.providers.local import LocalProvider, chat_messages, plain_prompt
from hybridgate.providers.registry import build_provider

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")
tokenizers = pytest.importorskip("tokenizers")

WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "of",
    "to",
    "and",
    "in",
    "on",
    "for",
    "with",
    "hello",
    "world",
    "echo",
    "say",
    "name",
    "colour",
    "red",
    "green",
    "blue",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "yes",
    "no",
    "what",
    "who",
    "why",
    "how",
]
SPECIAL = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>"]
TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
REQ: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "say yes"},
        {"role": "user", "content": "hello what is the colour"},
    ],
    "max_tokens": 8,
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        root = tmp_path_factory.mktemp("tiny")
        model_dir, adapter_dir = root / "model", root / "adapter"
        vocab = {tok: i for i, tok in enumerate(SPECIAL + WORDS)}
        tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<unk>"))
        tk.pre_tokenizer = tokenizers.pre_tokenizers.WhitespaceSplit()
        tk.add_special_tokens(SPECIAL)
        tok = transformers.PreTrainedTokenizerFast(
            tokenizer_object=tk,
            unk_token="<unk>",
            pad_token="<pad>",
            bos_token="<s>",
            eos_token="</s>",
        )
        tok.chat_template = TEMPLATE
        tok.save_pretrained(model_dir)
        torch.manual_seed(0)
        cfg = transformers.LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            bos_token_id=vocab["<s>"],
            eos_token_id=vocab["</s>"],
            pad_token_id=vocab["<pad>"],
        )
        model = transformers.LlamaForCausalLM(cfg)
        model.save_pretrained(model_dir)
        lora = peft.LoraConfig(
            r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False
        )
        peft.get_peft_model(model, lora).save_pretrained(adapter_dir)
        yield model_dir, adapter_dir


def _route(model_dir: Path, adapter_dir: Path | None = None, name: str = "tiny") -> RouteConfig:
    return RouteConfig(
        name=name,
        provider="local",
        model="tiny-llama",
        location="on_prem",
        local=LocalModel(
            model_path=str(model_dir),
            adapter_path=str(adapter_dir) if adapter_dir else None,
            max_new_tokens=16,
            dtype="float32",
        ),
    )


async def test_generates_and_counts_exactly(tiny_model: tuple[Path, Path]) -> None:
    model_dir, _ = tiny_model
    p = build_provider(_route(model_dir))
    assert isinstance(p, LocalProvider)
    c = await p.chat(REQ)
    body = c.body
    assert body["object"] == "chat.completion" and body["model"] == "tiny-llama"
    choice = body["choices"][0]
    assert choice["finish_reason"] in ("stop", "length")
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    prompt = tok.apply_chat_template(chat_messages(REQ), add_generation_prompt=True, tokenize=False)
    assert c.usage.prompt_tokens == len(tok(prompt, add_special_tokens=False)["input_ids"])
    assert 1 <= c.usage.completion_tokens <= 8
    assert c.usage.reported
    assert body["usage"]["total_tokens"] == c.usage.total_tokens
    if choice["finish_reason"] == "length":
        assert c.usage.completion_tokens == 8
    again = await p.chat(REQ)  # greedy by default: reproducible
    assert again.body["choices"][0]["message"]["content"] == choice["message"]["content"]
    await p.aclose()


async def test_adapter_is_applied(tiny_model: tuple[Path, Path]) -> None:
    model_dir, adapter_dir = tiny_model
    base = LocalProvider(_route(model_dir))
    tuned = LocalProvider(_route(model_dir, adapter_dir, name="tuned"))
    b = base._load()
    c = await tuned.chat(REQ)  # the fixed adapter is loaded with the first request
    assert c.usage.completion_tokens >= 1
    t = tuned.engine
    assert isinstance(t._peft, peft.PeftModel)
    (slot,) = t.slots.slots()
    ids = t.tokenizer("hello what is the colour", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        lb = b._base(ids).logits
        lt = t._peft(input_ids=ids, adapter_names=[slot.name]).logits
    assert not torch.allclose(lb, lt)
    # The adapter's weights are the saved, non-zero ones.
    sd = {k: v for k, v in t._peft.state_dict().items() if "lora_B" in k}
    assert sd and all(v.abs().sum() > 0 for v in sd.values())


async def test_stream_matches_non_stream(tiny_model: tuple[Path, Path]) -> None:
    model_dir, adapter_dir = tiny_model
    p = LocalProvider(_route(model_dir, adapter_dir))
    whole = await p.chat(REQ)
    chunks = [ch async for ch in p.chat_stream(REQ)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(ch["choices"][0]["delta"].get("content") or "" for ch in chunks if ch["choices"])
    assert text.strip() == whole.body["choices"][0]["message"]["content"].strip()
    assert chunks[-2]["choices"][0]["finish_reason"] == whole.body["choices"][0]["finish_reason"]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole.body["usage"]


async def test_concurrent_requests_and_loop_stays_free(tiny_model: tuple[Path, Path]) -> None:
    model_dir, _ = tiny_model
    p = LocalProvider(_route(model_dir))
    await p.chat(REQ)  # load first
    ticks = 0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0)

    t = asyncio.create_task(ticker())
    results = await asyncio.gather(*(p.chat(REQ) for _ in range(4)))
    stop.set()
    await t
    assert len({r.body["choices"][0]["message"]["content"] for r in results}) == 1
    assert ticks > 4  # the loop ran while the worker threads generated


async def test_abandoned_stream_stops_generation(tiny_model: tuple[Path, Path]) -> None:
    model_dir, _ = tiny_model
    p = LocalProvider(_route(model_dir))
    stream = p.chat_stream(REQ)
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert (await p.chat(REQ)).body["choices"]  # the model lock was released


@pytest.mark.parametrize(
    "req",
    [
        dict(REQ, tools=[{"type": "function"}]),
        dict(REQ, tools="f"),
        {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
        {"messages": [{"role": "function", "content": "r"}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}
            ]
        },
        {"messages": []},
    ],
)
async def test_unsupported_requests(tiny_model: tuple[Path, Path], req: dict[str, Any]) -> None:
    p = LocalProvider(_route(tiny_model[0]))
    with pytest.raises(InvalidRequest):
        await p.chat(req)
    with pytest.raises(InvalidRequest):
        async for _ in p.chat_stream(req):
            pass
    with pytest.raises(UpstreamError):
        await p.embeddings({"input": "x"})


def test_missing_extra_and_bad_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = LocalProvider(_route(tmp_path / "nothing-here"))
    with pytest.raises(UpstreamError) as bad:
        p._load()
    assert bad.value.code == "local_model_unavailable"
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(UpstreamError) as missing:
        LocalProvider(_route(tmp_path))._load()
    assert missing.value.code == "local_extra_missing" and not missing.value.retryable
    assert "hybridgate[local]" in missing.value.message


def test_plain_prompt() -> None:
    msgs = chat_messages(
        {"messages": [{"role": "developer", "content": "d"}, {"role": "user", "content": "u"}]}
    )
    assert plain_prompt(msgs) == "system: d\nuser: u\nassistant:"


async def test_context_overflow_is_invalid_request(tiny_model: tuple[Path, Path]) -> None:
    p = LocalProvider(_route(tiny_model[0]))
    long_req = {"messages": [{"role": "user", "content": "hello " * 300}]}
    with pytest.raises(InvalidRequest):
        await p.chat(long_req)
    with pytest.raises(InvalidRequest):
        async for _ in p.chat_stream(long_req):
            pass


async def test_generation_failure_raises_not_hangs(
    tiny_model: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    p = LocalProvider(_route(tiny_model[0]))
    engine = p._load()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("device lost")

    monkeypatch.setattr(engine, "_forward", broken)
    with pytest.raises(UpstreamError) as ei:
        await p.chat(REQ)
    assert "device lost" not in ei.value.message
    with pytest.raises(UpstreamError):
        async for _ in p.chat_stream(REQ):
            pass
