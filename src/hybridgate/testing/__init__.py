"""Loopback upstreams for tests and for trying a configuration without spending tokens.

``OpenAIUpstream`` and ``AnthropicUpstream`` are real HTTP servers on
127.0.0.1 (port 0, background thread) that speak each API's exact wire format,
record what they receive, and inject faults on demand. See docs/providers.md.
"""

from __future__ import annotations

from hybridgate.testing._behaviour import Behaviour, RecordedRequest
from hybridgate.testing.anthropic_upstream import AnthropicUpstream
from hybridgate.testing.openai_upstream import OpenAIUpstream

__all__ = ["AnthropicUpstream", "Behaviour", "OpenAIUpstream", "RecordedRequest"]
