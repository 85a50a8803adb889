"""Through the gateway: a conversation's history is served from the scan cache,
and a value in that history is still masked or confined on every turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway_harness import running_gateway
from hybridgate.scan.cache import CachedScanner

CARD = "4111 1111 1111 1111"


def test_history_hits_the_cache_and_stays_protected_every_turn(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        scanner = h.gw.scanner
        assert isinstance(scanner, CachedScanner) and scanner.cache is not None
        stats = scanner.cache.stats
        messages: list[Any] = [
            {"role": "system", "content": "You are a careful assistant. " * 100},
            {"role": "user", "content": f"my card is {CARD}, remember it"},
        ]
        routes = []
        for turn in range(3):
            raw = h.openai().chat.completions.with_raw_response.create(
                model="any", messages=messages
            )
            routes.append(raw.headers["x-hybridgate-route"])
            messages.append(
                {"role": "assistant", "content": raw.parse().choices[0].message.content or ""}
            )
            messages.append({"role": "user", "content": f"turn {turn}: what next?"})
        assert stats.hits > 0
        assert CARD not in h.external_text()
        assert CARD.replace(" ", "") not in h.external_text()
        assert len(set(routes)) == 1  # the same decision on every turn
