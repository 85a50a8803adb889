"""Agent-size scanning with and without the scan-result cache.

An agent resends its whole conversation every turn: a large system prompt,
tool definitions, and every earlier message, tool call and tool result. For
each target size (the last turn's request body, default 10 KB / 100 KB /
400 KB) this builds such a conversation turn by turn (fixed seed) and times
what the gateway does per request before the policy runs -
:func:`~hybridgate.scan.seen.scan_body`: extract the segments and scan them,
in CPU time of this process (less sensitive to other load on a shared
machine) - once with the plain scanner and once with a
:class:`~hybridgate.scan.cache.CachedScanner` kept across turns (as one
gateway instance keeps it), which looks up whole messages and then texts.
Every turn's two results (segments and scan) are compared; the script stops
with an error if they ever differ.

    PYTHONPATH=src .venv/bin/python benchmarks/agent_scan_bench.py
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from typing import Any

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner
from hybridgate.scan.cache import CachedScanner, ScanCache, scanner_fingerprint
from hybridgate.scan.seen import scan_body

_PROSE = (
    "the function returns a list of files under the repository root and we need to check "
    "whether the build passes before merging the change into main then update the docs "
    "config parser handles nested keys tests cover edge cases error path retries timeout"
)
WORDS = _PROSE.split(" ")
CODE = [
    "def load(path):\n    with open(path) as fh:\n        return json.load(fh)\n",
    "for i, row in enumerate(rows):\n    if row['id'] == target:\n        return i\n",
    "class Cache:\n    def __init__(self, size=128):\n        self.size = size\n",
    "$ pytest -q tests/test_api.py::test_create -x\n1 passed in 0.42s\n",
]
SENSITIVE = [
    "contact jane.doe@example.com about it",
    "the test card is 4111 1111 1111 1111",
    "Project Falcon launch notes",
    "key AKIAIOSFODNN7EXAMPLE in the old config",
]


def prose(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        r = rng.random()
        piece = (
            rng.choice(CODE)
            if r < 0.15
            else rng.choice(SENSITIVE)
            if r < 0.17
            else " ".join(rng.choices(WORDS, k=rng.randint(8, 20))) + "."
        )
        out.append(piece)
        n += len(piece) + 1
    return " ".join(out)[:size]


def _tools(rng: random.Random, size: int) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    n = 0
    while n < size:
        i = len(tools)
        tool = {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": prose(rng, 300),
                "parameters": {
                    "type": "object",
                    "properties": {
                        f"arg_{k}": {"type": "string", "description": prose(rng, 80)}
                        for k in range(4)
                    },
                    "required": ["arg_0"],
                },
            },
        }
        tools.append(tool)
        n += len(json.dumps(tool))
    return tools


def conversation(target: int, turns: int, seed: int) -> list[dict[str, Any]]:
    """Request bodies of one agent session, each the previous plus one more exchange."""
    rng = random.Random(seed)
    fixed = int(target * 0.4)
    messages: list[dict[str, Any]] = [{"role": "system", "content": prose(rng, fixed // 2)}]
    tools = _tools(rng, fixed // 2)
    per_turn = max((target - fixed) // turns, 200)
    bodies = []
    for t in range(turns):
        messages.append({"role": "user", "content": prose(rng, per_turn // 4)})
        call_id = f"call_{t}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {
                            "name": "tool_0",
                            "arguments": json.dumps({"arg_0": prose(rng, 60)}),
                        },
                    }
                ],
            }
        )
        messages.append(
            {"role": "tool", "tool_call_id": call_id, "content": prose(rng, per_turn // 2)}
        )
        messages.append({"role": "assistant", "content": prose(rng, per_turn // 4)})
        bodies.append(
            {"model": "auto", "messages": json.loads(json.dumps(messages)), "tools": tools}
        )
    return bodies


def _timed_scan(scanner: Scanner, body: dict[str, Any]) -> tuple[float, Any]:
    """CPU seconds of this process for one request's extract + scan (all on one thread)."""
    t0 = time.process_time()
    res = scan_body(scanner, body)
    return time.process_time() - t0, res


def run(target: int, turns: int, seed: int, cfg: ScannerConfig) -> dict[str, float]:
    plain = build_scanner(cfg)
    cache = ScanCache(b"benchmark-key-0123456789abcdef")
    cached = CachedScanner.wrap(plain, cache, scanner_fingerprint(cfg, plain.detector_names))
    bodies = conversation(target, turns, seed)
    plain_ms: list[float] = []
    cached_ms: list[float] = []
    for body in bodies:
        tp, rp = _timed_scan(plain, body)
        tc, rc = _timed_scan(cached, body)
        if rp != rc:
            raise SystemExit(f"cached scan differs from the plain scan at {target} bytes")
        plain_ms.append(tp * 1000)
        cached_ms.append(tc * 1000)
    later = slice(1, None)  # every turn after the first has history seen before
    return {
        "size_kb": len(json.dumps(bodies[-1])) / 1024,
        "turns": len(bodies),
        "hit_rate": cache.stats.hit_rate,
        "plain_last": plain_ms[-1],
        "cached_last": cached_ms[-1],
        "plain_med": statistics.median(plain_ms[later]),
        "cached_med": statistics.median(cached_ms[later]),
        "saved_pct": 100 * (1 - sum(cached_ms) / sum(plain_ms)),
        "cache_mb": cache.bytes_held / 2**20,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes-kb", default="10,100,400")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    cfg = ScannerConfig(terms=["Project Falcon", "Bluebird"])
    print(
        "| last request | turns | lookup hit rate | last turn, no cache | last turn, cached "
        "| median turn 2+, no cache | median turn 2+, cached | scan CPU saved | cache held |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kb in (int(x) for x in args.sizes_kb.split(",")):
        r = run(kb * 1024, args.turns, args.seed, cfg)
        print(
            f"| {r['size_kb']:.0f} KB | {r['turns']:.0f} | {100 * r['hit_rate']:.1f} % "
            f"| {r['plain_last']:.2f} ms | {r['cached_last']:.2f} ms "
            f"| {r['plain_med']:.2f} ms | {r['cached_med']:.2f} ms "
            f"| {r['saved_pct']:.0f} % | {r['cache_mb']:.1f} MB |"
        )


if __name__ == "__main__":
    main()
