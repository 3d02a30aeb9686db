"""ToolCallsRepository contract, on both backends."""

from __future__ import annotations

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidStateError,
    NotFoundError,
    RunsRepository,
    ToolCall,
    ToolCallsRepository,
    ToolCallStatus,
)
from tests.helpers import make_run

pytestmark = pytest.mark.usefixtures("backend")


async def test_create_appends_a_pending_call_that_names_its_run() -> None:
    run = await make_run()
    call = await ToolCallsRepository().create(str(run.id), "search", '{"q": "refund"}')
    assert isinstance(call, ToolCall)
    assert (call.status, call.output, call.run_id) == (ToolCallStatus.pending, None, run.id)
    assert str(run.id) in call.id
    stored = await ToolCallsRepository().find_by_run(run.id)
    assert [c.model_dump() for c in stored] == [call.model_dump()]


async def test_complete_updates_the_matching_call_not_the_first() -> None:
    repo = ToolCallsRepository()
    run = await make_run()
    calls = [await repo.create(run.id, f"tool{i}", f"in{i}") for i in range(3)]
    done = await repo.complete(calls[1].id, "out1", "success", 12.5)
    assert (done.id, done.tool_name, done.input, done.output) == (
        calls[1].id,
        "tool1",
        "in1",
        "out1",
    )
    assert (done.status, done.duration_ms, done.run_id) == (ToolCallStatus.success, 12.5, run.id)
    assert done.completed_at is not None
    stored = await repo.find_by_run(run.id)
    assert [c.status for c in stored] == ["pending", "success", "pending"]
    assert [c.tool_name for c in stored] == ["tool0", "tool1", "tool2"]


async def test_complete_once_only() -> None:
    repo = ToolCallsRepository()
    call = await repo.create((await make_run()).id, "clock", "{}")
    await repo.complete(call.id, "boom", ToolCallStatus.error, 3)
    with pytest.raises(InvalidStateError):
        await repo.complete(call.id, "again", "success", 1)
    (stored,) = await repo.find_by_run(call.run_id)
    assert (stored.output, stored.status) == ("boom", ToolCallStatus.error)


async def test_create_only_while_the_run_is_running() -> None:
    run = await make_run()
    await RunsRepository().complete(run.id, "completed")
    with pytest.raises(InvalidStateError):
        await ToolCallsRepository().create(run.id, "search", "{}")
    with pytest.raises(NotFoundError):
        await ToolCallsRepository().create(ObjectId(), "search", "{}")


async def test_complete_unknown_call_raises_not_found() -> None:
    run = await make_run()
    with pytest.raises(NotFoundError):
        await ToolCallsRepository().complete(f"{run.id}-{ObjectId()}", "x", "success", 1)
    with pytest.raises(NotFoundError):
        await ToolCallsRepository().complete(f"{ObjectId()}-{ObjectId()}", "x", "success", 1)


async def test_find_by_run_of_unknown_run_raises_not_found() -> None:
    with pytest.raises(NotFoundError):
        await ToolCallsRepository().find_by_run(ObjectId())


async def test_tool_calls_appear_in_the_run() -> None:
    run = await make_run()
    call = await ToolCallsRepository().create(run.id, "search", "{}")
    assert [c.id for c in (await RunsRepository().find_by_id(run.id)).tool_calls] == [call.id]
