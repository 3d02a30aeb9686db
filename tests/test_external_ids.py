"""External ids in their own collection (``session_external_ids``, sharded by the key): a
failure halfway leaves nothing a later call cannot finish, a deletion releases the id, and the
sessions stored before the collection existed are moved (``agents_core.db.migrations``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from bson import ObjectId

from agents_core.db import InvalidStateError, MessagesRepository, SessionsRepository, get_database
from agents_core.db.migrations import LEGACY_EXTERNAL_ID_INDEX, migrate_external_ids
from agents_core.db.retention import sweep

pytestmark = pytest.mark.usefixtures("profiled_backend")


async def mappings() -> list[tuple[str, ObjectId]]:
    found = await get_database()["session_external_ids"].find().to_list()
    return sorted((raw["external_id"], raw["session_id"]) for raw in found)


async def test_a_mapping_whose_session_was_never_inserted_is_completed_once() -> None:
    # A creator that died between its two inserts: the mapping names a session that is not there.
    orphan_id = ObjectId()
    await get_database()["session_external_ids"].insert_one(
        {"external_namespace": "n", "user_id": None, "external_id": "x", "session_id": orphan_id}
    )
    repo = SessionsRepository()
    assert await repo.find_by_external_id("x", namespace="n") is None
    first = await repo.get_or_create_by_external_id("x", namespace="n", title="t")
    again = await repo.get_or_create_by_external_id("x", namespace="n")
    assert first.id == again.id == orphan_id
    assert (first.external_id, first.external_namespace, first.title) == ("x", "n", "t")
    assert await get_database()["sessions"].count_documents({"external_id": "x"}) == 1
    assert await mappings() == [("x", orphan_id)]


async def test_a_deletion_releases_the_external_id() -> None:
    repo = SessionsRepository()
    first = await repo.get_or_create_by_external_id("x", namespace="n", user_id="u")
    other = await repo.get_or_create_by_external_id("y", namespace="n", user_id="u")
    assert await repo.delete(first.id)
    assert await mappings() == [("y", other.id)]
    second = await repo.get_or_create_by_external_id("x", namespace="n", user_id="u")
    assert second.id != first.id
    # The retention sweep deletes what a deletion deletes, the mapping included.
    await MessagesRepository().create(second.id, "user", "hi")
    later = datetime.now(UTC) + timedelta(days=2)
    result = await sweep(timedelta(days=1), now=later)
    assert result.removed == 2
    assert await mappings() == []
    assert await get_database()["sessions"].count_documents({}) == 0


async def legacy_session(external_id: str) -> ObjectId:
    """A session stored the old way: its key on the session alone, under the old unique index."""
    sessions = get_database()["sessions"]
    await sessions.create_index(
        [("external_namespace", 1), ("user_id", 1), ("external_id", 1)],
        name=LEGACY_EXTERNAL_ID_INDEX,
        unique=True,
        partialFilterExpression={"external_id": {"$type": "string"}},
    )
    now = datetime.now(UTC)
    session_id = ObjectId()
    await sessions.insert_one(
        {
            "_id": session_id,
            "title": None,
            "user_id": None,
            "status": "active",
            "active_agent_id": None,
            "last_seq": 0,
            "cleared_through_seq": 0,
            "external_id": external_id,
            "external_namespace": "n",
            "created_at": now,
            "updated_at": now,
        }
    )
    return session_id


async def test_existing_external_ids_are_migrated_and_the_old_index_dropped() -> None:
    old = [await legacy_session(name) for name in ("a", "b")]
    await SessionsRepository().create("no external id")
    assert await migrate_external_ids() == 2
    assert await mappings() == [("a", old[0]), ("b", old[1])]
    assert LEGACY_EXTERNAL_ID_INDEX not in await get_database()["sessions"].index_information()
    assert await migrate_external_ids() == 0  # idempotent
    found = await SessionsRepository().find_by_external_id("a", namespace="n")
    assert found is not None
    assert found.id == old[0]
    again = await SessionsRepository().get_or_create_by_external_id("b", namespace="n")
    assert again.id == old[1]


async def test_a_session_stored_the_old_way_is_adopted_before_any_migration() -> None:
    old = await legacy_session("a")
    session = await SessionsRepository().get_or_create_by_external_id("a", namespace="n")
    assert session.id == old
    assert await mappings() == [("a", old)]
    assert await get_database()["sessions"].count_documents({"external_id": "a"}) == 1
    # Being deleted, it still holds the id.
    await get_database()["sessions"].update_one({"_id": old}, {"$set": {"status": "deleting"}})
    with pytest.raises(InvalidStateError):
        await SessionsRepository().get_or_create_by_external_id("a", namespace="n")
