"""Commands per call, counted on every backend: PyMongo command monitoring on the wire server
(SecantusDB, or ``MONGODB_URI``: mongoeco's in ``make test-mongoeco``), the same wire server
told it is MongoDB (``wire-mongodb``), and the in-memory mock (``tests/mock_commands.py``).

Each expectation is given for the MongoDB profile, and for SecantusDB's where that differs
(``agents_core.db.server``): the mock and ``wire-mongodb`` always take the MongoDB path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    InvalidStateError,
    MessagesRepository,
    ModelCall,
    NewMessage,
    NewToolCall,
    RunsRepository,
    SessionsRepository,
    ToolCallResult,
    ToolCallsRepository,
    connect,
    default_connection,
    get_database,
)
from agents_core.db.documents import utcnow
from agents_core.db.retention import sweep
from agents_core.db.server import SECANTUSDB
from agents_core.runner import AgentRunner, ModelResponse, ScriptedModel, ToolRegistry, ToolRequest
from agents_core.testing.commands import CommandCounter
from tests.helpers import make_agent, make_run, make_session
from tests.mock_commands import mock_commands

Recording = Callable[[], AbstractContextManager[list[str]]]


@pytest.fixture
def log(profiled_backend: str, request: pytest.FixtureRequest) -> Recording:
    """What records the commands of the backend: the names sent inside a ``with`` block."""
    if profiled_backend == "mock":
        return mock_commands
    counter: CommandCounter = request.getfixturevalue("command_log")
    return counter.recording


async def commands(log: Recording, call: Awaitable[Any]) -> list[str]:
    with log() as names:
        await call
    return list(names)


def on(mongodb: list[str], secantusdb: list[str] | None = None) -> list[str]:
    """The commands expected on the default connection's profile."""
    if secantusdb is not None and default_connection().profile is SECANTUSDB:
        return secantusdb
    return mongodb


async def test_agent_operations(log: Recording) -> None:
    repo = AgentsRepository()
    assert await commands(log, repo.create(CreateAgentDTO(name="a"))) == ["insert"]
    agent = await make_agent("b")
    assert await commands(log, repo.find_by_name("b")) == ["find"]
    assert await commands(log, repo.list_by_name(after="a", limit=5)) == ["find"]
    # A write that returns the document: one findAndModify (SecantusDB: update, read back).
    assert await commands(log, repo.update_instructions(agent.id, "x")) == on(
        ["findAndModify"], ["update", "find"]
    )
    assert await commands(log, repo.enable_tool(agent.id, "t")) == ["update"]
    assert await commands(log, repo.enable_tool(agent.id, "t")) == ["update"]
    assert await commands(log, repo.get_tools(agent.id)) == ["find"]


async def test_session_operations(log: Recording) -> None:
    repo = SessionsRepository()
    assert await commands(log, repo.create("x")) == ["insert"]
    session = await make_session()
    agent = await make_agent()
    for i in range(150):
        await MessagesRepository().create(session.id, "user", f"m{i}")
    assert await commands(log, repo.list_active()) == ["find"]
    assert await commands(log, repo.find_by_id(session.id)) == ["find", "find"]
    assert await commands(log, repo.set_active_agent(session.id, agent.id)) == on(
        ["find", "findAndModify"], ["find", "update", "find"]
    )
    assert await commands(log, repo.archive(session.id)) == on(
        ["findAndModify"], ["update", "find"]
    )
    # Archived already: the guarded write misses, one read tells which case it is.
    assert await commands(log, repo.archive(session.id)) == on(
        ["findAndModify", "find"], ["update", "find"]
    )


async def test_message_operations(log: Recording) -> None:
    repo = MessagesRepository()
    session = await make_session()
    # An $inc reserves the seq, then the insert (SecantusDB: a compare-and-set on the last
    # seq known from the session's creation).
    assert await commands(log, repo.create(session.id, "user", "hi")) == on(
        ["findAndModify", "insert"], ["update", "insert"]
    )
    for i in range(149):
        await repo.create(session.id, "assistant", f"m{i}")
    # 100 messages (more than a default first batch of 101 would hold with the limit) in one read.
    assert await commands(log, repo.find_by_session(session.id, 100)) == ["find", "find"]
    assert await commands(log, repo.find_by_session(session.id, 150)) == ["find", "find"]
    assert await commands(log, repo.get_last_message(session.id)) == ["find", "find"]
    empty = await make_session()
    assert await commands(log, repo.get_last_message(empty.id)) == ["find"]


async def test_idempotent_message_create(log: Recording) -> None:
    repo = MessagesRepository()
    session = await make_session()
    first = await commands(log, repo.create(session.id, "user", "hi", idempotency_key="k"))
    assert first == on(["find", "findAndModify", "insert"], ["find", "update", "insert"])
    repeat = await commands(log, repo.create(session.id, "user", "hi", idempotency_key="k"))
    assert repeat == ["find"]


async def test_external_id_and_item_operations(log: Recording) -> None:
    sessions, messages = SessionsRepository(), MessagesRepository()
    # The external id's mapping and its session: one aggregate (SecantusDB: a find, and one
    # by _id when the mapping exists).
    assert await commands(log, sessions.find_by_external_id("x", namespace="n")) == on(
        ["aggregate"], ["find"]
    )
    # Created: look up, insert the mapping, insert the session it names.
    created = await commands(log, sessions.get_or_create_by_external_id("x", namespace="n"))
    assert created == on(["aggregate", "insert", "insert"], ["find", "insert", "insert"])
    found = await commands(log, sessions.get_or_create_by_external_id("x", namespace="n"))
    assert found == on(["aggregate"], ["find", "find"])
    session = await sessions.get_or_create_by_external_id("x", namespace="n")
    turn = [{"role": "user", "content": str(i)} for i in range(4)]
    # One reservation of the range, then one ordered insert (SecantusDB: a compare-and-set
    # from the last_seq this connection saw).
    assert await commands(log, messages.append_items(session.id, turn)) == on(
        ["findAndModify", "insert"], ["update", "insert"]
    )
    layer = default_connection()
    elsewhere = await connect(
        client=layer.client, database=layer.database.name, profile=layer.profile
    )
    # Another process (here: another connection): SecantusDB reads the session first.
    assert await commands(log, MessagesRepository(elsewhere).append_items(session.id, turn)) == on(
        ["findAndModify", "insert"], ["find", "update", "insert"]
    )
    # Another writer appended since: on SecantusDB the compare-and-set misses, $inc takes over.
    assert await commands(log, messages.append_items(session.id, turn)) == on(
        ["findAndModify", "insert"], ["update", "findAndModify", "insert"]
    )
    # With a key: look it up first; a repeat reads the key's message, then its batch.
    keyed = messages.append_items(session.id, turn, idempotency_key="k")
    assert await commands(log, keyed) == on(
        ["find", "findAndModify", "insert"], ["find", "update", "insert"]
    )
    repeat = messages.append_items(session.id, turn, idempotency_key="k")
    assert await commands(log, repeat) == ["find", "find"]
    assert await commands(log, messages.find_items(session.id, limit=2)) == ["find", "find"]
    assert await commands(log, messages.pop_last(session.id)) == ["find", "find", "update"]
    assert await commands(log, messages.clear(session.id)) == ["find", "update", "delete"]
    assert await commands(log, messages.clear(session.id)) == ["find", "delete"]


async def test_run_operations(log: Recording) -> None:
    repo = RunsRepository()
    session, agent = await make_session(), await make_agent()
    # The agent, the insert, then the session (a run inserted after a deletion's mark is
    # removed again, never left behind: issue 25, D1).
    assert await commands(log, repo.create(session.id, agent.id)) == [
        "find",
        "insert",
        "find",
    ]
    # The runner's path: the records it read stand for the agent; the session is checked after.
    assert await commands(log, repo.start(session, agent)) == ["insert", "find"]
    run = await make_run()
    assert await commands(log, repo.update_usage(run.id, 1, 0.1)) == on(
        ["findAndModify"], ["update", "find"]
    )
    call = ModelCall(model="m", started_at=utcnow(), duration_ms=1.0, input_tokens=3)
    assert await commands(log, repo.record_model_call(run.id, call)) == ["update"]
    # A score is one guarded $push on every server; a retry of one that landed reads once.
    assert await commands(log, repo.add_score(run.id, "q", 1, score_id="s")) == ["update"]
    assert await commands(log, repo.add_score(run.id, "q", 1, score_id="s")) == [
        "update",
        "find",
    ]
    # Finishing adds the run to its day's totals (run_days): one more command.
    assert await commands(log, repo.complete(run.id, "completed")) == on(
        ["findAndModify", "update"], ["update", "find", "update"]
    )
    # Usage added after the run finished is added to its day too.
    assert await commands(log, repo.update_usage(run.id, 1, 0.1)) == on(
        ["findAndModify", "update"], ["update", "find", "update"]
    )
    # Completed already: the guarded write misses, one read tells "not found" from this.
    with pytest.raises(InvalidStateError):
        await commands(log, repo.complete(run.id, "completed"))
    assert await commands(log, _refused(repo.complete(run.id, "failed"))) == on(
        ["findAndModify", "find"], ["update", "find"]
    )


async def test_tool_call_operations(log: Recording) -> None:
    repo = ToolCallsRepository()
    run = await make_run()
    assert await commands(log, repo.create(run.id, "t", "{}")) == ["update"]
    call = await repo.create(run.id, "t", "{}")
    assert await commands(log, repo.complete(call.id, "out", "success", 1.0)) == on(
        ["findAndModify"], ["update", "find"]
    )
    for _ in range(20):
        await repo.create(run.id, "t", "{}")
    assert await commands(log, repo.find_by_run(run.id)) == ["find"]


async def test_message_page_is_two_commands_at_any_position(log: Recording) -> None:
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
        assert await commands(log, call) == ["find", "find"]
    assert await commands(log, repo.find_page(session.id, after=150)) == ["find"]


async def test_recent_ids_are_one_read_or_one_per_window(log: Recording) -> None:
    """What a typed id's end is matched among (the CLI's short ids): one sorted read on MongoDB;
    on SecantusDB one read per window of time back from now, until enough are found (the first
    here) or the last window (about two years back) is read: 8 at most per status or kind."""
    runs, sessions = RunsRepository(), SessionsRepository()
    for _ in range(2):
        await make_run()
    assert await commands(log, runs.list_recent_ids(limit=2)) == ["find"]
    assert await commands(log, runs.list_recent_ids()) == on(["find"], ["find"] * 8)
    assert await commands(log, sessions.list_recent_ids(limit=2)) == ["find"]
    assert await commands(log, sessions.list_recent_ids()) == on(["find"], ["find"] * 8)
    assert await commands(log, AgentsRepository().list_recent_ids()) == ["find"]


async def test_session_listing_pages(log: Recording) -> None:
    repo = SessionsRepository()
    for i in range(5):
        await make_session(f"s{i}", user_id="u")
    # Fits one page: the order, then the sessions; no snapshot.
    assert await commands(log, repo.list_by_user("u", limit=5)) == ["find", "find"]
    # More than a page: the snapshot is stored too; each later page is two commands.
    first = await repo.list_active_page(user_id="u", limit=2)
    assert await commands(log, repo.list_active_page(user_id="u", limit=2)) == [
        "find",
        "insert",
        "find",
    ]
    assert await commands(
        log, repo.list_active_page(user_id="u", limit=2, cursor=first.next_cursor)
    ) == ["find", "find"]


@pytest.mark.bulk
# Not on the mock: copying 2,500 messages there takes minutes.
@pytest.mark.parametrize("profiled_backend", ["wire", "wire-mongodb"], indirect=True)
async def test_fork_is_four_commands_and_five_per_thousand_messages(
    log: Recording,
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
    names = await commands(log, repo.fork(session.id))
    window = ["find", *["insert"] * 4]  # 1,000 seq values read, inserted 250 at a time
    last_window = ["find", "insert", "insert"]
    assert names == ["find", "insert", *window, *window, *last_window, "find", "update"]
    assert await commands(log, repo.fork(session.id, at_seq=0)) == [
        "find",
        "insert",
        "find",
        "update",
    ]


async def test_delete_commands(log: Recording) -> None:
    repo = SessionsRepository()
    bare = await make_session()
    # Mark, read, look for runs, delete messages, delete the session.
    assert await commands(log, repo.delete(bare.id)) == [
        "update",
        "find",
        "find",
        "delete",
        "delete",
    ]
    run = await make_run()
    # With runs: record their ids, delete them, delete their payload chunks.
    assert await commands(log, repo.delete(run.session_id)) == [
        "update",
        "find",
        "find",
        "update",
        "delete",
        "delete",
        "delete",
        "delete",
    ]
    assert await commands(log, repo.delete(run.session_id)) == ["update", "find"]


async def test_retention_sweep_commands(log: Recording) -> None:
    for _ in range(2):
        await make_session()
    later = datetime.now(UTC) + timedelta(days=2)
    # Resumable deletions (none), idle candidates, then per session the deletion, claim
    # first; then the candidates again (none left); then the running runs (none: no session
    # to look up for orphans).
    assert await commands(log, sweep(timedelta(days=1), now=later)) == [
        "find",
        "find",
        *["update", "find", "delete", "delete"] * 2,
        "find",
        "find",
    ]


async def test_an_append_on_a_session_this_process_has_not_seen_reads_it_first(
    log: Recording,
) -> None:
    session = await make_session()
    layer = default_connection()
    elsewhere = MessagesRepository(
        await connect(client=layer.client, database=layer.database.name, profile=layer.profile)
    )
    # Another process (here: another connection) knows nothing of the session yet: the $inc
    # needs nothing else (SecantusDB reads the session first).
    assert await commands(log, elsewhere.create(session.id, "user", "a")) == on(
        ["findAndModify", "insert"], ["find", "update", "insert"]
    )
    # SecantusDB: the hint is now stale for this connection, the compare-and-set misses.
    assert await commands(log, MessagesRepository().create(session.id, "user", "b")) == on(
        ["findAndModify", "insert"], ["update", "findAndModify", "insert"]
    )
    seqs = [m.seq for m in await MessagesRepository().find_by_session(session.id, 10)]
    assert seqs == [1, 2]


async def _refused(call: Awaitable[Any]) -> None:
    """``call``, which must raise ``InvalidStateError``."""
    with pytest.raises(InvalidStateError):
        await call


@pytest.mark.parametrize("left_out", [False, True], ids=["all-enabled", "one-not-enabled"])
async def test_a_runner_turn_with_five_tool_calls(log: Recording, left_out: bool) -> None:
    """The turn of the benchmarks (``runner.run``): the model asks for 5 tools, then answers;
    8 messages, 2 model calls, 5 tool calls recorded. A registered tool the agent has not
    enabled adds a warning step to the run's insert, and no command."""
    session = await make_session()
    agent = await make_agent("turner", tools=["t"])
    await SessionsRepository().set_active_agent(session.id, agent.id)
    for i in range(3):
        await MessagesRepository().create(session.id, "user" if i % 2 == 0 else "assistant", "m")
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("t", "{}") for _ in range(5)]),
            ModelResponse(text="done"),
        ]
    )
    registered = {"t": lambda: "ok", **({"u": lambda: "unused"} if left_out else {})}
    runner = AgentRunner(model, ToolRegistry(registered))
    names = await commands(log, runner.run(session.id, "go"))
    read = ["aggregate"]  # the session, its agent and its latest messages
    user = ["findAndModify", "insert"]  # the user message: reserve its seq, insert it
    # The run, then its session checked (a run racing the session's deletion is removed again:
    # issue 25, D1).
    start = ["insert", "find"]
    # The answer asking for 5 tools; the model call with the 5 tool calls (pending) in one
    # update; their 5 ends in one update command; the 5 results as one batch of messages.
    tools = ["findAndModify", "insert", "update", "update", "findAndModify", "insert"]
    answer = ["findAndModify", "insert"]  # the final answer
    # The last model call and the run's end in one update; then the run added to its day's
    # totals (run_days, what the trace view's overview reads: issue 22).
    end = ["findAndModify", "update"]
    # 15 commands; SecantusDB 18: three finds instead of the aggregate, compare-and-set
    # reservations (the seq is known from the read), and the run's end read back.
    assert names == on(
        [*read, *user, *start, *tools, *answer, *end],
        [
            *["find", "find", "find"],
            *["update", "insert"],
            *start,
            *["update", "insert", "update", "update", "update", "insert"],
            *["update", "insert"],
            *["update", "find", "update"],
        ],
    )
    messages = await MessagesRepository().find_by_session(session.id, 20)
    assert [m.role.value for m in messages[3:]] == [
        "user",
        "assistant",
        *["tool"] * 5,
        "assistant",
    ]
    (run,) = await RunsRepository().list_by_session(session.id)
    assert [c.status.value for c in run.tool_calls] == ["success"] * 5
    warned = ["step"] if left_out else []
    assert [k.value for k in run.call_order] == [*warned, "model", *["tool"] * 5, "model"]
    assert [step.kind for step in run.steps] == (["warning"] if left_out else [])


async def test_the_turns_own_writes(log: Recording) -> None:
    sessions, messages, runs = SessionsRepository(), MessagesRepository(), RunsRepository()
    session = await make_session()
    await sessions.set_active_agent(session.id, (await make_agent("reader")).id)
    await messages.create(session.id, "user", "hi")
    # The session, its agent and its latest messages: one aggregate (SecantusDB: three finds).
    assert await commands(log, sessions.find_with_agent(session.id)) == on(
        ["aggregate"], ["find", "find", "find"]
    )
    run = await make_run()
    call = ModelCall(model="m", started_at=utcnow(), duration_ms=1.0, input_tokens=3)
    asked = [NewToolCall("t", "{}") for _ in range(5)]
    recorded: list[Any] = []

    async def record() -> None:
        recorded.extend(await runs.record_model_call(run.id, call, tool_calls=asked))

    # A model call with the five tool calls it asked for: one update of the run.
    assert await commands(log, record()) == ["update"]
    ends = [ToolCallResult(c.id, "out", "success", 1.0) for c in recorded]
    # Their five ends: one update command with five statements.
    assert await commands(log, ToolCallsRepository().complete_many(ends)) == ["update"]
    batch = [NewMessage("tool", "out", tool_call_id=c.id) for c in recorded]
    # Six messages: one reservation, one insert.
    assert await commands(
        log, messages.create_batch(session.id, [NewMessage("assistant", ""), *batch])
    ) == on(["findAndModify", "insert"], ["update", "insert"])
    # The run's end with its last model call: one findAndModify (SecantusDB: update, read);
    # then its day's totals, one bulk update.
    assert await commands(log, runs.complete(run.id, "completed", model_call=call)) == on(
        ["findAndModify", "update"], ["update", "find", "update"]
    )
