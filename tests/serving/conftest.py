"""Fixtures for the serving tests."""

from serving.serving_kit import env, tiny_kit

__all__ = ["env", "tiny_kit"]
