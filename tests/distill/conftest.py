"""The distill tests that touch the store run on both stores: ``store_section`` is the
gateway's ``store:`` configuration, SQLite (the default) or a private PostgreSQL database.
No skip when PostgreSQL is absent: ``.ci/run`` starts it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from hybridgate.testing.services import pg_database


@pytest.fixture(params=["sqlite", "postgres"])
def store_section(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    if request.param == "sqlite":
        yield {"kind": "sqlite"}
        return
    with pg_database() as dsn:
        yield {"kind": "postgres", "dsn": dsn}
