"""The writes a turn is made of, each one command: a model call with the tool calls it asked
for, their ends together, a batch of messages, the run's end with its last model call, and
the session read with its agent. On every backend and both server profiles."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidInputError,
    InvalidStateError,
    MessageRole,
    MessagesRepository,
    ModelCall,
    NewMessage,
    NewToolCall,
    NotFoundError,
    RequestedToolCall,
    RunsRepository,
    RunStatus,
    SessionsRepository,
    Settings,
    ToolCallResult,
    ToolCallsRepository,
    ToolCallStatus,
    connect,
    default_connection,
    get_database,
)
from agents_core.db.client import Connection
from agents_core.db.documents import utcnow
from agents_core.models.chat import MISSING_RESULT, to_chat_messages
from agents_core.runner import (
    CANCELLED,
    AgentRunner,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
)
from tests.helpers import make_agent, make_run, make_session

pytestmark = pytest.mark.usefixtures("profiled_backend")


def model_call(tokens: int = 10) -> ModelCall:
    return ModelCall(model="m", started_at=utcnow(), duration_ms=1.0, input_tokens=tokens)


async def with_settings(**limits: int) -> Connection:
    """Another connection to the test's database, with smaller limits."""
    layer = default_connection()
    return await connect(
        client=layer.client,
        database=layer.database.name,
        settings=Settings(**limits),  # type: ignore[arg-type]
        profile=layer.profile,
        create_indexes=False,
    )


async def test_a_model_call_and_its_tool_calls_are_one_write() -> None:
    run = await make_run()
    requests = [NewToolCall("search", f'{{"n": {n}}}', f"call_{n}") for n in range(3)]
    calls = await RunsRepository().record_model_call(run.id, model_call(7), tool_calls=requests)
    assert [(c.tool_name, c.input, c.request_id, c.status) for c in calls] == [
        ("search", f'{{"n": {n}}}', f"call_{n}", ToolCallStatus.pending) for n in range(3)
    ]
    stored = await RunsRepository().find_by_id(run.id)
    assert stored.tool_calls == calls
    assert [k.value for k in stored.call_order] == ["model", "tool", "tool", "tool"]
    assert (stored.tokens, len(stored.model_calls)) == (7, 1)
    raw = await get_database()["runs"].find_one({"_id": run.id})
    assert raw is not None
    assert raw["inline_bytes"] == sum(len(r.input.encode()) for r in requests)


async def test_tool_calls_need_a_running_run_and_nothing_is_recorded_otherwise() -> None:
    run = await make_run()
    await RunsRepository().complete(run.id, "completed")
    with pytest.raises(InvalidStateError, match="not running"):
        await RunsRepository().record_model_call(
            run.id, model_call(), tool_calls=[NewToolCall("t", "{}")]
        )
    stored = await RunsRepository().find_by_id(run.id)
    assert (stored.model_calls, stored.tool_calls, stored.call_order) == ([], [], [])
    with pytest.raises(NotFoundError):
        await RunsRepository().record_model_call(
            ObjectId(), model_call(), tool_calls=[NewToolCall("t", "{}")]
        )
    with pytest.raises(InvalidInputError):
        await RunsRepository().record_model_call(run.id, model_call(), tool_calls=[("t", "{}")])  # type: ignore[list-item]


async def test_large_inputs_are_spilled_and_a_spent_budget_appends_one_by_one() -> None:
    run = await make_run()
    small = await with_settings(payload_inline_max_bytes=16, run_inline_budget_bytes=24)
    requests = [NewToolCall("t", "x" * 10), NewToolCall("t", "y" * 40), NewToolCall("t", "z" * 10)]
    calls = await RunsRepository(small).record_model_call(run.id, model_call(), tool_calls=requests)
    assert [c.input_payload is not None for c in calls] == [False, True, False]
    read = await ToolCallsRepository(small).find_by_run(run.id)
    assert [c.input for c in read] == ["x" * 10, "y" * 40, "z" * 10]
    # 20 of the 24 inline bytes are spent: the next two calls do not fit together.
    more = [NewToolCall("t", "a" * 8), NewToolCall("t", "b" * 8)]
    calls = await RunsRepository(small).record_model_call(run.id, model_call(), tool_calls=more)
    read = await ToolCallsRepository(small).find_by_run(run.id)
    assert [c.input for c in read[3:]] == ["a" * 8, "b" * 8]
    assert [c.id for c in calls] == [c.id for c in read[3:]]
    stored = await RunsRepository(small).find_by_id(run.id)
    assert [k.value for k in stored.call_order] == ["model", *["tool"] * 3, "model", "tool", "tool"]


async def test_tool_calls_end_together_once() -> None:
    run = await make_run()
    requests = [NewToolCall("t", "{}") for _ in range(3)]
    calls = await RunsRepository().record_model_call(run.id, model_call(), tool_calls=requests)
    began = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    repo = ToolCallsRepository()
    await repo.complete_many(
        [
            ToolCallResult(calls[0].id, "one", ToolCallStatus.success, 1.5, began),
            ToolCallResult(calls[1].id, "two", "error", 2.5),
        ]
    )
    read = await repo.find_by_run(run.id)
    assert [(c.output, c.status, c.duration_ms) for c in read] == [
        ("one", ToolCallStatus.success, 1.5),
        ("two", ToolCallStatus.error, 2.5),
        (None, ToolCallStatus.pending, None),
    ]
    assert read[0].started_at == began
    assert read[1].started_at == calls[1].started_at
    # A call completed already refuses; the others are recorded all the same.
    with pytest.raises(InvalidStateError, match="completed already"):
        await repo.complete_many(
            [
                ToolCallResult(calls[0].id, "again", "success", 1.0),
                ToolCallResult(calls[2].id, "three", "success", 3.0),
            ]
        )
    read = await repo.find_by_run(run.id)
    assert [c.output for c in read] == ["one", "two", "three"]
    with pytest.raises(NotFoundError):
        await repo.complete_many([ToolCallResult(f"{run.id}-{run.id}", "x", "success", 1.0)])
    await repo.complete_many([])


async def test_large_outputs_and_a_spent_budget_end_together_too() -> None:
    run = await make_run()
    small = await with_settings(payload_inline_max_bytes=16, run_inline_budget_bytes=25)
    requests = [NewToolCall("t", "{}") for _ in range(3)]
    calls = await RunsRepository(small).record_model_call(run.id, model_call(), tool_calls=requests)
    # Spilled (too large); inline (6 + 12 of 25 bytes); beyond the budget, so spilled.
    outputs = ["o" * 40, "p" * 12, "q" * 12]
    await ToolCallsRepository(small).complete_many(
        [ToolCallResult(c.id, o, "success", 1.0) for c, o in zip(calls, outputs, strict=True)]
    )
    read = await ToolCallsRepository(small).find_by_run(run.id)
    assert [c.output for c in read] == outputs
    assert [c.output_payload is not None for c in read] == [True, False, True]


async def test_the_last_model_call_is_recorded_with_the_runs_end() -> None:
    run = await make_run()
    await RunsRepository().record_model_call(run.id, model_call(3))
    done = await RunsRepository().complete(run.id, "completed", model_call=model_call(4))
    assert (done.status, done.tokens, len(done.model_calls)) == (RunStatus.completed, 7, 2)
    assert [k.value for k in done.call_order] == ["model", "model"]
    with pytest.raises(InvalidStateError, match="not running"):
        await RunsRepository().complete(run.id, "failed", model_call=model_call(5))
    assert len((await RunsRepository().find_by_id(run.id)).model_calls) == 2


async def test_a_batch_of_messages_takes_one_seq_range() -> None:
    session = await make_session()
    repo = MessagesRepository()
    question = await repo.create(session.id, "user", "question")
    run = await make_run()
    (call,) = await RunsRepository().record_model_call(
        run.id, model_call(), tool_calls=[NewToolCall("t", "{}", "c1")]
    )
    asking = RequestedToolCall(id="c1", name="t", arguments="{}")
    batch = await repo.create_batch(
        session.id,
        [
            NewMessage(MessageRole.assistant, "", requested_tool_calls=[asking]),
            NewMessage("tool", "42", tool_call_id=call.id, request_id="c1"),
        ],
    )
    assert [(m.seq, m.batch_end_seq) for m in batch] == [(2, 3), (3, 3)]
    assert batch[0].requested_tool_calls == [asking]
    assert (batch[1].tool_call_id, batch[1].request_id) == (call.id, "c1")
    # What a read returns is what the batch returned.
    assert await repo.find_by_session(session.id, 10) == [question, *batch]
    (single,) = await repo.create_batch(session.id, [NewMessage("assistant", "done")])
    assert (single.seq, single.batch_end_seq) == (4, None)
    assert await repo.create_batch(session.id, []) == []
    # Every message is checked before anything is written.
    with pytest.raises(InvalidInputError):
        await repo.create_batch(session.id, [NewMessage("user", "ok"), NewMessage("nobody", "x")])
    assert [m.seq for m in await repo.find_by_session(session.id, 10)] == [1, 2, 3, 4]
    with pytest.raises(NotFoundError):
        await repo.create_batch(ObjectId(), [NewMessage("user", "x")])


async def test_a_session_is_read_with_its_agent_and_its_latest_messages() -> None:
    sessions, messages = SessionsRepository(), MessagesRepository()
    session = await make_session()
    found, agent = await sessions.find_with_agent(session.id)
    assert (found.id, found.messages, agent) == (session.id, [], None)
    routed = await make_agent("routed")
    await sessions.set_active_agent(session.id, routed.id)
    for n in range(12):
        await messages.create(session.id, "user", f"m{n}")
    await messages.pop_last(session.id)  # the window of the latest 5 holds a popped message
    found, agent = await sessions.find_with_agent(session.id, message_limit=5)
    assert agent == routed
    assert found == await sessions.find_by_id(session.id, message_limit=5)
    assert [m.content for m in found.messages] == [f"m{n}" for n in range(6, 11)]
    found, _ = await sessions.find_with_agent(session.id, message_limit=0)
    assert found.messages == []
    # An agent deleted meanwhile: the session still routes to it, there is none to return.
    await get_database()["agents"].delete_one({"_id": routed.id})
    found, agent = await sessions.find_with_agent(session.id)
    assert (found.active_agent_id, agent) == (routed.id, None)
    await sessions.delete(session.id)
    with pytest.raises(NotFoundError):
        await sessions.find_with_agent(session.id)


async def test_an_interrupted_tool_step_records_what_ran() -> None:
    session = await make_session()
    agent = await make_agent("interrupted", tools=["quick", "slow"])
    await SessionsRepository().set_active_agent(session.id, agent.id)
    started = asyncio.Event()

    async def slow() -> str:
        started.set()
        await asyncio.sleep(60)
        return "never"

    model = ScriptedModel(
        [
            ModelResponse(
                tool_calls=[ToolRequest("quick"), ToolRequest("slow"), ToolRequest("quick")]
            )
        ]
    )
    runner = AgentRunner(model, ToolRegistry({"quick": lambda: "fast", "slow": slow}))
    task = asyncio.create_task(runner.run(session.id, "go"))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(session.id)
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    assert [(c.status.value, c.output) for c in run.tool_calls] == [
        ("success", "fast"),
        ("error", CANCELLED),
        ("error", CANCELLED),
    ]
    assert run.tool_calls[2].duration_ms == 0.0
    history = await MessagesRepository().find_by_session(session.id, 10)
    assert [(m.role.value, m.content) for m in history] == [
        ("user", "go"),
        ("assistant", ""),
        ("tool", "fast"),
    ]
    # A model API takes it: the two results never stored are answered as missing.
    chat = to_chat_messages(history)
    assert [m["role"] for m in chat] == ["user", "assistant", "tool", "tool", "tool"]
    assert [m["content"] for m in chat[3:]] == [MISSING_RESULT, MISSING_RESULT]
