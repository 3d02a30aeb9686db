"""agents_core.testing is public API: the in-memory database users get for their own tests."""

from __future__ import annotations

import pytest

from agents_core.db import (
    NotInitializedError,
    SessionDocument,
    SessionsRepository,
    default_connection,
)
from agents_core.db.documents import SESSION_PROJECTION
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


async def test_a_projection_given_to_a_read_is_left_as_it_was() -> None:
    # The mock's projection used to add "_id": 1 to the dict it was given: the layer's shared
    # projection of a session changed under every later read.
    shared = dict(SESSION_PROJECTION)
    async with in_memory_db() as database:
        session = await SessionsRepository().create("hello", user_id="u")
        await SessionsRepository().find_by_id(session.id)
        await SessionsRepository().list_active(user_id="u")
        await SessionsRepository().archive(session.id)
        projection = {"title": 0}
        sessions = database.collection(SessionDocument)
        found = await sessions.find_one({"_id": session.id}, projection)
        assert found is not None
        assert "title" not in found
        await sessions.find_one_and_update({"_id": session.id}, {"$set": {"x": 1}}, projection)
        assert projection == {"title": 0}
    assert shared == SESSION_PROJECTION
