"""AgentRunner.replay: a recorded turn again, in a fork, with tools never run."""

from __future__ import annotations

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidStateError,
    Message,
    MessagesRepository,
    Run,
    RunsRepository,
    SessionsRepository,
    ToolCallStatus,
)
from agents_core.runner import AgentRunner, ModelResponse, ScriptedModel, ToolRegistry, ToolRequest
from agents_core.runner.replay import NOT_RECORDED
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")


class CountingTools:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.registry = ToolRegistry({"add": self.add, "lookup": self.lookup})

    def add(self, a: int, b: int) -> int:
        self.calls.append("add")
        return a + b

    def lookup(self, order: str) -> str:
        self.calls.append("lookup")
        if order == "missing":
            raise KeyError(order)
        return f"{order}: shipped"


async def routed() -> ObjectId:
    agent = await make_agent(tools=["add", "lookup"])
    session = await make_session()
    await SessionsRepository().set_active_agent(session.id, agent.id)
    return session.id


def script() -> list[ModelResponse]:
    return [
        ModelResponse(
            text="Checking.",
            tool_calls=[
                ToolRequest("add", '{"a": 2, "b": 3}'),
                ToolRequest("lookup", '{"order": "missing"}'),
            ],
        ),
        ModelResponse(tool_calls=[ToolRequest("lookup", '{"order": "A-1"}')]),
        ModelResponse(text="2 + 3 = 5; A-1 is shipped."),
    ]


async def turn_of(run: Run) -> list[tuple[str, str, list[tuple[str, str]], str | None]]:
    assert run.input_seq is not None
    page = await MessagesRepository().find_page(run.session_id, after=run.input_seq - 1, limit=100)
    turn: list[Message] = []
    for message in page:
        if turn and message.role == "user":
            break
        turn.append(message)
    return [
        (
            m.role.value,
            m.content,
            [(c.name, c.arguments) for c in m.requested_tool_calls],
            m.request_id,
        )
        for m in turn
    ]


async def test_the_recorded_model_reproduces_the_turn_without_running_tools() -> None:
    sid = await routed()
    tools = CountingTools()
    runner = AgentRunner(ScriptedModel([ModelResponse(text="hello"), *script()]), tools.registry)
    await runner.run(sid, "hi")
    original = await runner.run(sid, "add and look up")
    ran = list(tools.calls)
    replay = await runner.replay(original.id)
    assert tools.calls == ran  # no tool ran again
    assert replay.replay_of == original.id
    assert replay.session_id != original.session_id
    fork = await SessionsRepository().find_by_id(replay.session_id)
    assert fork.forked_from == original.session_id
    assert await turn_of(replay) == await turn_of(original)
    assert [(c.tool_name, c.input, c.output, c.status) for c in replay.tool_calls] == [
        (c.tool_name, c.input, c.output, c.status) for c in original.tool_calls
    ]
    assert replay.tool_calls[1].status is ToolCallStatus.error
    assert [(c.input_tokens, c.model) for c in replay.model_calls] == [
        (c.input_tokens, c.model) for c in original.model_calls
    ]
    # The fork holds the history before the turn and the replayed turn, nothing later.
    history = await MessagesRepository().find_by_session(replay.session_id, 100)
    assert [m.content for m in history][:2] == ["hi", "hello"]


async def test_a_new_model_sees_the_recorded_results_and_unrecorded_calls_fail() -> None:
    sid = await routed()
    tools = CountingTools()
    original = await AgentRunner(ScriptedModel(script()), tools.registry).run(sid, "go")
    ran = list(tools.calls)
    other = ScriptedModel(
        [
            ModelResponse(
                tool_calls=[
                    ToolRequest("lookup", '{"order": "A-1"}'),  # recorded
                    ToolRequest("add", '{"a": 40, "b": 2}'),  # never recorded
                ]
            ),
            ModelResponse(text="done differently"),
        ]
    )
    replay = await AgentRunner(ScriptedModel([]), tools.registry).replay(original.id, model=other)
    assert tools.calls == ran
    assert [(c.tool_name, c.status) for c in replay.tool_calls] == [
        ("lookup", ToolCallStatus.success),
        ("add", ToolCallStatus.error),
    ]
    assert replay.tool_calls[0].output == "A-1: shipped"
    assert (replay.tool_calls[1].output or "").startswith(NOT_RECORDED)
    # The new model was asked with the same history as the recorded one.
    assert [m.content for m in other.requests[0].messages] == ["go"]


async def test_a_run_without_a_recorded_turn_cannot_be_replayed() -> None:
    session, agent = await make_session(), await make_agent()
    run = await RunsRepository().create(session.id, agent.id)
    with pytest.raises(InvalidStateError, match="no recorded turn"):
        await AgentRunner(ScriptedModel([])).replay(run.id)
