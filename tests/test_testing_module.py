"""agents_core.testing is public API: the in-memory database users get for their own tests."""

from __future__ import annotations

import pytest

from agents_core.db import NotInitializedError, SessionsRepository, default_connection
from agents_core.testing import in_memory_db

pytest_plugins = ["agents_core.testing.pytest_plugin"]


async def test_in_memory_db_context_manager_gives_a_fresh_database() -> None:
    async with in_memory_db() as database:
        assert default_connection() is database
        await SessionsRepository().create("hello")
        assert [s.title for s in await SessionsRepository().list_active()] == ["hello"]
    with pytest.raises(NotInitializedError):
        await SessionsRepository().list_active()
    async with in_memory_db():
        assert await SessionsRepository().list_active() == []


async def test_pytest_fixture(agents_core_db: object) -> None:
    session = await SessionsRepository().create("from fixture")
    assert (await SessionsRepository().find_by_id(session.id)).title == "from fixture"
