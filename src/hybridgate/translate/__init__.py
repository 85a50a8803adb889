"""Pure wire-format translations between the OpenAI and Anthropic APIs (no I/O)."""
