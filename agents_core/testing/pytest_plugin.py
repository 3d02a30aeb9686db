"""pytest fixture ``agents_core_db``: each test gets a fresh in-memory agents_core database.

Enable it with ``pytest_plugins = ["agents_core.testing.pytest_plugin"]`` in ``conftest.py``
(pytest-asyncio is needed, as for any async test).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from agents_core.db import Connection
from agents_core.testing import in_memory_db

__all__ = ["agents_core_db"]


@pytest_asyncio.fixture
async def agents_core_db() -> AsyncIterator[Connection]:
    async with in_memory_db() as database:
        yield database
