"""Concurrent writers, on every backend: the wire server is the one that matters, on both
server profiles (the mock's engine is synchronous, so there it only checks the bookkeeping)."""

from __future__ import annotations

import asyncio

import pytest
from bson import ObjectId

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    InvalidStateError,
    MessagesRepository,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
    get_database,
)
from tests.helpers import make_agent, make_run, make_session

pytestmark = pytest.mark.usefixtures("profiled_backend")


async def test_200_concurrent_appends_get_seq_one_to_200() -> None:
    session = await make_session()
    repo = MessagesRepository()
    created = await asyncio.gather(*(repo.create(session.id, "user", f"m{i}") for i in range(200)))
    assert sorted(m.seq for m in created) == list(range(1, 201))
    stored = await repo.find_by_session(session.id, 200)
    assert [m.seq for m in stored] == list(range(1, 201))
    assert {m.content for m in stored} == {f"m{i}" for i in range(200)}
    assert {m.seq: m.content for m in stored} == {m.seq: m.content for m in created}


async def test_concurrent_idempotent_repeats_store_one_message() -> None:
    session = await make_session()
    repo = MessagesRepository()
    results = await asyncio.gather(
        *(repo.create(session.id, "user", "once", idempotency_key="turn-7") for _ in range(10))
    )
    assert len({m.id for m in results}) == 1
    assert len(await repo.find_by_session(session.id, 100)) == 1
    assert (await SessionsRepository().find_by_id(session.id)).last_seq == 1  # one seq consumed


async def test_concurrent_enable_tool_keeps_one_entry() -> None:
    agent = await make_agent()
    repo = AgentsRepository()
    await asyncio.gather(*(repo.enable_tool(agent.id, "search") for _ in range(20)))
    assert await repo.get_tools(agent.id) == ["search"]


@pytest.mark.slow
async def test_100_concurrent_runs_with_10_concurrent_tool_calls_each() -> None:
    session, agent = await make_session(), await make_agent()
    runs, calls = RunsRepository(), ToolCallsRepository()
    started = await asyncio.gather(*(runs.create(session.id, agent.id) for _ in range(100)))

    async def work(run_id: ObjectId, n: int) -> None:
        created = await asyncio.gather(
            *(calls.create(run_id, f"tool{i}", f"in-{n}-{i}") for i in range(10))
        )
        await asyncio.gather(
            *(
                calls.complete(c.id, f"out-{c.input}", "success", float(i))
                for i, c in enumerate(created)
            ),
            *(runs.update_usage(run_id, 7, 0.25) for _ in range(10)),
        )
        await runs.complete(run_id, "completed")

    await asyncio.gather(*(work(run.id, n) for n, run in enumerate(started)))
    for n, run in enumerate(started):
        stored = await runs.find_by_id(run.id)
        assert (stored.status, stored.tokens, stored.cost) == ("completed", 70, 2.5)
        assert sorted(c.input for c in stored.tool_calls) == sorted(
            f"in-{n}-{i}" for i in range(10)
        )
        assert all(
            c.output == f"out-{c.input}" and c.status == "success" for c in stored.tool_calls
        )
        assert len({c.id for c in stored.tool_calls}) == 10


async def test_concurrent_complete_succeeds_exactly_once() -> None:
    run = await make_run()
    results = await asyncio.gather(
        RunsRepository().complete(run.id, "completed"),
        RunsRepository().complete(run.id, "failed", "late"),
        return_exceptions=True,
    )
    assert sum(isinstance(r, InvalidStateError) for r in results) == 1
    assert sum(not isinstance(r, BaseException) for r in results) == 1


async def test_concurrent_usage_and_tool_calls_add_up() -> None:
    run = await make_run()
    runs, calls = RunsRepository(), ToolCallsRepository()
    await asyncio.gather(*(runs.update_usage(run.id, 3, 0.5) for _ in range(40)))
    created = await asyncio.gather(*(calls.create(run.id, f"t{i}", f"in{i}") for i in range(20)))
    await asyncio.gather(
        *(calls.complete(c.id, f"out-{c.tool_name}", "success", 1.0) for c in created)
    )
    final = await runs.find_by_id(run.id)
    assert (final.tokens, final.cost) == (120, 20.0)
    assert len(final.tool_calls) == 20
    assert all(c.output == f"out-{c.tool_name}" for c in final.tool_calls)


async def test_concurrent_get_or_create_makes_one_agent() -> None:
    dto = CreateAgentDTO(name="shared", tools=["search"])
    agents = await asyncio.gather(*(AgentsRepository().get_or_create(dto) for _ in range(20)))
    assert len({agent.id for agent in agents}) == 1
    assert await get_database()["agents"].count_documents({"name": "shared"}) == 1
