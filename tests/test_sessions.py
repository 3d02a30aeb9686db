"""SessionsRepository contract, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId

from agents_core.db import (
    MessagesRepository,
    NotFoundError,
    RunsRepository,
    Session,
    SessionsRepository,
    SessionStatus,
    SessionWithMessages,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from tests.helpers import Clock, common_prefix, make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")

ONE_MS = timedelta(milliseconds=1)


async def test_create_defaults() -> None:
    session = await SessionsRepository().create()
    assert session.title is None
    assert session.status is SessionStatus.active
    assert session.active_agent_id is None
    assert session.created_at.tzinfo is not None


async def test_find_by_id_returns_every_session_field_and_latest_messages() -> None:
    session = await make_session("Refunds", user_id="u1")
    for i in range(5):
        await MessagesRepository().create(session.id, "user", f"m{i}")
    found = await SessionsRepository().find_by_id(str(session.id), message_limit=3)
    assert isinstance(found, SessionWithMessages)
    assert isinstance(found, Session)
    assert set(Session.model_fields) <= set(SessionWithMessages.model_fields)
    assert (found.id, found.title, found.user_id) == (session.id, "Refunds", "u1")
    assert [m.content for m in found.messages] == ["m2", "m3", "m4"]
    assert [m.seq for m in found.messages] == [3, 4, 5]


async def test_find_by_id_of_an_empty_session_and_message_limit_zero() -> None:
    session = await make_session()
    assert (await SessionsRepository().find_by_id(session.id)).messages == []
    await MessagesRepository().create(session.id, "user", "hi")
    assert (await SessionsRepository().find_by_id(session.id, message_limit=0)).messages == []


async def test_find_by_id_of_unknown_session_raises_not_found() -> None:
    with pytest.raises(NotFoundError) as info:
        await SessionsRepository().find_by_id(ObjectId())
    assert info.value.entity == "session"


async def test_set_active_agent_needs_both(clock: Clock) -> None:
    session = await make_session()
    agent = await make_agent()
    later = clock.advance()
    updated = await SessionsRepository().set_active_agent(str(session.id), str(agent.id))
    assert updated.active_agent_id == agent.id
    assert (session.updated_at, updated.updated_at) == (later - ONE_MS, later)  # routing bumps it
    with pytest.raises(NotFoundError) as info:
        await SessionsRepository().set_active_agent(session.id, ObjectId())
    assert info.value.entity == "agent"
    with pytest.raises(NotFoundError) as info:
        await SessionsRepository().set_active_agent(ObjectId(), agent.id)
    assert info.value.entity == "session"


async def test_a_sessions_last_activity_never_goes_back_to_a_slower_clock(clock: Clock) -> None:
    """Every write of a session moves ``updated_at`` forward only (``$max``): a writer whose
    clock is behind (another machine's, or a read that came before a later writer's) set it
    back, and the session dropped down the listings and out of a user's search since then."""
    repo = SessionsRepository()
    session = await make_session()
    agent = await make_agent()
    newest = clock.advance(10)
    await MessagesRepository().create(session.id, "user", "hello")
    clock.now = newest - timedelta(milliseconds=5)  # the next writers' clocks are behind
    assert (await repo.set_active_agent(session.id, agent.id)).updated_at == newest
    await MessagesRepository().clear(session.id)
    await repo.archive(session.id)
    stored = await repo.find_by_id(session.id)
    assert stored is not None
    assert (stored.status, stored.updated_at) == (SessionStatus.archived, newest)


async def test_list_active_is_most_recently_updated_first(clock: Clock) -> None:
    repo = SessionsRepository()
    first = await make_session("first")
    for title in ("second", "third"):
        clock.advance()  # each write in a millisecond of its own
        await make_session(title)
    clock.advance()
    await MessagesRepository().create(first.id, "user", "bump")  # first is now the latest
    titles = [s.title for s in await repo.list_active()]
    assert titles == ["first", "third", "second"]
    assert [s.title for s in await repo.list_active(limit=2)] == ["first", "third"]


async def test_sessions_active_in_one_millisecond_are_listed_newest_created_first(
    clock: Clock,
) -> None:
    """The order is by the stored time of the last activity, then by id: within one
    millisecond the newer session comes first, whichever of them was touched last."""
    repo = SessionsRepository()
    older = await make_session("older", user_id="u")
    newer = await make_session("newer", user_id="u")
    await MessagesRepository().create(older.id, "user", "bump")  # the same millisecond
    assert [s.id for s in await repo.list_active()] == [newer.id, older.id]
    assert [s.id for s in (await repo.list_by_user("u", limit=1)).items] == [newer.id]
    assert [s.id for s in (await repo.list_active_page(limit=2)).items] == [newer.id, older.id]


async def test_list_active_scopes_to_user_and_skips_archived() -> None:
    repo = SessionsRepository()
    mine = await make_session("mine", user_id="alice")
    await make_session("theirs", user_id="bob")
    archived = await make_session("old", user_id="alice")
    result = await repo.archive(archived.id)
    assert result.status is SessionStatus.archived
    assert [s.id for s in await repo.list_active(user_id="alice")] == [mine.id]
    assert {s.title for s in await repo.list_active()} == {"mine", "theirs"}
    assert await repo.list_active(user_id="carol") == []


async def test_archive_is_idempotent_and_unknown_raises() -> None:
    session = await make_session()
    await SessionsRepository().archive(session.id)
    again = await SessionsRepository().archive(session.id)
    assert again.status == "archived"
    with pytest.raises(NotFoundError):
        await SessionsRepository().archive(ObjectId())


async def test_archiving_an_archived_session_changes_nothing() -> None:
    session = await make_session()
    first = await SessionsRepository().archive(session.id)
    again = await SessionsRepository().archive(session.id)
    assert again.updated_at == first.updated_at
    assert again.status is SessionStatus.archived


async def test_ids_by_prefix_name_the_sessions_a_prefix_starts() -> None:
    repo = SessionsRepository()
    first, second = await make_session("one"), await make_session("two")
    ids = str(first.id), str(second.id)
    # Ids made by one process share their first digits (time, process); the rest differ.
    common = common_prefix(*ids)
    assert await repo.list_ids_by_prefix(ids[0]) == [first.id]
    assert await repo.list_ids_by_prefix(ids[1].upper()) == [second.id]
    assert sorted(await repo.list_ids_by_prefix(common)) == sorted([first.id, second.id])
    assert len(await repo.list_ids_by_prefix(common, limit=1)) == 1
    unique = next(
        ids[0][:n] for n in range(len(common) + 1, 25) if not ids[1].startswith(ids[0][:n])
    )
    assert await repo.list_ids_by_prefix(unique) == [first.id]
    outside = "0" if ids[0][0] != "0" else "f"
    assert await repo.list_ids_by_prefix(outside) == []


async def test_recent_ids_are_the_latest_active_sessions_newest_first() -> None:
    """What the end of a typed id is matched among: active sessions by their last activity,
    a bounded read (windows of time on SecantusDB, back to about two years)."""
    now = utcnow()
    ages = {"now": 0, "hours": 3, "days": 5 * 24, "months": 300 * 24, "years": 3 * 365 * 24}
    made = {}
    for name, hours in ages.items():
        session = await make_session(name)
        await get_database()["sessions"].update_one(
            {"_id": session.id}, {"$set": {"updated_at": now - timedelta(hours=hours)}}
        )
        made[name] = session.id
    archived = await make_session("archived")
    await SessionsRepository().archive(archived.id)
    repo = SessionsRepository()
    newest = [made[name] for name in ("now", "hours", "days", "months")]
    assert await repo.list_recent_ids(limit=2) == newest[:2]
    assert await repo.list_recent_ids(limit=4) == newest
    # Beyond the last window of time, a server whose sorts read every match reads no further.
    windowed = default_connection().profile.windowed_listings
    assert await repo.list_recent_ids() == newest + ([] if windowed else [made["years"]])


async def test_ids_by_prefix_list_a_session_being_deleted() -> None:
    # A deletion that stopped midway is finished by naming the session again.
    session = await make_session()
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"status": SessionStatus.deleting.value}}
    )
    with pytest.raises(NotFoundError):
        await SessionsRepository().find_by_id(session.id)
    assert await SessionsRepository().list_ids_by_prefix(str(session.id)) == [session.id]


async def test_transcript_pages_place_runs_by_their_user_message_within_a_millisecond(
    clock: Clock,
) -> None:
    """Two turns, every write in one millisecond: each page holds the run of its own turn
    (the pages chose runs by clock: the second turn's run was on neither page)."""
    session, agent = await make_session(), await make_agent()
    messages, runs = MessagesRepository(), RunsRepository()
    started = []
    for turn in ("first", "second"):
        user = await messages.create(session.id, "user", f"{turn} question")
        started.append(await runs.start(session, agent, input_seq=user.seq))
        await messages.create(session.id, "assistant", f"{turn} answer")
    sessions = SessionsRepository()
    newer = await sessions.find_transcript_page(session.id, limit=2)
    assert [m.seq for m in newer.messages] == [3, 4]
    assert [run.id for run in newer.runs] == [started[1].id]
    older = await sessions.find_transcript_page(session.id, before=3, limit=2)
    assert [m.seq for m in older.messages] == [1, 2]
    assert [run.id for run in older.runs] == [started[0].id]


async def test_transcript_page_before_a_popped_message_holds_no_later_run() -> None:
    """The message after the page was popped: the page held the runs of every later turn."""
    session, agent = await make_session(), await make_agent()
    messages, runs = MessagesRepository(), RunsRepository()
    first = await messages.create(session.id, "user", "question")
    run = await runs.start(session, agent, input_seq=first.seq)
    await messages.create(session.id, "assistant", "answer")
    await messages.create(session.id, "user", "taken back")
    assert await messages.pop_last(session.id) is not None
    again = await messages.create(session.id, "user", "asked again")
    await runs.start(session, agent, input_seq=again.seq)
    page = await SessionsRepository().find_transcript_page(session.id, before=3)
    assert [m.seq for m in page.messages] == [1, 2]
    assert [r.id for r in page.runs] == [run.id]
