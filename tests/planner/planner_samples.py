"""A valid catalog entry that tests mutate to check what the schema refuses."""

from __future__ import annotations

from typing import Any


def good_entry() -> dict[str, Any]:
    return {
        "name": "acme-7b",
        "organization": "Acme",
        "source": "https://acme.example/acme-7b",
        "release": {"date": "2025-01-02", "source": "https://acme.example/blog"},
        "openness": {"level": 3, "source": "https://acme.example/licence"},
        "licence": {
            "id": "apache-2.0",
            "name": "Apache License 2.0",
            "weights_available": True,
            "commercial_use": True,
            "mau_threshold": "none",
            "acceptable_use_policy": False,
            "attribution": True,
            "source": "https://www.apache.org/licenses/LICENSE-2.0",
        },
        "params": {"total_b": 7.0, "active_b": 7.0, "moe": False, "source": "Acme report, p. 3"},
        "architecture": {
            "layers": 32,
            "kv_heads": 8,
            "attention_heads": 32,
            "head_dim": 128,
            "source": "https://acme.example/config.json",
        },
        "throughput": [
            {
                "gpu": "H100 80GB",
                "quant": "fp16",
                "tokens_per_second": 2500.0,
                "source": "Acme benchmark note, table 2",
            }
        ],
    }
