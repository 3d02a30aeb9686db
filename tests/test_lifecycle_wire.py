"""Lifecycle operations racing each other on the wire server, and crashing midway.

Concurrency on the mock proves nothing (its engine is synchronous), so these run on the wire
backend only. The crash tests run a deletion or a sweep in a child process that exits
(``os._exit``, no clean-up of any kind) right after a given step, then check that nothing is
half-visible, re-run it, and check that nothing is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    Message,
    MessagesRepository,
    NotFoundError,
    RunsRepository,
    Session,
    SessionsRepository,
    get_database,
)
from agents_core.db.repositories import lifecycle
from agents_core.db.retention import sweep
from tests.helpers import HANG_GUARD_S, make_session
from tests.test_lifecycle import NOTHING, everything_of, fill, session_with_everything

pytestmark = [pytest.mark.wire_only, pytest.mark.usefixtures("wire_db")]

sessions = SessionsRepository()
messages = MessagesRepository()


async def test_a_walk_under_concurrent_activity_returns_every_session_once() -> None:
    created = [await make_session(f"s{i}", user_id="u") for i in range(40)]
    rng = random.Random(7)
    done = asyncio.Event()
    bumped = asyncio.Event()
    bumps = 0

    async def activity() -> None:
        nonlocal bumps
        while not done.is_set():
            target = rng.choice(created)
            await messages.create(target.id, "user", "bump")
            bumps += 1
            bumped.set()
            if bumps % 10 == 0:
                await make_session("new", user_id="u")
            if bumps % 15 == 0:
                await sessions.archive(rng.choice(created).id)

    async def moved_around() -> None:
        """Until the writers have bumped sessions twice more: every page boundary sees activity,
        however fast the walk and the writers are."""
        target = bumps + 2
        while bumps < target:
            bumped.clear()
            await asyncio.wait_for(bumped.wait(), HANG_GUARD_S)

    async def walk() -> list[ObjectId]:
        seen: list[ObjectId] = []
        page = await sessions.list_by_user("u", limit=3)
        while True:
            seen += [s.id for s in page.items]
            if page.next_cursor is None:
                done.set()
                return seen
            await moved_around()
            page = await sessions.list_by_user("u", limit=3, cursor=page.next_cursor)

    writers = [asyncio.create_task(activity()) for _ in range(3)]
    try:
        seen = await walk()
    finally:
        done.set()
        await asyncio.gather(*writers)
    assert len(seen) == len(set(seen)) == 40
    assert set(seen) == {s.id for s in created}


async def append(session_id: ObjectId, i: int) -> Message | None:
    try:
        return await messages.create(session_id, "user", f"late {i}")
    except NotFoundError:
        return None


@pytest.mark.slow
async def test_delete_racing_appends_leaves_nothing() -> None:
    refused = []
    for _ in range(3):
        session, _ = await session_with_everything()
        results = await asyncio.gather(
            *(append(session.id, i) for i in range(15)),
            sessions.delete(session.id),
            *(append(session.id, i) for i in range(15, 30)),
        )
        assert results[15] is True
        refused += [r for r in results[:15] + results[16:] if r is None]
        # Every append either failed (after the mark) or was deleted with the rest.
        assert await everything_of(session.id) == NOTHING
        with pytest.raises(NotFoundError):
            await messages.create(session.id, "user", "after")
    assert refused  # the race really happened: some appends came after the mark


async def test_retention_racing_new_activity_removes_sessions_whole_or_not_at_all() -> None:
    idle = []
    for i in range(16):
        session = await make_session(f"s{i}")
        await fill(session.id, 2)
        idle.append(session)
    later = datetime.now(UTC) + timedelta(days=10)

    async def activity(session_id: ObjectId) -> list[Message]:
        stored = []
        for i in range(4):
            message = await append(session_id, i)
            if message is not None:
                stored.append(message)
            await asyncio.sleep(0)
        return stored

    sweeper = asyncio.ensure_future(sweep(timedelta(days=1), now=later))
    appended = await asyncio.gather(*(activity(s.id) for s in idle))
    result = await sweeper
    gone = 0
    for session, stored in zip(idle, appended, strict=True):
        left = await everything_of(session.id)
        if left["sessions"] == 0:
            gone += 1
            assert left == NOTHING
            continue
        kept = await sessions.find_by_id(session.id)
        history = await messages.find_page(session.id, limit=100)
        assert [m.seq for m in history] == list(range(1, kept.last_seq + 1))  # no part missing
        assert {m.id for m in stored} <= {m.id for m in history}
    assert gone == result.removed
    assert result.removed + result.kept == len(idle)


CHILD = """
import asyncio, os, sys
from datetime import UTC, datetime, timedelta
from agents_core.db import SessionsRepository, init_db
from agents_core.db.repositories import lifecycle
from agents_core.db.retention import sweep

uri, database, step, what, session_id = sys.argv[1:]

def crash(name):
    if name == step:
        os._exit(17)

lifecycle.after_step = crash

async def main():
    await init_db(uri, database=database)
    if what == "delete":
        await SessionsRepository().delete(session_id)
    else:
        await sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2))

asyncio.run(main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("what", ["delete", "retention"])
@pytest.mark.parametrize(
    "step", ["runs-recorded", "runs-deleted", "chunks-deleted", "messages-deleted"]
)
async def test_a_process_killed_midway_leaves_nothing_half_visible_and_a_rerun_finishes(
    wire_uri: str, what: str, step: str
) -> None:
    session, run_ids = await session_with_everything(user_id="u")
    survivor = None
    if what == "delete":
        survivor, _ = await session_with_everything(user_id="u")
    child = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", CHILD, wire_uri, get_database().name, step, what, str(session.id)],
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == 17, child.stderr.decode()
    # Killed midway: something is left, but none of it is reachable through the session.
    assert await everything_of(session.id) != NOTHING
    stuck = await get_database()["sessions"].find_one({"_id": session.id})
    assert stuck is not None
    assert stuck["status"] == "deleting"
    with pytest.raises(NotFoundError):
        await sessions.find_by_id(session.id)
    with pytest.raises(NotFoundError):
        await messages.find_page(session.id)
    with pytest.raises(NotFoundError):
        await messages.create(session.id, "user", "hello?")
    assert session.id not in {s.id for s in (await sessions.list_by_user("u")).items}
    # A run still there has all its payload: runs always go before their chunks.
    for run_id in run_ids:
        with contextlib.suppress(NotFoundError):
            await RunsRepository().find_by_id(run_id)
    # The re-run (the same command again) finishes it.
    if what == "delete":
        assert await sessions.delete(session.id) is True
    else:
        assert (
            await sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2))
        ).resumed == 1
    assert await everything_of(session.id) == NOTHING
    assert await get_database()["payload_chunks"].count_documents({"run_id": {"$in": run_ids}}) == 0
    if survivor is not None:
        assert (await everything_of(survivor.id))["messages"] == 6


@pytest.mark.slow
async def test_a_fork_racing_the_deletion_of_its_source_is_whole_or_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lifecycle, "FORK_WINDOW", 20)  # many windows: the deletion lands between
    messages_collection = get_database()["messages"]
    insert_many = type(messages_collection).insert_many
    deleted_during_copy: list[ObjectId] = []  # the source to delete once the copy has begun

    async def copy_batch(collection: Any, documents: Any, *args: Any, **kwargs: Any) -> Any:
        if deleted_during_copy:  # the fork's first window: the deletion runs now, for sure
            await sessions.delete(deleted_during_copy.pop())
        return await insert_many(collection, documents, *args, **kwargs)

    monkeypatch.setattr(type(messages_collection), "insert_many", copy_batch)
    outcomes = set()
    # ``None``: the deletion runs inside the copy (the outcome is known: refused); the delays
    # let the two race wherever they meet.
    for delay in (None, 0.0, 0.02, 0.05, 0.2):
        source = await make_session(user_id="forks")
        await messages_collection.insert_many(
            [
                {"session_id": source.id, "seq": seq, "role": "user", "content": f"m{seq}"}
                for seq in range(1, 301)
            ]
        )
        await get_database()["sessions"].update_one({"_id": source.id}, {"$set": {"last_seq": 300}})

        async def delete_later(
            session_id: ObjectId = source.id, delay: float | None = delay
        ) -> None:
            if delay is None:
                deleted_during_copy.append(session_id)
            else:
                await asyncio.sleep(delay)
                await sessions.delete(session_id)

        fork, _ = await asyncio.gather(
            sessions.fork(source.id), delete_later(), return_exceptions=True
        )
        if isinstance(fork, NotFoundError):
            outcomes.add("refused")
        else:
            assert isinstance(fork, Session), fork
            outcomes.add("whole")
            assert len(await messages.find_page(fork.id, limit=1000)) == 300
        # No fork is left half-copied, visible or hidden.
        for raw in await get_database()["sessions"].find({"forked_from": source.id}).to_list():
            assert raw["status"] == "active"
            assert (
                await get_database()["messages"].count_documents({"session_id": raw["_id"]}) == 300
            )
    assert "refused" in outcomes  # the deletion inside the copy, at least
