"""Serving benchmark: mixed-adapter batches, adapter loads, concurrency, MCP overhead.

Everything runs on models this script creates (a random Llama and random LoRA
adapters in a temporary directory), so it runs anywhere; pass ``--device cuda``
on a machine with a GPU. Figures:

1. **Mixed vs one-at-a-time.** ``--requests`` requests spread round-robin over
   1, 4, 16 and 64 adapters. *Mixed*: all submitted at once; the engine
   batches rows of different adapters together (``max_batch``). *One adapter
   at a time*: the same requests, one adapter's group after another (each
   group batched, the next waits) — the baseline S-LoRA reports against.
   Output tokens/s for both and the ratio.
2. **Adapter load / swap.** Time to verify and load an adapter that is not in
   memory (median over the 64 adapters' first loads), and a request on an
   adapter already loaded, for comparison. Memory per adapter: LoRA weight
   bytes held by the engine, and the file size.
3. **Concurrency.** 1, 4, 16 and 32 concurrent requests over 4 adapters:
   median time to first token and aggregate output tokens/s.
4. **MCP tool-call overhead.** A tool call through the gateway's ``/mcp``
   (scan, policy, budget, receipt, MCP framing) against the same chat request
   sent straight to the engine stand-in (vLLM API on loopback, no model).

    .venv/bin/python benchmarks/serving_bench.py [--requests 128] [--device cpu] [--json OUT]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hybridgate.adapters import adapter_files
from hybridgate.serving import AdapterRef, Done, EngineConfig, GenRequest, ServingEngine
from hybridgate.testing.tiny_models import make_lora, make_tiny_llama

PROMPTS = [
    "hello what is the colour",
    "ticket refund urgent billing",
    "who is the customer",
    "the order status is open",
    "login error please",
    "summary of the ticket",
]


def refs(paths: list[Path]) -> list[AdapterRef]:
    out = []
    for i, p in enumerate(paths):
        f = adapter_files(p)
        out.append(AdapterRef(f"a{i}", f.sha256, str(p), f.size_bytes))
    return out


async def run_one(engine: ServingEngine, req: GenRequest) -> tuple[Done, float]:
    t0 = time.perf_counter()
    async for ev in engine.generate(req):
        if isinstance(ev, Done):
            return ev, time.perf_counter() - t0
    raise RuntimeError("no answer")


def requests(
    engine: ServingEngine, adapters: list[AdapterRef], n: int, tokens: int
) -> list[GenRequest]:
    ids = [tuple(engine.encode_chat([{"role": "user", "content": p}], None)) for p in PROMPTS]
    return [
        GenRequest(ids[i % len(ids)], tokens, adapter=adapters[i % len(adapters)]) for i in range(n)
    ]


async def mixed_vs_sequential(
    model: Path, adapters: list[AdapterRef], n: int, tokens: int, device: str, batch: int
) -> dict[str, Any]:
    cfg = EngineConfig(
        str(model),
        name="bench",
        device=device,
        max_batch=batch,
        adapter_memory_bytes=1 << 34,
        max_adapters=len(adapters),
    )
    engine = ServingEngine(cfg)
    await asyncio.to_thread(engine.load)
    reqs = requests(engine, adapters, n, tokens)
    # warm: every adapter loaded once, so both modes measure generation, not loads
    await asyncio.gather(
        *(run_one(engine, GenRequest(reqs[0].prompt_ids, 1, adapter=a)) for a in adapters)
    )
    t0 = time.perf_counter()
    done = await asyncio.gather(*(run_one(engine, r) for r in reqs))
    mixed_s = time.perf_counter() - t0
    out_tokens = sum(d.completion_tokens for d, _ in done)
    groups: dict[str, list[GenRequest]] = {}
    for r in reqs:
        assert r.adapter is not None
        groups.setdefault(r.adapter.sha256, []).append(r)
    t0 = time.perf_counter()
    seq_tokens = 0
    for group in groups.values():
        res = await asyncio.gather(*(run_one(engine, r) for r in group))
        seq_tokens += sum(d.completion_tokens for d, _ in res)
    seq_s = time.perf_counter() - t0
    engine.close()
    return {
        "adapters": len(adapters),
        "requests": n,
        "mixed_tok_s": round(out_tokens / mixed_s, 1),
        "one_at_a_time_tok_s": round(seq_tokens / seq_s, 1),
        "ratio": round((out_tokens / mixed_s) / (seq_tokens / seq_s), 2),
    }


async def loads(model: Path, adapters: list[AdapterRef], device: str) -> dict[str, Any]:
    engine = ServingEngine(
        EngineConfig(
            str(model),
            name="bench",
            device=device,
            adapter_memory_bytes=1 << 34,
            max_adapters=len(adapters),
        )
    )
    await asyncio.to_thread(engine.load)
    prompt = tuple(engine.encode_chat([{"role": "user", "content": "hello"}], None))
    await run_one(engine, GenRequest(prompt, 1))  # warm the base path
    cold, warm = [], []
    for a in adapters:
        _, s = await run_one(engine, GenRequest(prompt, 1, adapter=a))
        cold.append(s)
        _, s = await run_one(engine, GenRequest(prompt, 1, adapter=a))
        warm.append(s)
    per_adapter = engine.slots.used_bytes / max(1, len(engine.slots))
    engine.close()
    return {
        "first_request_ms_median": round(statistics.median(cold) * 1000, 2),
        "loaded_request_ms_median": round(statistics.median(warm) * 1000, 2),
        "load_ms_median": round((statistics.median(cold) - statistics.median(warm)) * 1000, 2),
        "adapter_bytes_in_memory": int(per_adapter),
        "adapter_file_bytes": adapters[0].size_bytes,
    }


async def concurrency(
    model: Path, adapters: list[AdapterRef], tokens: int, device: str
) -> list[dict[str, Any]]:
    rows = []
    for c in (1, 4, 16, 32):
        engine = ServingEngine(
            EngineConfig(
                str(model), name="bench", device=device, max_batch=32, adapter_memory_bytes=1 << 34
            )
        )
        await asyncio.to_thread(engine.load)
        reqs = requests(engine, adapters[:4], c, tokens)
        await asyncio.gather(
            *(run_one(engine, GenRequest(reqs[0].prompt_ids, 1, adapter=a)) for a in adapters[:4])
        )
        t0 = time.perf_counter()
        done = await asyncio.gather(*(run_one(engine, r) for r in reqs))
        wall = time.perf_counter() - t0
        rows.append(
            {
                "concurrent": c,
                "ttft_ms_median": round(statistics.median(d.ttft_s for d, _ in done) * 1000, 2),
                "tok_s": round(sum(d.completion_tokens for d, _ in done) / wall, 1),
            }
        )
        engine.close()
    return rows


def mcp_overhead(tmp: Path, calls: int) -> dict[str, Any]:
    import httpx

    from hybridgate.adapters import register
    from hybridgate.app import create_app
    from hybridgate.config import parse_config
    from hybridgate.server import ServerThread
    from hybridgate.testing.lora_engines import VLLMUpstream

    with VLLMUpstream(base_model="base-model", max_loras=2) as small:
        cfg = parse_config(
            {
                "home": str(tmp / "home"),
                "ledger": {"checkpoint_interval_s": 3600},
                "routes": [
                    {
                        "name": "small",
                        "provider": "vllm",
                        "model": "base-model",
                        "base_url": small.base_url,
                        "location": "on_prem",
                        "adapters": ["*"],
                    }
                ],
            }
        )
        d = tmp / "mcp-adapter"
        d.mkdir()
        (d / "adapter_config.json").write_text("{}")
        (d / "adapter_model.safetensors").write_bytes(b"w" * 4096)
        register(cfg, "triage", d, base="base-model")
        app = create_app(cfg)
        with ServerThread(app) as server:
            key = app.state.gateway.keys.create("bench")

            async def through_mcp() -> list[float]:
                import httpx2
                from mcp.client.session import ClientSession
                from mcp.client.streamable_http import streamable_http_client

                times = []
                async with (
                    httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
                    streamable_http_client(server.base_url + "/mcp", http_client=http) as s,
                    ClientSession(*s) as session,
                ):
                    await session.initialize()
                    await session.call_tool("triage", {"input": "warm up"})
                    for i in range(calls):
                        t0 = time.perf_counter()
                        res = await session.call_tool("triage", {"input": f"ticket {i}"})
                        times.append(time.perf_counter() - t0)
                        assert not res.is_error
                return times

            mcp_times = asyncio.run(through_mcp())
            served = next(iter(small.loaded))
            direct = []
            with httpx.Client() as http:
                for i in range(calls):
                    body = {"model": served, "messages": [{"role": "user", "content": f"t {i}"}]}
                    t0 = time.perf_counter()
                    http.post(small.base_url + "/chat/completions", json=body).raise_for_status()
                    direct.append(time.perf_counter() - t0)
    m, dct = statistics.median(mcp_times), statistics.median(direct)
    return {
        "calls": calls,
        "mcp_ms_p50": round(m * 1000, 2),
        "direct_ms_p50": round(dct * 1000, 2),
        "overhead_ms_p50": round((m - dct) * 1000, 2),
    }


def table(rows: list[dict[str, Any]]) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=16, help="new tokens per request")
    ap.add_argument("--batch", type=int, default=32, help="engine max_batch")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--mcp-calls", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        model = make_tiny_llama(tmp / "model", hidden=args.hidden)
        paths = [make_lora(model, tmp / f"lora{i}", seed=i + 1) for i in range(64)]
        adapters = refs(paths)
        mixed = [
            asyncio.run(
                mixed_vs_sequential(
                    model, adapters[:k], args.requests, args.tokens, args.device, args.batch
                )
            )
            for k in (1, 4, 16, 64)
        ]
        load = asyncio.run(loads(model, adapters, args.device))
        conc = asyncio.run(concurrency(model, adapters, args.tokens, args.device))
        mcp = mcp_overhead(tmp, args.mcp_calls)
    env = (
        f"device={args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"model hidden={args.hidden} layers=2, {args.tokens} new tokens/request, "
        f"max_batch={args.batch}"
    )
    print(f"# serving_bench ({env})\n")
    print("## mixed-adapter batches vs one adapter at a time\n" + table(mixed) + "\n")
    print("## adapter load\n" + table([load]) + "\n")
    print("## concurrency (4 adapters)\n" + table(conc) + "\n")
    print("## MCP tool call through the gateway vs the engine directly\n" + table([mcp]))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"env": env, "mixed": mixed, "load": load, "concurrency": conc, "mcp": mcp},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
