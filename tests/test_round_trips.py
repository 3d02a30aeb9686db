"""Commands per call, counted with PyMongo command monitoring on the wire backend."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    MessagesRepository,
    ModelCall,
    RunsRepository,
    SessionsRepository,
    ToolCallsRepository,
    connect,
    default_connection,
    get_database,
)
from agents_core.db.documents._common import utcnow
from agents_core.db.retention import sweep
from agents_core.testing.commands import CommandCounter
from tests.helpers import make_agent, make_run, make_session

pytestmark = pytest.mark.usefixtures("wire_db")


async def commands(log: CommandCounter, call: Awaitable[Any]) -> list[str]:
    with log.recording() as names:
        await call
    return names


async def test_agent_operations(command_log: CommandCounter) -> None:
    repo = AgentsRepository()
    assert await commands(command_log, repo.create(CreateAgentDTO(name="a"))) == ["insert"]
    agent = await make_agent("b")
    assert await commands(command_log, repo.find_by_name("b")) == ["find"]
    assert await commands(command_log, repo.list_by_name(after="a", limit=5)) == ["find"]
    # Writes that return the document: update, then read it back (flat on every server).
    assert await commands(command_log, repo.update_instructions(agent.id, "x")) == [
        "update",
        "find",
    ]
    assert await commands(command_log, repo.enable_tool(agent.id, "t")) == ["update"]
    assert await commands(command_log, repo.enable_tool(agent.id, "t")) == ["update"]
    assert await commands(command_log, repo.get_tools(agent.id)) == ["find"]


async def test_session_operations(command_log: CommandCounter) -> None:
    repo = SessionsRepository()
    assert await commands(command_log, repo.create("x")) == ["insert"]
    session = await make_session()
    agent = await make_agent()
    for i in range(150):
        await MessagesRepository().create(session.id, "user", f"m{i}")
    assert await commands(command_log, repo.list_active()) == ["find"]
    assert await commands(command_log, repo.find_by_id(session.id)) == ["find", "find"]
    assert await commands(command_log, repo.set_active_agent(session.id, agent.id)) == [
        "find",
        "update",
        "find",
    ]
    assert await commands(command_log, repo.archive(session.id)) == ["update", "find"]


async def test_message_operations(command_log: CommandCounter) -> None:
    repo = MessagesRepository()
    session = await make_session()
    # The session's last seq is known from its creation: a compare-and-set, then the insert.
    assert await commands(command_log, repo.create(session.id, "user", "hi")) == [
        "update",
        "insert",
    ]
    for i in range(149):
        await repo.create(session.id, "assistant", f"m{i}")
    # 100 messages (more than a default first batch of 101 would hold with the limit) in one read.
    assert await commands(command_log, repo.find_by_session(session.id, 100)) == ["find", "find"]
    assert await commands(command_log, repo.find_by_session(session.id, 150)) == ["find", "find"]
    assert await commands(command_log, repo.get_last_message(session.id)) == ["find", "find"]
    empty = await make_session()
    assert await commands(command_log, repo.get_last_message(empty.id)) == ["find"]


async def test_idempotent_message_create(command_log: CommandCounter) -> None:
    repo = MessagesRepository()
    session = await make_session()
    first = await commands(command_log, repo.create(session.id, "user", "hi", idempotency_key="k"))
    assert first == ["find", "update", "insert"]
    repeat = await commands(command_log, repo.create(session.id, "user", "hi", idempotency_key="k"))
    assert repeat == ["find"]


async def test_external_id_and_item_operations(command_log: CommandCounter) -> None:
    sessions, messages = SessionsRepository(), MessagesRepository()
    assert await commands(command_log, sessions.find_by_external_id("x", namespace="n")) == ["find"]
    created = await commands(command_log, sessions.get_or_create_by_external_id("x", namespace="n"))
    assert created == ["find", "insert"]
    found = await commands(command_log, sessions.get_or_create_by_external_id("x", namespace="n"))
    assert found == ["find"]
    session = await sessions.get_or_create_by_external_id("x", namespace="n")
    turn = [{"role": "user", "content": str(i)} for i in range(4)]
    # A compare-and-set from the last_seq this connection saw, then one ordered insert.
    assert await commands(command_log, messages.append_items(session.id, turn)) == [
        "update",
        "insert",
    ]
    # Another writer appended since: the compare-and-set misses and an $inc reserves the range.
    layer = default_connection()
    elsewhere = await connect(client=layer.client, database=layer.database.name)
    # Another process (here: another connection) reads the session first, then reserves.
    assert await commands(
        command_log, MessagesRepository(elsewhere).append_items(session.id, turn)
    ) == [
        "find",
        "update",
        "insert",
    ]
    assert await commands(command_log, messages.append_items(session.id, turn)) == [
        "update",
        "findAndModify",
        "insert",
    ]
    # With a key: look it up first; a repeat reads the key's message, then its batch.
    keyed = messages.append_items(session.id, turn, idempotency_key="k")
    assert await commands(command_log, keyed) == ["find", "update", "insert"]
    repeat = messages.append_items(session.id, turn, idempotency_key="k")
    assert await commands(command_log, repeat) == ["find", "find"]
    assert await commands(command_log, messages.find_items(session.id, limit=2)) == ["find", "find"]
    assert await commands(command_log, messages.pop_last(session.id)) == ["find", "find", "update"]
    assert await commands(command_log, messages.clear(session.id)) == ["find", "update", "delete"]
    assert await commands(command_log, messages.clear(session.id)) == ["find", "delete"]


async def test_run_operations(command_log: CommandCounter) -> None:
    repo = RunsRepository()
    session, agent = await make_session(), await make_agent()
    # The agent, the insert, then the session (a run inserted after a deletion's mark is
    # removed again, never left behind: issue 25, D1).
    assert await commands(command_log, repo.create(session.id, agent.id)) == [
        "find",
        "insert",
        "find",
    ]
    # The runner's path: the records it read stand for the agent; the session is checked after.
    assert await commands(command_log, repo.start(session, agent)) == ["insert", "find"]
    run = await make_run()
    assert await commands(command_log, repo.update_usage(run.id, 1, 0.1)) == ["update", "find"]
    call = ModelCall(model="m", started_at=utcnow(), duration_ms=1.0, input_tokens=3)
    assert await commands(command_log, repo.record_model_call(run.id, call)) == ["update"]
    assert await commands(command_log, repo.complete(run.id, "completed")) == ["update", "find"]


async def test_tool_call_operations(command_log: CommandCounter) -> None:
    repo = ToolCallsRepository()
    run = await make_run()
    assert await commands(command_log, repo.create(run.id, "t", "{}")) == ["update"]
    call = await repo.create(run.id, "t", "{}")
    assert await commands(command_log, repo.complete(call.id, "out", "success", 1.0)) == [
        "update",
        "find",
    ]
    for _ in range(20):
        await repo.create(run.id, "t", "{}")
    assert await commands(command_log, repo.find_by_run(run.id)) == ["find"]


async def test_message_page_is_two_commands_at_any_position(command_log: CommandCounter) -> None:
    repo = MessagesRepository()
    session = await make_session()
    for i in range(150):
        await repo.create(session.id, "user", f"m{i}")
    for call in (
        repo.find_page(session.id, limit=120),
        repo.find_page(session.id, before=140, limit=50),
        repo.find_page(session.id, after=10, limit=50),
        repo.find_page(session.id, after=10, before=100, limit=1000),
    ):
        assert await commands(command_log, call) == ["find", "find"]
    assert await commands(command_log, repo.find_page(session.id, after=150)) == ["find"]


async def test_session_listing_pages(command_log: CommandCounter) -> None:
    repo = SessionsRepository()
    for i in range(5):
        await make_session(f"s{i}", user_id="u")
    # Fits one page: the order, then the sessions; no snapshot.
    assert await commands(command_log, repo.list_by_user("u", limit=5)) == ["find", "find"]
    # More than a page: the snapshot is stored too; each later page is two commands.
    first = await repo.list_active_page(user_id="u", limit=2)
    assert await commands(command_log, repo.list_active_page(user_id="u", limit=2)) == [
        "find",
        "insert",
        "find",
    ]
    assert await commands(
        command_log, repo.list_active_page(user_id="u", limit=2, cursor=first.next_cursor)
    ) == ["find", "find"]


@pytest.mark.bulk
async def test_fork_is_four_commands_and_five_per_thousand_messages(
    command_log: CommandCounter,
) -> None:
    repo = SessionsRepository()
    session = await make_session()
    await get_database()["messages"].insert_many(
        [
            {"session_id": session.id, "seq": seq, "role": "user", "content": f"m{seq}"}
            for seq in range(1, 2501)
        ]
    )
    await get_database()["sessions"].update_one({"_id": session.id}, {"$set": {"last_seq": 2500}})
    names = await commands(command_log, repo.fork(session.id))
    window = ["find", *["insert"] * 4]  # 1,000 seq values read, inserted 250 at a time
    last_window = ["find", "insert", "insert"]
    assert names == ["find", "insert", *window, *window, *last_window, "find", "update"]
    assert await commands(command_log, repo.fork(session.id, at_seq=0)) == [
        "find",
        "insert",
        "find",
        "update",
    ]


async def test_delete_commands(command_log: CommandCounter) -> None:
    repo = SessionsRepository()
    bare = await make_session()
    # Mark, read, look for runs, delete messages, delete the session.
    assert await commands(command_log, repo.delete(bare.id)) == [
        "update",
        "find",
        "find",
        "delete",
        "delete",
    ]
    run = await make_run()
    # With runs: record their ids, delete them, delete their payload chunks.
    assert await commands(command_log, repo.delete(run.session_id)) == [
        "update",
        "find",
        "find",
        "update",
        "delete",
        "delete",
        "delete",
        "delete",
    ]
    assert await commands(command_log, repo.delete(run.session_id)) == ["update", "find"]


async def test_retention_sweep_commands(command_log: CommandCounter) -> None:
    for _ in range(2):
        await make_session()
    later = datetime.now(UTC) + timedelta(days=2)
    # Resumable deletions (none), idle candidates, then per session the deletion, claim
    # first; then the candidates again (none left); then the running runs (none: no session
    # to look up for orphans).
    assert await commands(command_log, sweep(timedelta(days=1), now=later)) == [
        "find",
        "find",
        *["update", "find", "delete", "delete"] * 2,
        "find",
        "find",
    ]


async def test_an_append_on_a_session_this_process_has_not_seen_reads_it_first(
    command_log: CommandCounter,
) -> None:
    session = await make_session()
    elsewhere = MessagesRepository(
        await connect(
            client=default_connection().client, database=default_connection().database.name
        )
    )
    # Another process (here: another connection) knows nothing of the session yet.
    assert await commands(command_log, elsewhere.create(session.id, "user", "a")) == [
        "find",
        "update",
        "insert",
    ]
    # Its hint is now stale for this connection: the compare-and-set misses, $inc takes over.
    assert await commands(command_log, MessagesRepository().create(session.id, "user", "b")) == [
        "update",
        "findAndModify",
        "insert",
    ]
    seqs = [m.seq for m in await MessagesRepository().find_by_session(session.id, 10)]
    assert seqs == [1, 2]
