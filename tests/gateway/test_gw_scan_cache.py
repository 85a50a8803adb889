"""Through the gateway: a conversation's history is served from the scan cache,
and a value in that history is still masked or confined on every turn.

In-process (``asgi_gateway_sync``, in-memory routes): the external route's
record is what left the gateway."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from asgi_harness import asgi_gateway_sync
from hybridgate.scan.cache import CachedScanner

CARD = "4111 1111 1111 1111"


def test_history_hits_the_cache_and_stays_protected_every_turn(tmp_path: Path) -> None:
    with asgi_gateway_sync(tmp_path) as h:
        scanner = h.gw.scanner
        assert isinstance(scanner, CachedScanner) and scanner.cache is not None
        stats = scanner.cache.stats
        messages: list[Any] = [
            {"role": "system", "content": "You are a careful assistant. " * 100},
            {"role": "user", "content": f"my card is {CARD}, remember it"},
        ]
        routes = []
        for turn in range(3):
            raw = h.client.post(
                "/v1/chat/completions",
                json={"model": "any", "messages": messages},
                headers=h.auth(),
            )
            assert raw.status_code == 200, raw.text
            routes.append(raw.headers["x-hybridgate-route"])
            answer = raw.json()["choices"][0]["message"]["content"]
            messages.append({"role": "assistant", "content": answer or ""})
            messages.append({"role": "user", "content": f"turn {turn}: what next?"})
        assert stats.hits > 0
        external = json.dumps(
            [req for route, req in h.upstream.received if route == "ext"], ensure_ascii=False
        )
        assert CARD not in external
        assert CARD.replace(" ", "") not in external
        assert len(set(routes)) == 1  # the same decision on every turn
