"""RunsRepository contract, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidStateError,
    NotFoundError,
    Run,
    RunsRepository,
    RunStatus,
    ToolCallsRepository,
    ToolCallStatus,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from tests.helpers import Clock, common_prefix, make_agent, make_run, make_session

pytestmark = pytest.mark.usefixtures("backend")


async def test_create_starts_a_running_run() -> None:
    session, agent = await make_session(), await make_agent()
    run = await RunsRepository().create(str(session.id), str(agent.id))
    assert isinstance(run, Run)
    assert (run.status, run.tokens, run.cost, run.tool_calls) == (RunStatus.running, 0, 0.0, [])
    assert run.started_at.tzinfo is not None
    assert run.completed_at is None
    stored = await RunsRepository().find_by_id(run.id)
    assert stored.model_dump() == run.model_dump()


async def test_create_needs_an_existing_session_and_agent() -> None:
    session, agent = await make_session(), await make_agent()
    with pytest.raises(NotFoundError) as info:
        await RunsRepository().create(ObjectId(), agent.id)
    assert info.value.entity == "session"
    with pytest.raises(NotFoundError) as info:
        await RunsRepository().create(session.id, ObjectId())
    assert info.value.entity == "agent"
    assert await get_database()["runs"].count_documents({}) == 0


@pytest.mark.parametrize("status", ["completed", RunStatus.failed])
async def test_complete_once(status: str, clock: Clock) -> None:
    run = await make_run()
    finished_at = clock.advance()
    done = await RunsRepository().complete(run.id, status, "boom" if status == "failed" else None)
    assert done.status == status
    assert (done.started_at, done.completed_at) == (run.started_at, finished_at)
    with pytest.raises(InvalidStateError):
        await RunsRepository().complete(run.id, "completed")
    assert (await RunsRepository().find_by_id(run.id)).status == status


async def test_complete_records_the_error() -> None:
    run = await make_run()
    done = await RunsRepository().complete(str(run.id), "failed", error="model timed out")
    assert done.error == "model timed out"


async def test_complete_unknown_run_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        await RunsRepository().complete(ObjectId(), "completed")


async def test_update_usage_adds_up_also_after_completion() -> None:
    run = await make_run()
    repo = RunsRepository()
    await repo.update_usage(run.id, 100, 0.25)
    await repo.complete(run.id, "completed")
    final = await repo.update_usage(str(run.id), 50, 0.5)
    assert (final.tokens, final.cost, final.status) == (150, 0.75, RunStatus.completed)


async def test_update_usage_of_unknown_run_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        await RunsRepository().update_usage(ObjectId(), 1, 0.1)


async def test_list_by_session_is_in_start_order(clock: Clock) -> None:
    session, agent = await make_session(), await make_agent()
    repo = RunsRepository()
    later = await repo.create(session.id, agent.id)
    clock.advance(-1)  # started a millisecond earlier (another process's clock, say)
    earlier = await repo.create(session.id, agent.id)
    tied = await repo.create(session.id, agent.id)  # the same millisecond: then by id
    listed = await repo.list_by_session(session.id)
    assert [r.id for r in listed] == [earlier.id, tied.id, later.id]
    assert [r.id for r in await repo.list_by_session(session.id, limit=2)] == [tied.id, later.id]


async def test_ids_by_prefix_name_the_runs_a_prefix_starts() -> None:
    first, second = await make_run(), await make_run()
    ids = str(first.id), str(second.id)
    common = common_prefix(*ids)  # one process: the same time and process digits
    repo = RunsRepository()
    assert await repo.list_ids_by_prefix(ids[1]) == [second.id]
    assert sorted(await repo.list_ids_by_prefix(common)) == sorted([first.id, second.id])
    assert len(await repo.list_ids_by_prefix(common, limit=1)) == 1
    # A session's id is no run's: each repository answers for its own collection.
    assert await repo.list_ids_by_prefix(str(first.session_id)) == []


async def test_recent_ids_are_the_runs_started_last_newest_first() -> None:
    now = utcnow()
    made = []
    for hours in (0, 2, 30, 24 * 50, 24 * 365 * 3):
        run = await make_run()
        await get_database()["runs"].update_one(
            {"_id": run.id}, {"$set": {"started_at": now - timedelta(hours=hours)}}
        )
        made.append(run.id)
    repo = RunsRepository()
    assert await repo.list_recent_ids(limit=3) == made[:3]
    windowed = default_connection().profile.windowed_listings  # reads back about two years
    assert await repo.list_recent_ids() == made[:4] + ([] if windowed else made[4:])


async def test_stale_runs_can_be_found_and_abandoned() -> None:
    run = await make_run()
    fresh = await make_run()
    await get_database()["runs"].update_one(
        {"_id": run.id}, {"$set": {"started_at": run.started_at - timedelta(hours=2)}}
    )
    stale = await RunsRepository().list_stale(timedelta(hours=1))
    assert [r.id for r in stale] == [run.id]
    abandoned = await RunsRepository().mark_abandoned(run.id)
    assert (abandoned.status, abandoned.error) == (RunStatus.failed, "abandoned")
    assert await RunsRepository().list_stale(timedelta(hours=1)) == []
    with pytest.raises(InvalidStateError):
        await RunsRepository().mark_abandoned(run.id)
    assert fresh.id in {r.id for r in await RunsRepository().list_stale(timedelta(0))}


async def test_a_token_total_that_would_overflow_is_refused_unchanged() -> None:
    run = await make_run()
    await RunsRepository().update_usage(run.id, 2**62, 1.0)
    with pytest.raises(InvalidStateError):
        await RunsRepository().update_usage(run.id, 2**62, 1.0)
    stored = await RunsRepository().find_by_id(run.id)
    assert (stored.tokens, stored.cost) == (2**62, 1.0)


async def test_mark_abandoned_closes_the_pending_tool_calls_in_the_same_update() -> None:
    run = await make_run()
    calls = ToolCallsRepository()
    done = await calls.create(run.id, "search", '{"q": 1}')
    completed = await calls.complete(done.id, "found", "success", 12.0)
    pending = [await calls.create(run.id, name, "{}") for name in ("slow", "stuck")]
    abandoned = await RunsRepository().mark_abandoned(run.id)
    assert [(c.tool_name, c.status, c.output) for c in abandoned.tool_calls] == [
        ("search", ToolCallStatus.success, "found"),
        ("slow", ToolCallStatus.error, "abandoned"),
        ("stuck", ToolCallStatus.error, "abandoned"),
    ]
    assert abandoned.completed_at is not None
    for call in abandoned.tool_calls[1:]:
        assert call.completed_at == abandoned.completed_at
    # the call completed earlier keeps its own completion (a timestamp comparison would be flaky:
    # both can fall in the same millisecond)
    assert abandoned.tool_calls[0].completed_at == completed.completed_at
    assert abandoned.tool_calls[0].duration_ms == 12.0
    stored = await calls.find_by_run(run.id)
    assert [c.model_dump() for c in stored] == [c.model_dump() for c in abandoned.tool_calls]
    with pytest.raises(InvalidStateError):  # closed: a late completion is refused
        await calls.complete(pending[0].id, "late", "success", 1.0)


async def test_complete_leaves_pending_tool_calls_alone() -> None:
    """Only abandoning closes tool calls: a run completed by its owner keeps what it recorded."""
    run = await make_run()
    call = await ToolCallsRepository().create(run.id, "search", "{}")
    failed = await RunsRepository().complete(run.id, "failed", "boom")
    assert [(c.id, c.status, c.output) for c in failed.tool_calls] == [
        (call.id, ToolCallStatus.pending, None)
    ]
