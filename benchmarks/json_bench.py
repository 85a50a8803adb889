"""JSON work per request on the gateway's loop: the standard library against fastjson.

Per request the gateway parses the body, sizes it for the budget hold, encodes it
for the upstream, parses the upstream's answer and encodes the answer for the
client. This times those five steps in CPU time of this process (less sensitive
to other load on a shared machine) for a short prompt and for agent requests of
10, 100 and 400 KB (``overhead_peers.conversation``), the standard library's way
(``json.loads`` / ``json.dumps`` as the gateway used them) against
``hybridgate.fastjson``; both include the same nesting check.

    PYTHONPATH=src .venv/bin/python benchmarks/json_bench.py
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from hybridgate import fastjson
from hybridgate.api.common import parse_json
from hybridgate.jsonlimits import MAX_DEPTH, deeper_than
from overhead_peers import Target, fresh_bodies

ANSWER = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "echo: hello there " * 5},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
    }
).encode()
SHORT = json.dumps(
    {
        "model": "bench",
        "messages": [{"role": "user", "content": "Hello! Could you tell me a short fact?"}],
        "max_tokens": 64,
    }
).encode()


def stdlib(raw: bytes) -> None:
    text = raw.decode("utf-8")
    body = json.loads(text)
    if text.count("[") + text.count("{") > MAX_DEPTH:
        deeper_than(body)
    len(json.dumps(body, ensure_ascii=False).encode("utf-8"))  # the hold's size
    json.dumps(body).encode()  # aiohttp's json=
    answer = json.loads(ANSWER)
    json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fast(raw: bytes) -> None:
    body = parse_json(raw)
    len(fastjson.dumps(body))
    fastjson.dumps(body)
    answer = fastjson.loads(ANSWER)
    fastjson.dumps(answer)


def per_request_ms(fn: Callable[[bytes], None], bodies: list[bytes], reps: int) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for _ in range(reps):
            for b in bodies:
                fn(b)
        best = min(best, (time.process_time() - t0) * 1000 / (reps * len(bodies)))
    return best


def main() -> None:
    print("| request body | standard library ms | fastjson ms |")
    print("|---|---|---|")
    target = Target("bench", "")
    for kb in (0, 10, 100, 400):
        bodies = fresh_bodies(target, kb * 1024, 10, 3) if kb else [SHORT] * 10
        reps = max(2, 300 // max(kb, 1))
        old, new = per_request_ms(stdlib, bodies, reps), per_request_ms(fast, bodies, reps)
        label = f"{kb} KB" if kb else f"{len(SHORT)} bytes"
        print(f"| {label} | {old:.3f} | {new:.3f} |")


if __name__ == "__main__":
    main()
