"""AgentRunner on both backends: every turn leaves a complete, truthful record."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidStateError,
    MessagesRepository,
    ModelCallStatus,
    Price,
    Run,
    RunsRepository,
    RunStatus,
    SessionsRepository,
    ToolCallStatus,
    get_database,
)
from agents_core.runner import (
    CANCELLED,
    NOT_ENABLED_KIND,
    AgentRunner,
    ModelRequest,
    ModelResponse,
    ScriptedModel,
    ToolRegistry,
    ToolRequest,
    Usage,
)
from agents_core.trace import group_turns, turn_steps
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("profiled_backend")


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("add")
    def add(a: int, b: int) -> int:
        return a + b

    @tools.tool("explode")
    async def explode() -> str:
        raise RuntimeError("kaboom")

    return tools


#: 0.002 and 0.0025 a token: costs that add up exactly in binary floating point.
PER_TOKEN = Price(input_per_million=2_000, output_per_million=0)
QUARTER = Price(input_per_million=2_500, output_per_million=0)


async def routed_session(tools: list[str] | None = None) -> ObjectId:
    session = await make_session()
    agent = await make_agent(
        f"agent-{session.id}", tools=["add", "explode"] if tools is None else tools
    )
    await SessionsRepository().set_active_agent(session.id, agent.id)
    return session.id


def answer_with_last_tool_output(request: ModelRequest) -> ModelResponse:
    return ModelResponse(
        text=f"result: {request.messages[-1].content}", usage=Usage(input_tokens=5), price=PER_TOKEN
    )


async def transcript(session_id: ObjectId) -> list[tuple[str, str]]:
    messages = await MessagesRepository().find_by_session(session_id, 100)
    return [(m.role.value, m.content) for m in messages]


async def test_a_turn_with_a_tool_call_is_recorded_end_to_end() -> None:
    sid = await routed_session()
    model = ScriptedModel(
        [
            ModelResponse(
                tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')],
                usage=Usage(input_tokens=10),
                price=PER_TOKEN,
            ),
            answer_with_last_tool_output,
        ]
    )
    run = await AgentRunner(model, registry()).run(sid, "add 2 and 3")
    assert isinstance(run, Run)
    assert (run.status, run.error, run.tokens, run.cost) == (RunStatus.completed, None, 15, 0.03)
    (call,) = run.tool_calls
    assert (call.tool_name, call.input, call.output, call.status) == (
        "add",
        '{"a": 2, "b": 3}',
        "5",
        ToolCallStatus.success,
    )
    assert call.duration_ms is not None
    assert call.duration_ms >= 0
    assert await transcript(sid) == [
        ("user", "add 2 and 3"),
        ("assistant", ""),
        ("tool", "5"),
        ("assistant", "result: 5"),
    ]
    _, asking, tool_message, _ = await MessagesRepository().find_by_session(sid, 100)
    (requested,) = asking.requested_tool_calls
    assert (requested.name, requested.arguments) == ("add", '{"a": 2, "b": 3}')
    # The tool message answers the model's request and links our tool-call record.
    assert (tool_message.tool_call_id, tool_message.request_id) == (call.id, requested.id)
    assert call.request_id == requested.id
    # One model call recorded per model call, with tokens, cost and price.
    assert [(c.input_tokens, c.cost, c.price, c.finish_reason) for c in run.model_calls] == [
        (10, 0.02, PER_TOKEN, "tool_calls"),
        (5, 0.01, PER_TOKEN, "stop"),
    ]
    # The model saw the conversation and the agent's enabled tools.
    assert [m.content for m in model.requests[0].messages] == ["add 2 and 3"]
    assert [tool.name for tool in model.requests[0].tools] == ["add", "explode"]


async def test_the_model_sees_the_earlier_history_in_order() -> None:
    sid = await routed_session()
    model = ScriptedModel([ModelResponse(text="one"), ModelResponse(text="two")])
    runner = AgentRunner(model, registry())
    await runner.run(sid, "first")
    await runner.run(sid, "second")
    assert [m.content for m in model.requests[1].messages] == ["first", "one", "second"]
    assert await transcript(sid) == [
        ("user", "first"),
        ("assistant", "one"),
        ("user", "second"),
        ("assistant", "two"),
    ]


async def test_a_failing_tool_is_recorded_and_fed_back_to_the_model() -> None:
    sid = await routed_session()
    model = ScriptedModel(
        [ModelResponse(tool_calls=[ToolRequest("explode")]), answer_with_last_tool_output]
    )
    run = await AgentRunner(model, registry()).run(sid, "try it")
    assert run.status is RunStatus.completed
    (call,) = run.tool_calls
    assert (call.status, call.output) == (ToolCallStatus.error, "RuntimeError: kaboom")
    assert model.requests[1].messages[-1].content == "RuntimeError: kaboom"


async def test_a_tool_the_agent_has_not_enabled_is_refused_and_never_executed() -> None:
    executed: list[str] = []
    tools = ToolRegistry({"secret": lambda: executed.append("ran") or "leaked"})
    sid = await routed_session(tools=["add"])
    model = ScriptedModel(
        [ModelResponse(tool_calls=[ToolRequest("secret")]), ModelResponse(text="ok")]
    )
    run = await AgentRunner(model, tools).run(sid, "use the secret tool")
    assert executed == []
    (call,) = run.tool_calls
    assert call.status is ToolCallStatus.error
    assert "not enabled" in (call.output or "")
    assert run.status is RunStatus.completed


async def test_invalid_tool_arguments_are_a_tool_error() -> None:
    sid = await routed_session()
    model = ScriptedModel(
        [ModelResponse(tool_calls=[ToolRequest("add", "{not json")]), ModelResponse(text="ok")]
    )
    run = await AgentRunner(model, registry()).run(sid, "go")
    assert run.tool_calls[0].status is ToolCallStatus.error
    assert "not valid JSON" in (run.tool_calls[0].output or "")


async def test_a_model_exception_fails_the_run_and_is_re_raised() -> None:
    sid = await routed_session()
    model = ScriptedModel([ConnectionError("model endpoint down")])
    with pytest.raises(ConnectionError):
        await AgentRunner(model, registry()).run(sid, "hello")
    (run,) = await RunsRepository().list_by_session(sid)
    assert run.status is RunStatus.failed
    assert run.error == "ConnectionError: model endpoint down"
    assert run.completed_at is not None


async def cancel_mid_tool(session_id: ObjectId, **repositories: Any) -> Run:
    """Run a turn whose tool hangs, cancel it there, and return the recorded run."""
    started = asyncio.Event()

    async def hang() -> int:
        started.set()
        await asyncio.sleep(60)
        return 0

    model = ScriptedModel([ModelResponse(tool_calls=[ToolRequest("add")])])
    runner = AgentRunner(model, ToolRegistry({"add": hang}), **repositories)
    task = asyncio.create_task(runner.run(session_id, "slow"))
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(session_id)
    return run


async def test_cancellation_fails_the_run_with_cancelled() -> None:
    run = await cancel_mid_tool(await routed_session())
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    assert run.tool_calls[0].status is ToolCallStatus.error
    assert run.tool_calls[0].output == CANCELLED


class HangingModel:
    """A model that answers ``first`` (if any), then never answers again."""

    model = "gpt-hang"
    price = PER_TOKEN

    def __init__(self, first: ModelResponse | None = None) -> None:
        self.first = first
        self.calls = 0
        self.waiting = asyncio.Event()

    async def complete(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        if self.calls == 1 and self.first is not None:
            return self.first
        self.waiting.set()
        await asyncio.sleep(3600)
        raise AssertionError("never answered")


@pytest.mark.parametrize("after_a_tool", [False, True], ids=["first-call", "after-a-tool"])
async def test_a_model_call_in_flight_when_the_turn_is_cancelled_is_recorded(
    after_a_tool: bool,
) -> None:
    sid = await routed_session()
    asking = ModelResponse(
        tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')], usage=Usage(input_tokens=10)
    )
    model = HangingModel(asking if after_a_tool else None)
    task = asyncio.create_task(AgentRunner(model, registry()).run(sid, "slow"))
    await asyncio.wait_for(model.waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(sid)
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    *answered, cut = run.model_calls
    assert len(answered) == (1 if after_a_tool else 0)
    assert (cut.model, cut.status, cut.error) == ("gpt-hang", ModelCallStatus.error, CANCELLED)
    assert (cut.input_tokens, cut.output_tokens, cut.cost, cut.price) == (0, 0, 0.0, PER_TOKEN)
    assert cut.duration_ms >= 0
    # It follows what the model was sent, and the run's order names it last.
    assert cut.history_seq == (3 if after_a_tool else 1)
    assert run.calls()[-1] == cut
    assert run.tokens == (10 if after_a_tool else 0)


@pytest.mark.parametrize("asks_for_tools", [False, True], ids=["answer", "tool-request"])
async def test_a_model_call_answered_before_the_turn_is_cancelled_keeps_its_usage(
    asks_for_tools: bool,
) -> None:
    """Cancelled while the model's answer is being stored: the call that answered (its tokens
    and cost were spent) is recorded with the run's end, not lost."""
    from agents_core.db import MessageRole

    class HangingAnswers(MessagesRepository):
        waiting: asyncio.Event

        async def create(self, session_id: Any, role: Any, *args: Any, **kwargs: Any) -> Any:
            if role is MessageRole.assistant:
                self.waiting.set()
                await asyncio.sleep(3600)
            return await super().create(session_id, role, *args, **kwargs)

    sid = await routed_session()
    answer = ModelResponse(
        text="done",
        tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')] if asks_for_tools else [],
        usage=Usage(input_tokens=10),
        price=PER_TOKEN,
    )
    messages = HangingAnswers()
    messages.waiting = asyncio.Event()
    runner = AgentRunner(ScriptedModel([answer]), registry(), messages=messages)
    task = asyncio.create_task(runner.run(sid, "slow"))
    await asyncio.wait_for(messages.waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(sid)
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    (call,) = run.model_calls
    assert (call.status, call.input_tokens, call.cost) == (ModelCallStatus.success, 10, 0.02)
    assert (run.tokens, run.cost) == (10, 0.02)
    assert run.tool_calls == []


class PausedRuns(RunsRepository):
    """Runs whose ``method`` writes (the write lands) and then holds its answer until
    ``release`` is set: a turn cancelled meanwhile is cancelled while that answer is on its
    way."""

    def __init__(self, method: str) -> None:
        super().__init__()
        self.written, self.release = asyncio.Event(), asyncio.Event()
        write = getattr(self, method)

        async def paused(*args: Any, **kwargs: Any) -> Any:
            result = await write(*args, **kwargs)
            self.written.set()
            await self.release.wait()
            return result

        setattr(self, method, paused)


async def cancelled_once_written(
    runner: AgentRunner, runs: PausedRuns, session_id: ObjectId, text: str
) -> Run:
    """The run of a turn cancelled once ``runs``' paused write has landed, before it answers."""
    task = asyncio.create_task(runner.run(session_id, text))
    await asyncio.wait_for(runs.written.wait(), 10)
    task.cancel()
    await asyncio.sleep(0)
    runs.release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(session_id)
    return run


async def test_a_turn_cancelled_while_its_run_is_being_started_leaves_it_failed() -> None:
    """Cancelled while the run's insert is under way (it lands): the run is completed
    ``failed``/``cancelled``, not left ``running`` for ``list_stale``."""
    sid = await routed_session()
    runs = PausedRuns("start")
    model = ScriptedModel([ModelResponse(text="never asked")])
    run = await cancelled_once_written(AgentRunner(model, registry(), runs=runs), runs, sid, "hi")
    assert (run.status, run.error, run.model_calls) == (RunStatus.failed, CANCELLED, [])


async def test_a_turn_cancelled_while_its_tool_calls_are_being_recorded_leaves_none_pending() -> (
    None
):
    """Cancelled while the model call and the tool calls it asks for are being recorded (the
    update lands): the calls never ran and are closed as ``cancelled`` errors; the model call is
    counted once."""
    sid = await routed_session()
    runs = PausedRuns("record_model_call")
    asking = ModelResponse(
        tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')],
        usage=Usage(input_tokens=10),
        price=PER_TOKEN,
    )
    runner = AgentRunner(ScriptedModel([asking]), registry(), runs=runs)
    run = await cancelled_once_written(runner, runs, sid, "add")
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    (call,) = run.tool_calls
    assert (call.status, call.output) == (ToolCallStatus.error, CANCELLED)
    assert (len(run.model_calls), run.tokens) == (1, 10)


async def test_the_step_limit_fails_the_run() -> None:
    sid = await routed_session()
    loop = ModelResponse(
        tool_calls=[ToolRequest("add", '{"a": 1, "b": 1}')], usage=Usage(input_tokens=1)
    )
    run = await AgentRunner(ScriptedModel([loop] * 3), registry(), max_steps=3).run(sid, "loop")
    assert run.status is RunStatus.failed
    assert "step limit" in (run.error or "")
    assert (len(run.tool_calls), run.tokens) == (3, 3)


async def test_a_session_without_an_active_agent_is_refused_before_anything_is_written() -> None:
    session = await make_session()
    with pytest.raises(InvalidStateError):
        await AgentRunner(ScriptedModel([]), registry()).run(session.id, "hello")
    assert await get_database()["runs"].count_documents({}) == 0
    assert await get_database()["messages"].count_documents({}) == 0


async def test_usage_totals_add_up_over_model_calls() -> None:
    sid = await routed_session()
    steps = [
        ModelResponse(
            tool_calls=[ToolRequest("add", '{"a": 1, "b": 2}')],
            usage=Usage(input_tokens=100),
            price=QUARTER,
        ),
        ModelResponse(
            tool_calls=[ToolRequest("add", '{"a": 3, "b": 4}')],
            usage=Usage(input_tokens=200),
            price=QUARTER,
        ),
        ModelResponse(text="done", usage=Usage(input_tokens=50), price=QUARTER),
    ]
    run = await AgentRunner(ScriptedModel(steps), registry()).run(sid, "sum")
    assert (run.tokens, run.cost) == (350, 0.875)
    assert [c.output for c in run.tool_calls] == ["3", "7"]


async def test_a_retried_turn_does_not_store_its_messages_twice() -> None:
    sid = await routed_session()
    steps = [
        ModelResponse(tool_calls=[ToolRequest("add", '{"a": 1, "b": 2}')]),
        ModelResponse(text="3"),
    ]
    failing = ScriptedModel([steps[0], ConnectionError("network")])
    with pytest.raises(ConnectionError):
        await AgentRunner(failing, registry()).run(sid, "1+2?", turn_id="turn-1")
    run = await AgentRunner(ScriptedModel(steps), registry()).run(sid, "1+2?", turn_id="turn-1")
    assert run.status is RunStatus.completed
    assert await transcript(sid) == [
        ("user", "1+2?"),
        ("assistant", ""),
        ("tool", "3"),
        ("assistant", "3"),
    ]
    _, asking, answer, _ = await MessagesRepository().find_by_session(sid, 100)
    # The retry's tool call answers the request stored by the first attempt.
    (requested,) = asking.requested_tool_calls
    assert answer.request_id == requested.id == run.tool_calls[0].request_id


async def test_structured_tool_results_are_json_text() -> None:
    tools = ToolRegistry({"info": lambda: {"ok": True, "n": [1, 2]}})
    sid = await routed_session(tools=["info"])
    model = ScriptedModel(
        [ModelResponse(tool_calls=[ToolRequest("info")]), ModelResponse(text="ok")]
    )
    run = await AgentRunner(model, tools).run(sid, "info")
    assert json.loads(run.tool_calls[0].output or "") == {"ok": True, "n": [1, 2]}


@pytest.mark.parametrize(("max_steps", "history_limit"), [(0, 50), (True, 50), (3, -1), (3, 10**6)])
def test_the_runner_refuses_bad_limits_up_front(max_steps: int, history_limit: int) -> None:
    with pytest.raises(ValueError, match=r"max_steps|history_limit"):
        AgentRunner(ScriptedModel([]), max_steps=max_steps, history_limit=history_limit)


async def test_a_tool_output_the_layer_cannot_store_as_is_is_cleaned_and_recorded() -> None:
    tools = ToolRegistry({"ls": lambda: b"caf\xe9.txt".decode("utf-8", "surrogateescape")})
    sid = await routed_session(tools=["ls"])
    model = ScriptedModel([ModelResponse(tool_calls=[ToolRequest("ls")]), ModelResponse(text="ok")])
    run = await AgentRunner(model, tools).run(sid, "list")
    assert run.status is RunStatus.completed
    (call,) = run.tool_calls
    assert (call.status, call.output) == (ToolCallStatus.success, "caf?.txt")


@pytest.mark.parametrize("asks_for_tools", [False, True], ids=["answer", "tool-request"])
async def test_a_model_text_the_layer_cannot_store_as_is_is_cleaned_and_recorded(
    asks_for_tools: bool,
) -> None:
    """A model's text with a lone surrogate (JSON's "\\ud800" decodes to one) or larger than a
    message is stored cleaned, as a tool's output is: the turn completes, its tokens recorded."""
    sid = await routed_session()
    limit = MessagesRepository().db.settings.max_message_bytes
    text = "caf\ud800 " + "x" * limit
    requests = [ToolRequest("add", '{"a": 2, "b": 3}')] if asks_for_tools else []
    steps = [ModelResponse(text=text, tool_calls=requests, usage=Usage(input_tokens=3))]
    if asks_for_tools:
        steps.append(ModelResponse(text="5", usage=Usage(input_tokens=4)))
    run = await AgentRunner(ScriptedModel(steps), registry()).run(sid, "hi")
    assert run.status is RunStatus.completed, run.error
    assert run.tokens == (7 if asks_for_tools else 3)
    messages = await MessagesRepository().find_by_session(sid, 10)
    stored = messages[1].content
    assert stored.startswith("caf? xxx")
    assert len(stored.encode()) <= limit
    assert "truncated" in stored


@pytest.mark.parametrize("name", ["", "x" * 300, "bad\nname"])
async def test_a_tool_name_the_layer_refuses_is_recorded_as_an_error_call(name: str) -> None:
    sid = await routed_session()
    model = ScriptedModel([ModelResponse(tool_calls=[ToolRequest(name)]), ModelResponse(text="ok")])
    run = await AgentRunner(model, registry()).run(sid, "go")
    assert run.status is RunStatus.completed
    (call,) = run.tool_calls
    assert call.status is ToolCallStatus.error
    assert "not enabled" in (call.output or "")


async def test_cancellation_wins_over_a_database_error_while_recording_it() -> None:
    from agents_core.db import DatabaseUnavailableError, ToolCallsRepository

    class Failing(ToolCallsRepository):
        async def complete_many(self, *args: object, **kwargs: object) -> Any:
            raise DatabaseUnavailableError("db gone")

    run = await cancel_mid_tool(await routed_session(), tool_calls=Failing())
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)


async def test_cancelled_while_the_tool_calls_ends_are_recorded_leaves_none_pending() -> None:
    """The tools have run; the turn is cancelled while their ends are being recorded: they are
    recorded all the same (with their results in the conversation), none left ``pending`` on
    the failed run."""
    from agents_core.db import ToolCallsRepository

    class SlowEnds(ToolCallsRepository):
        waiting: asyncio.Event
        hung = False

        async def complete_many(self, *args: Any, **kwargs: Any) -> Any:
            if not self.hung:  # the first try hangs until it is cancelled
                self.hung = True
                self.waiting.set()
                await asyncio.sleep(3600)
            return await super().complete_many(*args, **kwargs)

    sid = await routed_session()
    model = ScriptedModel([ModelResponse(tool_calls=[ToolRequest("add", '{"a": 2, "b": 3}')])])
    ends = SlowEnds()
    ends.waiting = asyncio.Event()
    task = asyncio.create_task(AgentRunner(model, registry(), tool_calls=ends).run(sid, "add"))
    await asyncio.wait_for(ends.waiting.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (run,) = await RunsRepository().list_by_session(sid)
    assert (run.status, run.error) == (RunStatus.failed, CANCELLED)
    (call,) = run.tool_calls
    assert (call.status, call.output) == (ToolCallStatus.success, "5")
    assert (await transcript(sid))[-1] == ("tool", "5")


async def test_a_retried_turn_shows_the_model_the_history_in_order_and_once() -> None:
    sid = await routed_session()
    await AgentRunner(ScriptedModel([ModelResponse(text="hello")]), registry()).run(sid, "hi")
    ask = ModelResponse(tool_calls=[ToolRequest("add", '{"a": 1, "b": 2}')])
    with pytest.raises(ConnectionError):
        await AgentRunner(ScriptedModel([ask, ConnectionError()]), registry()).run(
            sid, "1+2?", turn_id="t"
        )
    retry = ScriptedModel([ask, ModelResponse(text="3")])
    await AgentRunner(retry, registry()).run(sid, "1+2?", turn_id="t")
    first, second = ([(m.role.value, m.content) for m in r.messages] for r in retry.requests)
    assert first == [("user", "hi"), ("assistant", "hello"), ("user", "1+2?")]
    assert second == [*first, ("assistant", ""), ("tool", "3")]
    assert [m.seq for m in await MessagesRepository().find_by_session(sid, 100)] == [
        1,
        2,
        3,
        4,
        5,
        6,
    ]


async def test_a_turn_id_too_long_for_its_keys_is_refused_before_anything_is_written() -> None:
    from agents_core.db import InvalidInputError

    sid = await routed_session()
    with pytest.raises(InvalidInputError, match="turn_id"):
        await AgentRunner(ScriptedModel([]), registry()).run(sid, "hi", turn_id="t" * 190)
    assert await get_database()["messages"].count_documents({}) == 0


async def test_registered_tools_the_agent_has_not_enabled_are_warned_of_once_per_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = await routed_session(tools=["add"])  # the registry has "explode" too
    model = ScriptedModel(
        [
            ModelResponse(tool_calls=[ToolRequest("add", '{"a": 1, "b": 2}')]),
            ModelResponse(text="3"),
            ModelResponse(text="bye"),
        ]
    )
    runner = AgentRunner(model, registry())
    with caplog.at_level(logging.WARNING, logger="agents_core.runner.runner"):
        first = await runner.run(sid, "1 + 2?")
        second = await runner.run(sid, "thanks")
    assert [tool.name for tool in model.requests[0].tools] == ["add"]
    for run in (first, second):
        assert run.status is RunStatus.completed
        assert run.error is None
        (step,) = run.steps
        assert (step.kind, step.status.value, step.error) == (NOT_ENABLED_KIND, "success", None)
        assert step.name == f"tools not enabled for agent agent-{sid}: explode"
        assert step.data["tools"] == ["explode"]
        assert step.data["count"] == 1
        assert "enable_tool" in step.data["hint"]
        assert run.calls()[0] == step  # before the first model call
        assert (await RunsRepository().find_by_id(run.id)).steps == [step]
    # In the log too: once per run (not per model call), naming the run and the tools.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    for run, line in zip((first, second), warnings, strict=True):
        assert line.startswith(f"run {run.id}: ")
        assert "not enabled for agent" in line
        assert line.endswith(": explode")
    # Shown right after the turn's user message, placed by what the writes recorded.
    messages = await MessagesRepository().find_by_session(sid, 100)
    turns = group_turns(messages, [first, second])
    assert [step.kind for step in turn_steps(turns[0])] == [
        "user",
        "step",
        "model",
        "assistant",
        "tool",
        "model",
        "answer",
    ]


async def test_a_run_whose_agent_enables_every_registered_tool_has_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sid = await routed_session()  # both "add" and "explode"
    with caplog.at_level(logging.WARNING, logger="agents_core.runner.runner"):
        run = await AgentRunner(ScriptedModel([ModelResponse(text="hi")]), registry()).run(
            sid, "hello"
        )
    assert (run.steps, [k.value for k in run.call_order]) == ([], ["model"])
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_the_warning_lists_at_most_twenty_tools_and_counts_them_all() -> None:
    tools = ToolRegistry({f"tool_{n:02}": (lambda: "ok") for n in range(25)})
    sid = await routed_session(tools=["tool_00"])
    run = await AgentRunner(ScriptedModel([ModelResponse(text="ok")]), tools).run(sid, "go")
    (step,) = run.steps
    assert step.data["tools"] == [f"tool_{n:02}" for n in range(1, 21)]
    assert step.data["count"] == 24
    # The name the views show is one bounded line; the data has the list.
    assert step.name.startswith(f"tools not enabled for agent agent-{sid}: tool_01, tool_02")
    assert len(step.name) <= 200
