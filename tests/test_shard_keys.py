"""Every hot-path command filters on its collection's shard key (``SHARD_KEYS``).

On a sharded cluster, mongos sends a command whose filter (or inserted document) fixes the shard
key to one shard; any other command goes to every shard. This records each command the
repositories send, with PyMongo's command monitoring on the wire backend, and checks which are
targeted. The ones that are not are exactly those ``docs/architecture.md`` names as
scatter-gather, with what a cluster does about them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    ExternalSessionDTO,
    FinishedRun,
    FinishedToolCall,
    MessagesRepository,
    ModelCall,
    NewMessage,
    NewToolCall,
    RunsRepository,
    SessionsRepository,
    ToolCallResult,
    ToolCallsRepository,
)
from agents_core.db.documents import DOCUMENT_MODELS, SHARD_KEYS, utcnow
from agents_core.db.retention import sweep
from agents_core.testing.commands import CommandCounter

pytestmark = [
    pytest.mark.usefixtures("profiled_backend"),
    pytest.mark.parametrize("profiled_backend", ["wire", "wire-mongodb"], indirect=True),
]

#: Operations documented as scatter-gather (they filter on something else than the shard key).
SCATTER = {
    "sessions.list_active",
    # The first page of a listing reads the order of every matching session (by user or status).
    "sessions.list_active_page",
    "sessions.list_by_user",
    # The runs of a session are found by session_id (runs are sharded by _id), and their payload
    # chunks by run_id: a deletion, not a hot path.
    "sessions.delete",
    # Idle sessions are found by status and updated_at, across every shard.
    "retention.sweep",
    "runs.list_by_session",
    "runs.list_stale",
    # An id prefix is a range of _id, which a hashed key spreads over every shard (what a person
    # typed, resolved once per command: not a hot path).
    "sessions.list_ids_by_prefix",
    "runs.list_ids_by_prefix",
    # The newest ids, what a typed id's end is matched among (the CLI, once per command).
    "sessions.list_recent_ids",
    "runs.list_recent_ids",
    # A transcript page's runs are found by session_id, like runs.list_by_session.
    "sessions.find_transcript_page",
}


def _filters(name: str, command: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The collections and filters (or, for inserts, the documents) a command addresses."""
    collection = command[name]
    if name == "find":
        return [(collection, command.get("filter", {}))]
    if name == "findAndModify":
        return [(collection, command.get("query", {}))]
    if name == "update":
        return [(collection, update["q"]) for update in command["updates"]]
    if name == "delete":
        return [(collection, delete["q"]) for delete in command["deletes"]]
    if name == "insert":
        return [(collection, document) for document in command["documents"]]
    if name == "aggregate":  # its first stage picks the documents; each $lookup its own
        stages = command["pipeline"]
        joined = [
            (
                stage["$lookup"]["from"],
                stage["$lookup"]["pipeline"][0]["$match"]
                if "pipeline" in stage["$lookup"]
                else {"_id": "joined by the local field"},
            )
            for stage in stages
            if "$lookup" in stage
        ]
        return [(collection, stages[0].get("$match", {})), *joined]
    raise AssertionError(f"unexpected command {name}")


def _targeted(collection: str, where: dict[str, Any]) -> bool:
    key = SHARD_KEYS.get(collection)
    if key is None:  # an unsharded collection: one shard holds it
        return True
    field = next(iter(key))
    value = where.get(field)
    if isinstance(value, dict):  # an $in of a few ids is targeted too; ranges on hashed are not
        return set(value) <= {"$in"}
    return value is not None


async def test_hot_paths_filter_on_the_shard_key(command_log: CommandCounter) -> None:
    agents, sessions, messages = AgentsRepository(), SessionsRepository(), MessagesRepository()
    runs, calls = RunsRepository(), ToolCallsRepository()
    agent = await agents.create(CreateAgentDTO(name="sharded", tools=["t"]))
    session = await sessions.create("chat", user_id="u")
    run = await runs.create(session.id, agent.id)
    call = await calls.create(run.id, "t", "{}")
    big = await calls.create(run.id, "t", "x" * (70 * 1024))  # spilled to payload_chunks
    for i in range(3):
        await sessions.create(f"more {i}", user_id="u")
    listing = await sessions.list_by_user("u", limit=2)
    doomed = await sessions.create("doomed")
    doomed_run = await runs.create(doomed.id, agent.id)
    await calls.create(doomed_run.id, "t", "x" * (70 * 1024))

    now = datetime.now(UTC)
    framework_run = FinishedRun(
        source="framework",
        external_id="trace-1",
        session_id=session.id,
        agent_id=agent.id,
        started_at=now,
        completed_at=now,
        calls=[
            FinishedToolCall(tool_name="t", input="{}", output="x" * (70 * 1024), started_at=now)
        ],
    )
    model_call = ModelCall(model="m", started_at=utcnow(), duration_ms=1.0)

    async def complete_pending(calls: ToolCallsRepository, run_id: Any) -> None:
        # The two that record_model_call(tools) appended (the others have operations below).
        pending = [c for c in await calls.find_by_run(run_id) if c.status.value == "pending"]
        ends = [ToolCallResult(c.id, "ok", "success", 1.0) for c in pending[-2:]]
        await calls.complete_many(ends)

    operations: dict[str, Callable[[], Awaitable[object]]] = {
        "agents.create": lambda: agents.create(CreateAgentDTO(name="other")),
        "agents.find_by_id": lambda: agents.find_by_id(agent.id),
        "agents.find_by_name": lambda: agents.find_by_name("sharded"),
        "agents.list_by_name": lambda: agents.list_by_name(limit=5),
        "agents.enable_tool": lambda: agents.enable_tool(agent.id, "u"),
        "agents.get_tools": lambda: agents.get_tools(agent.id),
        "agents.update_instructions": lambda: agents.update_instructions(agent.id, "x"),
        "sessions.create": lambda: sessions.create("another", user_id="u"),
        "sessions.find_by_id": lambda: sessions.find_by_id(session.id),
        "sessions.find_with_agent": lambda: sessions.find_with_agent(session.id),
        "sessions.set_active_agent": lambda: sessions.set_active_agent(session.id, agent.id),
        "sessions.list_active": lambda: sessions.list_active(user_id="u"),
        "messages.create": lambda: messages.create(session.id, "user", "hi"),
        "messages.create(idempotent)": lambda: messages.create(
            session.id, "user", "hi", idempotency_key="k"
        ),
        "messages.find_by_session": lambda: messages.find_by_session(session.id, 10),
        "messages.get_last_message": lambda: messages.get_last_message(session.id),
        "sessions.find_by_external_id": lambda: sessions.find_by_external_id("c", namespace="n"),
        "sessions.get_or_create_by_external_id": lambda: sessions.get_or_create_by_external_id(
            "c", namespace="n", user_id="u"
        ),
        "sessions.get_or_create_many_by_external_id": lambda: (
            sessions.get_or_create_many_by_external_id(
                [
                    ExternalSessionDTO(external_id="c", namespace="n", user_id="u"),
                    ExternalSessionDTO(external_id="d", namespace="n", user_id="u"),
                ]
            )
        ),
        "messages.append_items": lambda: messages.append_items(
            session.id, [{"role": "user", "content": "a"}, {"type": "reasoning", "id": "r"}]
        ),
        "messages.find_items": lambda: messages.find_items(session.id, limit=10),
        "messages.pop_last": lambda: messages.pop_last(session.id),
        "messages.find_page": lambda: messages.find_page(session.id, before=2, limit=10),
        "sessions.list_active_page": lambda: sessions.list_active_page(user_id="u", limit=2),
        "sessions.list_by_user": lambda: sessions.list_by_user("u", limit=2),
        "sessions.list_by_user(next page)": lambda: sessions.list_by_user(
            "u", limit=2, cursor=listing.next_cursor
        ),
        "sessions.fork": lambda: sessions.fork(session.id, at_seq=1),
        "sessions.delete": lambda: sessions.delete(doomed.id),
        "retention.sweep": lambda: sweep(timedelta(days=1)),
        "runs.create": lambda: runs.create(session.id, agent.id),
        "runs.find_by_id": lambda: runs.find_by_id(run.id),
        "runs.insert_finished": lambda: runs.insert_finished([framework_run]),
        "runs.find_by_external_id": lambda: runs.find_by_external_id("trace-1", source="framework"),
        "runs.update_usage": lambda: runs.update_usage(run.id, 3, 0.1),
        "runs.add_score": lambda: runs.add_score(run.id, "quality", 0.5),
        "runs.record_model_call(tools)": lambda: runs.record_model_call(
            run.id, model_call, tool_calls=[NewToolCall("t", "{}"), NewToolCall("t", "{}")]
        ),
        "tool_calls.complete_many": lambda: complete_pending(calls, run.id),
        "messages.create_batch": lambda: messages.create_batch(
            session.id, [NewMessage("assistant", "a"), NewMessage("assistant", "b")]
        ),
        "runs.list_by_session": lambda: runs.list_by_session(session.id),
        "runs.list_stale": lambda: runs.list_stale(timedelta(0)),
        "sessions.list_ids_by_prefix": lambda: sessions.list_ids_by_prefix(str(session.id)[:8]),
        "runs.list_ids_by_prefix": lambda: runs.list_ids_by_prefix(str(run.id)[:8]),
        "sessions.list_recent_ids": lambda: sessions.list_recent_ids(limit=5),
        "runs.list_recent_ids": lambda: runs.list_recent_ids(limit=5),
        "agents.list_recent_ids": lambda: agents.list_recent_ids(limit=5),
        "sessions.find_transcript_page": lambda: sessions.find_transcript_page(session.id, limit=5),
        "tool_calls.create": lambda: calls.create(run.id, "t", "{}"),
        "tool_calls.complete": lambda: calls.complete(call.id, "ok", "success", 1.0),
        "tool_calls.complete(spilled)": lambda: calls.complete(big.id, "y" * 70_000, "error", 1),
        "tool_calls.find_by_run": lambda: calls.find_by_run(run.id),
        "runs.complete": lambda: runs.complete(run.id, "completed"),
        "sessions.archive": lambda: sessions.archive(session.id),
        "messages.clear": lambda: messages.clear(session.id),
        "runs.delete": lambda: runs.delete(run.id),
    }
    scattered: set[str] = set()
    for label, operation in operations.items():
        with command_log.capturing() as sent:
            await operation()
        assert sent, label
        for name, command in sent:
            for collection, where in _filters(name, command):
                if not _targeted(collection, where):
                    scattered.add(label)
    # runs.delete also deletes the run's payload chunks by run id: scatter-gather, documented.
    assert scattered == SCATTER | {"runs.delete"}


def test_every_unique_index_starts_with_its_collections_shard_key() -> None:
    """MongoDB enforces a unique index on a sharded collection only if it starts with the shard
    key (and refuses to shard a collection that has another): every declared one does."""
    checked = 0
    for document in DOCUMENT_MODELS:
        key = SHARD_KEYS.get(document.Settings.name)
        for index in document.Settings.indexes:
            spec = index.document
            if not spec.get("unique"):
                continue
            assert key is not None or document.Settings.name == "agents", spec["name"]
            if key is None:  # unsharded: one shard enforces it
                continue
            fields = list(spec["key"])
            assert fields[: len(key)] == list(key), (document.Settings.name, spec["name"])
            checked += 1
    # messages (2), payload_chunks, session_listings, session_external_ids
    assert checked == 5
