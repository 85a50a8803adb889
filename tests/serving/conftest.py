"""Fixtures for the serving tests."""

from serving.serving_kit import tiny_kit

__all__ = ["tiny_kit"]
