"""Conversation lifecycle contract, on both backends: message pages, paged session listings,
delete, fork and retention (with a controllable clock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidInputError,
    MessagesRepository,
    NotFoundError,
    RunsRepository,
    Session,
    SessionsRepository,
    SessionStatus,
    ToolCallsRepository,
    get_database,
)
from agents_core.db.limits import APPEND_GRACE
from agents_core.db.repositories import _listing, lifecycle
from agents_core.db.retention import SweepResult, sweep
from tests.helpers import Clock, make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")

sessions = SessionsRepository()
messages = MessagesRepository()


async def fill(session_id: ObjectId, count: int) -> None:
    for i in range(count):
        await messages.create(session_id, "user" if i % 2 == 0 else "assistant", f"m{i + 1}")


async def documents(collection: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await get_database()[collection].find(query).to_list()
    return found


async def everything_of(session_id: ObjectId) -> dict[str, int]:
    """How many documents of each collection still belong to the session."""
    db = get_database()
    run_ids = [raw["_id"] async for raw in db["runs"].find({"session_id": session_id})]
    return {
        "sessions": await db["sessions"].count_documents({"_id": session_id}),
        "messages": await db["messages"].count_documents({"session_id": session_id}),
        "runs": len(run_ids),
        "payload_chunks": await db["payload_chunks"].count_documents({"run_id": {"$in": run_ids}}),
    }


NOTHING = {"sessions": 0, "messages": 0, "runs": 0, "payload_chunks": 0}


async def session_with_everything(user_id: str = "u") -> tuple[Session, list[ObjectId]]:
    """A session with 6 messages and two runs, one with a spilled (chunked) payload."""
    session = await make_session("full", user_id=user_id)
    agent = await make_agent(f"agent-{session.id}")
    await fill(session.id, 6)
    run_ids = []
    for size in (10, 70 * 1024):
        run = await RunsRepository().create(session.id, agent.id)
        call = await ToolCallsRepository().create(run.id, "t", "x" * size)
        await ToolCallsRepository().complete(call.id, "ok", "success", 1.0)
        run_ids.append(run.id)
    return session, run_ids


# ---------------------------------------------------------------------------------------------
# Message pages


async def test_message_pages_before_and_after_are_exclusive_and_oldest_first() -> None:
    session = await make_session()
    await fill(session.id, 30)
    latest = await messages.find_page(session.id, limit=5)
    assert [m.seq for m in latest] == [26, 27, 28, 29, 30]
    assert [m.seq for m in await messages.find_page(session.id, before=26, limit=5)] == [
        21,
        22,
        23,
        24,
        25,
    ]
    assert [m.seq for m in await messages.find_page(session.id, after=3, limit=4)] == [4, 5, 6, 7]
    assert [m.seq for m in await messages.find_page(session.id, after=27, limit=10)] == [28, 29, 30]
    assert [m.seq for m in await messages.find_page(session.id, before=3, limit=10)] == [1, 2]
    between = await messages.find_page(session.id, after=10, before=20, limit=4)
    assert [m.seq for m in between] == [11, 12, 13, 14]
    between = await messages.find_page(session.id, after=10, before=13, limit=50)
    assert [m.seq for m in between] == [11, 12]
    assert await messages.find_page(session.id, after=30) == []
    assert await messages.find_page(session.id, before=1) == []
    assert await messages.find_page(session.id, after=4, before=5) == []
    assert [m.content for m in latest] == [f"m{i}" for i in range(26, 31)]


async def test_walking_pages_both_ways_returns_the_history_once_in_order() -> None:
    session = await make_session()
    await fill(session.id, 23)
    backward: list[int] = []
    page = await messages.find_page(session.id, limit=5)
    while page:
        backward = [m.seq for m in page] + backward
        page = await messages.find_page(session.id, before=page[0].seq, limit=5)
    forward: list[int] = []
    page = await messages.find_page(session.id, after=0, limit=5)
    while page:
        forward += [m.seq for m in page]
        page = await messages.find_page(session.id, after=page[-1].seq, limit=5)
    assert backward == forward == list(range(1, 24))


async def test_pages_skip_holes_left_by_failed_appends() -> None:
    session = await make_session()
    await fill(session.id, 40)
    # Appends that reserved a seq and died before inserting leave holes: 11..25 and 31..33.
    await get_database()["messages"].delete_many(
        {"session_id": session.id, "seq": {"$in": [*range(11, 26), 31, 32, 33]}}
    )
    page = await messages.find_page(session.id, before=34, limit=5)
    assert [m.seq for m in page] == [26, 27, 28, 29, 30]
    page = await messages.find_page(session.id, before=26, limit=5)
    assert [m.seq for m in page] == [6, 7, 8, 9, 10]
    page = await messages.find_page(session.id, after=8, limit=5)
    assert [m.seq for m in page] == [9, 10, 26, 27, 28]
    page = await messages.find_page(session.id, after=28, limit=5)
    assert [m.seq for m in page] == [29, 30, 34, 35, 36]
    page = await messages.find_page(session.id, after=10, before=26, limit=5)
    assert page == []


async def test_a_page_of_an_unknown_or_empty_session() -> None:
    with pytest.raises(NotFoundError):
        await messages.find_page(ObjectId())
    empty = await make_session()
    assert await messages.find_page(empty.id) == []
    assert await messages.find_page(empty.id, after=0) == []


# ---------------------------------------------------------------------------------------------
# Paged session listings


async def walk(
    user_id: str | None = None, *, limit: int, everything: bool = False
) -> list[ObjectId]:
    seen: list[ObjectId] = []
    cursor = None
    while True:
        if everything:
            assert user_id is not None
            page = await sessions.list_by_user(user_id, limit=limit, cursor=cursor)
        else:
            page = await sessions.list_active_page(user_id=user_id, limit=limit, cursor=cursor)
        seen += [s.id for s in page.items]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


async def test_list_active_page_walks_in_list_active_order() -> None:
    created = [await make_session(f"s{i}", user_id="u" if i % 3 else "v") for i in range(10)]
    for session in created:
        await backdate(session.id, 1)
    await messages.create(created[2].id, "user", "bump")  # newest activity first
    expected = [s.id for s in await sessions.list_active(limit=100)]
    assert len(expected) == 10
    assert expected[0] == created[2].id
    assert await walk(limit=3) == expected
    assert await walk(limit=10) == expected
    mine = [s.id for s in await sessions.list_active(user_id="u", limit=100)]
    assert await walk("u", limit=2) == mine
    assert len(mine) == 6


async def test_pages_that_straddle_snapshot_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_listing, "LISTING_CHUNK_IDS", 3)
    created = [await make_session(f"s{i}", user_id="u") for i in range(11)]
    for session in created:
        await backdate(session.id, 1)
    await messages.create(created[4].id, "user", "bump")
    expected = [s.id for s in await sessions.list_active(user_id="u", limit=100)]
    for limit in (1, 2, 4, 5, 10):
        assert await walk("u", limit=limit, everything=True) == expected, limit
    chunks = await documents("session_listings", {})
    assert {len(chunk["ids"]) for chunk in chunks} == {3, 2}  # 11 ids in chunks of 3


async def test_a_listing_that_fits_one_page_stores_no_snapshot() -> None:
    for i in range(3):
        await make_session(f"s{i}", user_id="u")
    page = await sessions.list_active_page(user_id="u", limit=3)
    assert (len(page.items), page.next_cursor) == (3, None)
    assert await documents("session_listings", {}) == []
    page = await sessions.list_active_page(user_id="nobody")
    assert (page.items, page.next_cursor) == ([], None)


async def test_list_by_user_includes_archived_and_only_that_user() -> None:
    mine = [await make_session(f"s{i}", user_id="u") for i in range(5)]
    await make_session("other", user_id="v")
    for session in mine:
        await backdate(session.id, 1)
    await sessions.archive(mine[1].id)
    listed = await walk("u", limit=2, everything=True)
    assert sorted(listed) == sorted(s.id for s in mine)
    assert listed[0] == mine[1].id  # archiving is activity too
    assert mine[1].id not in await walk("u", limit=2)


async def test_a_walk_returns_each_session_of_its_first_page_once_whatever_changes() -> None:
    created = [await make_session(f"s{i}", user_id="u") for i in range(12)]
    first = await sessions.list_by_user("u", limit=4)
    order = [s.id for s in first.items]
    # Meanwhile: sessions not yet listed are bumped to the front, one is archived, one listed
    # already is bumped again, one is deleted, and new ones start.
    await messages.create(created[0].id, "user", "bump")
    await messages.create(created[1].id, "user", "bump")
    await sessions.archive(created[2].id)
    await messages.create(order[0], "user", "bump")
    await sessions.delete(created[3].id)
    late = await make_session("late", user_id="u")
    cursor = first.next_cursor
    while cursor is not None:
        page = await sessions.list_by_user("u", limit=4, cursor=cursor)
        order += [s.id for s in page.items]
        cursor = page.next_cursor
    assert len(order) == len(set(order))
    assert set(order) == {s.id for s in created} - {created[3].id}
    assert late.id not in order
    # The order is the first page's: oldest activity last, whatever was bumped since.
    assert order[-3:] == [created[2].id, created[1].id, created[0].id]


async def test_a_cursor_is_refused_for_another_listing_or_once_expired() -> None:
    for i in range(5):
        await make_session(f"s{i}", user_id="u")
    page = await sessions.list_by_user("u", limit=2)
    assert page.next_cursor is not None
    with pytest.raises(InvalidInputError) as info:
        await sessions.list_by_user("v", limit=2, cursor=page.next_cursor)
    assert info.value.field == "cursor"
    with pytest.raises(InvalidInputError):
        await sessions.list_active_page(user_id="u", limit=2, cursor=page.next_cursor)
    # The TTL index removes a snapshot after LISTING_TTL; then the cursor is refused.
    await get_database()["session_listings"].delete_many({})
    with pytest.raises(InvalidInputError, match="expired"):
        await sessions.list_by_user("u", limit=2, cursor=page.next_cursor)


async def test_snapshots_expire_through_a_ttl_index() -> None:
    info = await get_database()["session_listings"].index_information()
    assert info["expires_at_ttl"]["expireAfterSeconds"] == 0


# ---------------------------------------------------------------------------------------------
# Delete


async def test_delete_removes_the_session_with_everything_it_owns() -> None:
    session, run_ids = await session_with_everything()
    other, other_runs = await session_with_everything()
    assert (await everything_of(session.id))["payload_chunks"] > 0
    assert await sessions.delete(session.id) is True
    assert await everything_of(session.id) == NOTHING
    for run_id in run_ids:
        with pytest.raises(NotFoundError):
            await RunsRepository().find_by_id(run_id)
    kept = await everything_of(other.id)
    assert kept == {"sessions": 1, "messages": 6, "runs": 2, "payload_chunks": 1}
    assert len(await ToolCallsRepository().find_by_run(other_runs[1])) == 1


async def test_delete_is_idempotent_and_the_session_is_gone_for_everyone() -> None:
    session = await make_session()
    await fill(session.id, 2)
    assert await sessions.delete(str(session.id)) is True
    assert await sessions.delete(session.id) is False
    assert await sessions.delete(ObjectId()) is False
    with pytest.raises(NotFoundError):
        await sessions.find_by_id(session.id)
    with pytest.raises(NotFoundError):
        await messages.create(session.id, "user", "too late")
    assert await everything_of(session.id) == NOTHING


async def test_a_session_being_deleted_is_invisible_to_readers_and_writers() -> None:
    session = await make_session(user_id="u")
    agent = await make_agent()
    await fill(session.id, 3)
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"status": SessionStatus.deleting.value}}
    )
    calls: list[Any] = [
        sessions.find_by_id(session.id),
        sessions.set_active_agent(session.id, agent.id),
        sessions.archive(session.id),
        sessions.fork(session.id),
        messages.create(session.id, "user", "hi"),
        messages.find_by_session(session.id, 10),
        messages.find_page(session.id),
        messages.get_last_message(session.id),
        RunsRepository().create(session.id, agent.id),
    ]
    for call in calls:
        with pytest.raises(NotFoundError):
            await call
    assert await sessions.list_active(user_id="u") == []
    assert (await sessions.list_by_user("u")).items == []
    # ...and a later delete finishes it.
    assert await sessions.delete(session.id) is True
    assert await everything_of(session.id) == NOTHING


@pytest.fixture
def crash_at() -> Iterator[list[str]]:
    """Make the deletion raise after the named step (a crash, in-process)."""
    steps: list[str] = []

    def hook(name: str) -> None:
        if steps and name == steps[0]:
            raise RuntimeError(f"crash after {name}")

    lifecycle.after_step = hook
    try:
        yield steps
    finally:
        lifecycle.after_step = None


@pytest.mark.parametrize(
    "step", ["runs-recorded", "runs-deleted", "chunks-deleted", "messages-deleted"]
)
async def test_a_delete_that_crashed_midway_is_finished_by_the_next(
    crash_at: list[str], step: str
) -> None:
    session, run_ids = await session_with_everything()
    crash_at.append(step)
    with pytest.raises(RuntimeError):
        await sessions.delete(session.id)
    crash_at.clear()
    with pytest.raises(NotFoundError):  # hidden from the first step on
        await sessions.find_by_id(session.id)
    assert await sessions.delete(session.id) is True
    assert await everything_of(session.id) == NOTHING
    assert await get_database()["payload_chunks"].count_documents({"run_id": {"$in": run_ids}}) == 0


# ---------------------------------------------------------------------------------------------
# Fork


async def test_fork_copies_the_whole_history_and_remembers_its_origin() -> None:
    agent = await make_agent()
    source = await make_session("Original", user_id="u")
    await sessions.set_active_agent(source.id, agent.id)
    await fill(source.id, 7)
    await messages.create(source.id, "user", "keyed", idempotency_key="turn-8")
    fork = await sessions.fork(source.id)
    assert fork.id != source.id
    assert (fork.title, fork.user_id, fork.active_agent_id) == ("Original", "u", agent.id)
    assert (fork.forked_from, fork.forked_at_seq, fork.last_seq) == (source.id, 8, 8)
    assert fork.status is SessionStatus.active
    stored = await sessions.find_by_id(fork.id, message_limit=0)
    assert stored.model_dump(exclude={"messages"}) == fork.model_dump()
    original = await messages.find_page(source.id, limit=100)
    copied = await messages.find_page(fork.id, limit=100)
    assert [(m.seq, m.role, m.content, m.idempotency_key) for m in copied] == [
        (m.seq, m.role, m.content, m.idempotency_key) for m in original
    ]
    assert {m.session_id for m in copied} == {fork.id}
    assert not {m.id for m in copied} & {m.id for m in original}
    # Each history goes on independently.
    appended = await messages.create(fork.id, "user", "only in the fork")
    assert appended.seq == 9
    assert len(await messages.find_page(source.id, limit=100)) == 8
    again = await messages.create(fork.id, "user", "keyed", idempotency_key="turn-8")
    assert again.id == copied[-1].id


async def test_fork_at_a_seq_with_a_title() -> None:
    source = await make_session("Original")
    await fill(source.id, 10)
    await sessions.archive(source.id)
    fork = await sessions.fork(str(source.id), at_seq=4, title="What if")
    assert (fork.title, fork.forked_at_seq, fork.last_seq) == ("What if", 4, 4)
    assert fork.status is SessionStatus.active
    assert [m.content for m in await messages.find_page(fork.id)] == ["m1", "m2", "m3", "m4"]
    empty = await sessions.fork(source.id, at_seq=0)
    assert (empty.last_seq, await messages.find_page(empty.id)) == (0, [])
    assert (await messages.create(empty.id, "user", "fresh")).seq == 1


async def test_fork_copies_long_histories_in_bounded_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "FORK_WINDOW", 7)
    monkeypatch.setattr(lifecycle, "FORK_BATCH_BYTES", 10)  # a flush every 4 messages...
    monkeypatch.setattr(lifecycle, "FORK_INSERT_BATCH", 3)  # ...or every 3
    source = await make_session()
    await fill(source.id, 30)
    await get_database()["messages"].delete_one({"session_id": source.id, "seq": 15})  # a hole
    fork = await sessions.fork(source.id, at_seq=29)
    copied = await messages.find_page(fork.id, limit=100)
    assert [m.seq for m in copied] == [s for s in range(1, 30) if s != 15]
    assert [m.content for m in copied] == [f"m{s}" for s in range(1, 30) if s != 15]


async def test_a_fork_is_hidden_until_its_history_is_copied(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = await make_session(user_id="u")
    await fill(source.id, 5)
    seen: list[str] = []

    async def crash(*args: Any, **kwargs: Any) -> None:
        forks = await documents("sessions", {"forked_from": source.id})
        seen.extend(raw["status"] for raw in forks)
        raise RuntimeError("crash while copying")

    collection = get_database()["messages"]
    original_insert_many = type(collection).insert_many
    monkeypatch.setattr(type(collection), "insert_many", crash)
    with pytest.raises(RuntimeError):
        await sessions.fork(source.id)
    monkeypatch.setattr(type(collection), "insert_many", original_insert_many)
    assert seen == ["forking"]
    assert [s.id for s in await sessions.list_active(user_id="u")] == [source.id]
    # Retention removes the abandoned fork once it is idle.
    result = await sweep(timedelta(hours=1), now=datetime.now(UTC) + timedelta(hours=2))
    assert result.removed == 2
    assert await documents("sessions", {}) == []


# ---------------------------------------------------------------------------------------------
# Retention


async def backdate(session_id: ObjectId, days: float) -> None:
    """Make the session's last activity ``days`` old (what time passing does)."""
    await get_database()["sessions"].update_one(
        {"_id": session_id},
        {"$set": {"updated_at": datetime.now(UTC) - timedelta(days=days)}},
    )


async def test_sweep_removes_idle_sessions_whole_and_keeps_active_ones() -> None:
    old, _ = await session_with_everything()
    archived = await make_session("archived")
    await sessions.archive(archived.id)
    recent, _ = await session_with_everything()
    await backdate(old.id, 40)
    await backdate(archived.id, 31)
    await backdate(recent.id, 29)
    planned = await sweep(timedelta(days=30), dry_run=True)
    assert planned == SweepResult(removed=2, dry_run=True, messages=6, runs=2)
    assert await everything_of(old.id) != NOTHING  # a dry run changes nothing
    result = await sweep(timedelta(days=30))
    assert result == SweepResult(removed=2, resumed=0, kept=0)
    assert await everything_of(old.id) == NOTHING
    assert await everything_of(archived.id) == NOTHING
    assert await everything_of(recent.id) == {
        "sessions": 1,
        "messages": 6,
        "runs": 2,
        "payload_chunks": 1,
    }
    assert await sweep(timedelta(days=30)) == SweepResult()


async def test_sweep_with_a_controllable_clock() -> None:
    first = await make_session()
    await fill(first.id, 3)
    now = datetime.now(UTC)
    assert await sweep(timedelta(days=30), now=now + timedelta(days=29)) == SweepResult()
    assert await everything_of(first.id) == {
        "sessions": 1,
        "messages": 3,
        "runs": 0,
        "payload_chunks": 0,
    }
    result = await sweep(timedelta(days=30), now=now + timedelta(days=31))
    assert result.removed == 1
    assert await everything_of(first.id) == NOTHING


@pytest.mark.parametrize("same_millisecond", [False, True], ids=["later", "same-millisecond"])
async def test_a_session_that_becomes_active_while_swept_survives(
    monkeypatch: pytest.MonkeyPatch, clock: Clock, same_millisecond: bool
) -> None:
    idle = [await make_session(f"s{i}") for i in range(3)]
    for session in idle:
        await fill(session.id, 2)
    revived = idle[1].id
    claim = lifecycle.claim

    async def activity_before_the_claim(db: Any, session_id: ObjectId, *args: Any) -> bool:
        if session_id == revived:  # the user comes back between the sweep's read and its claim
            if not same_millisecond:
                clock.advance()
            await messages.create(session_id, "user", "I'm back")
        return await claim(db, session_id, *args)

    monkeypatch.setattr(lifecycle, "claim", activity_before_the_claim)
    # The sweep's clock is far ahead, so the revived session is still "idle" by it: only the
    # compare-and-set saves it, also when the append records the very millisecond the sweep
    # read (a fast machine): its seq tells, where a timestamp cannot.
    result = await sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=10))
    assert result == SweepResult(removed=2, resumed=0, kept=1)
    kept = await sessions.find_by_id(revived)
    assert [m.content for m in kept.messages] == ["m1", "m2", "I'm back"]
    for session in (idle[0], idle[2]):
        assert await everything_of(session.id) == NOTHING


async def test_a_sweep_waits_for_an_append_still_inserting_and_removes_it(
    monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    session = await make_session()
    await fill(session.id, 2)
    # An append has just reserved seq 3 (the session says so) and is still inserting.
    await get_database()["sessions"].update_one(
        {"_id": session.id}, {"$set": {"last_seq": 3, "updated_at": clock.now}}
    )
    waited: list[float] = []

    async def grace(seconds: float) -> None:
        """The deletion's wait for stragglers: the append lands meanwhile."""
        waited.append(seconds)
        straggler = {"session_id": session.id, "seq": 3, "role": "user", "content": "late"}
        await get_database()["messages"].insert_one(straggler)

    monkeypatch.setattr(lifecycle, "asyncio", SimpleNamespace(sleep=grace))
    result = await sweep(timedelta(days=1), now=clock.now + timedelta(days=2))
    assert result.removed == 1
    assert waited == [APPEND_GRACE.total_seconds()]
    assert await everything_of(session.id) == NOTHING


async def test_a_sweep_finishes_deletions_a_crash_left(crash_at: list[str]) -> None:
    session, _ = await session_with_everything()
    crash_at.append("runs-deleted")
    with pytest.raises(RuntimeError):
        await sessions.delete(session.id)
    crash_at.clear()
    result = await sweep(timedelta(days=365))
    assert result == SweepResult(removed=0, resumed=1, kept=0)
    assert await everything_of(session.id) == NOTHING


@pytest.mark.parametrize(
    ("older_than", "now", "field"),
    [
        (-timedelta(days=1), None, "older_than"),
        (30, None, "older_than"),
        (timedelta(days=10**6), None, "older_than"),
        (timedelta(days=1), "2026-01-01", "now"),
        (timedelta(days=1), datetime(2026, 1, 1), "now"),  # naive: which zone?
    ],
)
async def test_sweep_refuses_bad_input(older_than: Any, now: Any, field: str) -> None:
    session = await make_session()
    await backdate(session.id, 400)
    with pytest.raises(InvalidInputError) as info:
        await sweep(older_than, now=now)
    assert info.value.field == field
    assert len(await documents("sessions", {})) == 1
