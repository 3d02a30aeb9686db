"""An in-memory agents_core database for your own unit tests (no server needed).

Usage, as an async context manager::

    from agents_core.testing import in_memory_db
    from agents_core.db import SessionsRepository

    async def test_creates_session() -> None:
        async with in_memory_db():
            session = await SessionsRepository().create("hello")
            assert (await SessionsRepository().find_by_id(session.id)).title == "hello"

or as a pytest fixture: add ``pytest_plugins = ["agents_core.testing.pytest_plugin"]`` to your
``conftest.py`` and ask for ``agents_core_db``.

The mock's engine is synchronous under an async face: it is for logic, not for concurrency.
Needs the ``testing`` extra: ``pip install agents-core[testing]``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from agents_core.db.client import Connection, connect, swap_default
from agents_core.db.config import Settings
from agents_core.db.server import IN_MEMORY

__all__ = ["in_memory_client", "in_memory_db"]


def in_memory_client() -> Any:
    """A fresh in-memory stand-in for ``pymongo.AsyncMongoClient`` (tz-aware, like ours)."""
    import mongomock_ng
    from pymongo_async_mock import AsyncMongoMockClient

    from agents_core.testing import _compat

    _compat.apply()
    return AsyncMongoMockClient(mock_mongo_client=mongomock_ng.MongoClient(tz_aware=True))


@asynccontextmanager
async def in_memory_db(
    *, database: str | None = None, settings: Settings | None = None
) -> AsyncIterator[Connection]:
    """A connection to a new in-memory database, the layer's default while the block runs.

    Yields the connection (pass it to repositories explicitly to use several at once). On exit
    the default goes back to what it was before (nothing, or the connection of an enclosing
    ``in_memory_db``/``init_db``), so blocks can nest.
    """
    connection = await connect(
        client=in_memory_client(),
        database=database or f"test_{uuid.uuid4().hex[:12]}",
        settings=settings or Settings(),
        profile=IN_MEMORY,
    )
    previous = await swap_default(connection)
    try:
        yield connection
    finally:
        await swap_default(previous)
