"""Tool-call payloads never push a run toward MongoDB's 16 MB limit (both backends)."""

from __future__ import annotations

import asyncio
from typing import Any

import bson
import pytest

from agents_core.db import (
    DatabaseError,
    InvalidStateError,
    NotFoundError,
    RunsRepository,
    Settings,
    ToolCallsRepository,
    get_database,
    init_db,
)
from agents_core.db.client import get_settings
from tests.helpers import make_run

pytestmark = pytest.mark.usefixtures("backend")

MB = 1024 * 1024


async def run_document_size(run_id: object) -> int:
    raw = await get_database()["runs"].find_one({"_id": run_id})
    assert raw is not None
    return len(bson.encode(raw))


async def with_settings(**overrides: Any) -> None:
    """Re-target the layer at the same database with other limits."""
    database = get_database()
    await init_db(
        client=database.client,
        database=database.name,
        settings=Settings(**overrides),
        replace=True,
    )


async def test_a_20_mb_output_is_stored_beside_the_run_and_read_back_whole() -> None:
    repo = ToolCallsRepository()
    run = await make_run()
    big_input = "i" * (200 * 1024)
    output = ("0123456789abcdef" * (20 * MB // 16))[: 20 * MB - 3] + "end"
    call = await repo.create(run.id, "scrape", big_input)
    assert call.input == big_input
    assert call.input_payload is not None
    assert call.input_payload.size == len(big_input)
    done = await repo.complete(call.id, output, "success", 1500.0)
    assert (done.input, done.output) == (big_input, output)
    assert done.output_payload is not None
    assert done.output_payload.size == 20 * MB
    (stored,) = await repo.find_by_run(run.id)
    assert (stored.input, stored.output, stored.status) == (big_input, output, "success")
    assert (await RunsRepository().find_by_id(run.id)).tool_calls[0].output == output
    assert await run_document_size(run.id) < 64 * 1024


async def test_payloads_at_the_threshold_stay_inline() -> None:
    limit = get_settings().payload_inline_max_bytes
    run = await make_run()
    call = await ToolCallsRepository().create(run.id, "t", "x" * limit)
    assert call.input_payload is None
    spilled = await ToolCallsRepository().create(run.id, "t", "x" * (limit + 1))
    assert spilled.input_payload is not None
    assert [c.input for c in await ToolCallsRepository().find_by_run(run.id)] == [
        "x" * limit,
        "x" * (limit + 1),
    ]


async def test_a_spent_inline_budget_spills_small_payloads_too() -> None:
    await with_settings(run_inline_budget_bytes=1_000)
    repo = ToolCallsRepository()
    run = await make_run()
    calls = [await repo.create(run.id, "t", f"{i:03d}" * 100) for i in range(5)]
    assert [c.input_payload is None for c in calls] == [True, True, True, False, False]
    done = await repo.complete(calls[0].id, "o" * 600, "success", 1.0)
    assert done.output_payload is not None
    stored = await repo.find_by_run(run.id)
    assert [c.input for c in stored] == [f"{i:03d}" * 100 for i in range(5)]
    assert stored[0].output == "o" * 600
    raw = await get_database()["runs"].find_one({"_id": run.id})
    assert raw is not None
    assert raw["inline_bytes"] <= 1_000


async def test_a_run_embeds_at_most_the_configured_number_of_tool_calls() -> None:
    repo = ToolCallsRepository()
    run = await make_run()
    cap = get_settings().max_tool_calls_per_run
    assert cap == 1_000
    for i in range(20):
        await repo.create(run.id, "t", f'{{"i": {i}}}')
    # The other 980 in one write: SecantusDB rewrites the whole run on every update (~130 ms
    # each at this size), and one call at a time is what the calls above already showed.
    stored = await get_database()["runs"].find_one({"_id": run.id})
    assert stored is not None
    template = stored["tool_calls"][0]
    seeded = [
        {**template, "id": f"{run.id}-{bson.ObjectId()}", "input": f'{{"i": {i}}}'}
        for i in range(20, cap - 1)
    ]
    await get_database()["runs"].update_one(
        {"_id": run.id}, {"$push": {"tool_calls": {"$each": seeded}}}
    )
    await repo.create(run.id, "t", f'{{"i": {cap - 1}}}')  # the last one that fits
    with pytest.raises(InvalidStateError, match="1000 tool calls"):
        await repo.create(run.id, "t", "{}")
    calls = await repo.find_by_run(run.id)
    assert len(calls) == cap
    assert calls[-1].input == '{"i": 999}'
    await repo.complete(calls[500].id, "out", "success", 1.0)
    assert await run_document_size(run.id) < 1 * MB


async def test_deleting_a_run_deletes_its_payloads() -> None:
    run, other = await make_run(), await make_run()
    for target in (run, other):
        await ToolCallsRepository().create(target.id, "t", "y" * (100 * 1024))
    chunks = get_database()["payload_chunks"]
    assert await chunks.count_documents({}) == 2
    await RunsRepository().delete(run.id)
    assert await chunks.count_documents({}) == 1
    with pytest.raises(NotFoundError):
        await RunsRepository().find_by_id(run.id)
    with pytest.raises(NotFoundError):
        await RunsRepository().delete(run.id)
    assert (await ToolCallsRepository().find_by_run(other.id))[0].input == "y" * (100 * 1024)


async def test_a_corrupt_payload_is_reported_not_returned() -> None:
    run = await make_run()
    await ToolCallsRepository().create(run.id, "t", "z" * (100 * 1024))
    await get_database()["payload_chunks"].update_many({}, {"$set": {"data": b"tampered"}})
    with pytest.raises(DatabaseError, match="corrupt"):
        await ToolCallsRepository().find_by_run(run.id)


async def test_a_refused_spilled_write_leaves_no_chunks() -> None:
    run = await make_run()
    await RunsRepository().complete(run.id, "completed")
    with pytest.raises(InvalidStateError):
        await ToolCallsRepository().create(run.id, "t", "w" * (100 * 1024))
    assert await get_database()["payload_chunks"].count_documents({}) == 0


async def test_message_content_over_the_limit_is_refused() -> None:
    await with_settings(max_message_bytes=10)
    from agents_core.db import InvalidInputError, MessagesRepository
    from tests.helpers import make_session

    session = await make_session()
    with pytest.raises(InvalidInputError):
        await MessagesRepository().create(session.id, "user", "x" * 11)
    assert (await MessagesRepository().create(session.id, "user", "x" * 10)).seq == 1
    await asyncio.sleep(0)
