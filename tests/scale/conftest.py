"""Fixtures for the scale tests: a private PostgreSQL database and Redis key prefix each.

No skips: ``.ci/run`` starts PostgreSQL and Redis; if they are missing, these tests fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from hybridgate.testing.services import pg_database, redis_url


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    with pg_database() as dsn:
        yield dsn


@pytest.fixture
def redis() -> str:
    return redis_url()
