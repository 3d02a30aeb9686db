"""AgentsCoreCallbackHandler checked against LangChain's own tracer.

LangChain's ``RunCollectorCallbackHandler`` runs next to our handler on LangGraph graphs driven
by LangChain's fake chat models (tool calls and ``usage_metadata`` in their ``AIMessage``s): a
prebuilt ReAct agent with parallel tool calls, tools and a model that raise, an interrupt
resumed later (with ``AgentsCoreSaver``), a subgraph, and streaming (``astream``,
``astream_events``). Every LLM run and tool run the collector saw must be one model call or
tool call of ours, in the order the collector saw them start, with the same name, usage,
input, output and error (``mismatches``); a tool interrupted by ``interrupt()`` is our
``interrupt`` step. ``test_the_comparison_catches_*`` show that it fails when our handler drops
or alters one. Each test runs on both backends (``backend``).
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

pytest.importorskip("langgraph.prebuilt", reason="the langgraph extra is not installed")

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeMessagesListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import InputTokenDetails, OutputTokenDetails, UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult, LLMResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, tool
from langchain_core.tracers.run_collector import RunCollectorCallbackHandler
from langchain_core.tracers.schemas import Run as TracedRun
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import Command, Interrupt, interrupt

from agents_core.db import (
    AgentsRepository,
    ModelCall,
    Price,
    Run,
    RunsRepository,
    RunStep,
    SessionsRepository,
    ToolCall,
)
from agents_core.db.client import default_connection
from agents_core.integrations.langchain import (
    NAMESPACE,
    RUN_NAMESPACE,
    AgentsCoreCallbackHandler,
)
from agents_core.integrations.langchain import handler as handler_module
from agents_core.integrations.langchain.handler import UNFINISHED
from agents_core.integrations.langgraph import AgentsCoreSaver
from agents_core.trace import render_session_tree
from agents_core.trace.otel import CALL_INDEX_ATTRIBUTE, record_run
from agents_core.trace.web import create_app
from tests import _langgraph_app as app

with warnings.catch_warnings():  # deprecated in favour of langchain's create_agent (not a
    warnings.simplefilter("ignore")  # dependency here); still LangGraph 1.x's prebuilt agent
    from langgraph.prebuilt import create_react_agent

# ---------------------------------------------------------------------------------------------
# The reference: LangChain's collector, noting the order runs start in


class OrderedCollector(RunCollectorCallbackHandler):
    """LangChain's ``RunCollectorCallbackHandler``, also noting the order runs start in (their
    timestamps tie). ``run_inline`` as LangChain's own ``LangChainTracer``: without it LangChain
    hands a synchronous handler's callbacks to its thread pool, where the starts of concurrent
    tool calls can be handled in another order than they happened."""

    run_inline = True

    def __init__(self) -> None:
        super().__init__()
        self.started: dict[UUID, int] = {}

    def _start_trace(self, run: TracedRun) -> None:
        self.started[run.id] = len(self.started)
        super()._start_trace(run)


def traced(run: TracedRun) -> Iterator[TracedRun]:
    yield run
    for child in run.child_runs:
        yield from traced(child)


# ---------------------------------------------------------------------------------------------
# Tools and fake models


@tool
def weather(city: str) -> str:
    """Today's weather in a city."""
    return f"sunny in {city}"


@tool
def population(city: str) -> dict[str, Any]:
    """How many people live in a city."""
    return {"city": city, "people": 2_100_000}


@tool
def inventory(sku: str) -> str:
    """Units of a product in stock."""
    raise ValueError(f"warehouse offline for {sku}")


@tool
def approval(question: str) -> str:
    """Ask a human to approve."""
    return str(interrupt({"question": question}))


def usage(inputs: int, outputs: int, *, cached: int = 0, reasoning: int = 0) -> UsageMetadata:
    value: UsageMetadata = {
        "input_tokens": inputs,
        "output_tokens": outputs,
        "total_tokens": inputs + outputs,
    }
    if cached:
        value["input_token_details"] = InputTokenDetails(cache_read=cached)
    if reasoning:
        value["output_token_details"] = OutputTokenDetails(reasoning=reasoning)
    return value


def calls(*requests: tuple[str, dict[str, Any]], usage_metadata: UsageMetadata) -> AIMessage:
    """An answer asking for ``requests`` (tool name, arguments), all at once."""
    return AIMessage(
        content="",
        tool_calls=[
            {"name": name, "args": args, "id": f"call-{uuid.uuid4().hex[:8]}"}
            for name, args in requests
        ],
        usage_metadata=usage_metadata,
        response_metadata={"model_name": "fake-4o", "finish_reason": "tool_calls"},
    )


def answer(text: str, usage_metadata: UsageMetadata) -> AIMessage:
    return AIMessage(
        content=text,
        usage_metadata=usage_metadata,
        response_metadata={"model_name": "fake-4o", "finish_reason": "stop"},
    )


def model_with_tools(responses: list[BaseMessage], tools: list[BaseTool]) -> Runnable[Any, Any]:
    """LangChain's fake model answering ``responses`` in turn, with ``tools`` bound as a real
    model's ``bind_tools`` would (the fakes have no ``bind_tools``)."""
    model = FakeMessagesListChatModel(responses=responses)
    return model.bind(tools=[convert_to_openai_tool(t) for t in tools])


def react_agent(
    responses: list[BaseMessage], tools: list[BaseTool] | ToolNode, **options: Any
) -> CompiledStateGraph[Any]:
    """LangGraph's prebuilt ReAct agent on the fake model (``tools`` bound to it)."""
    bound = list(tools.tools_by_name.values()) if isinstance(tools, ToolNode) else tools
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model_with_tools(responses, bound), tools, **options)


PRICES = {
    "fake-4o": Price(input_per_million=2.5, output_per_million=10.0, cached_input_per_million=1.25)
}


# ---------------------------------------------------------------------------------------------
# The comparison

_INTERRUPT_ID = re.compile(r"Interrupt\(value=.*?, id='([0-9a-f]+)'")


def same_error(ours: str | None, theirs: str | None) -> bool:
    """The collector keeps a stack trace, whose line ``Type: message`` is what we record."""
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return ours in theirs.splitlines()


def is_interrupt(run: TracedRun) -> bool:
    return (run.error or "").startswith("GraphInterrupt(")


def expected_usage(run: TracedRun) -> tuple[int, int, int, int]:
    """The call's usage: the first generation's message that carries one (a request for
    several choices has the request's usage on each; LangSmith's tracer sums them)."""
    for generations in (run.outputs or {}).get("generations", []):
        for generation in generations:
            kwargs = generation.get("message", {}).get("kwargs", {})
            found = kwargs.get("usage_metadata") or {}
            if found:
                return (
                    found.get("input_tokens", 0),
                    found.get("output_tokens", 0),
                    (found.get("input_token_details") or {}).get("cache_read", 0),
                    (found.get("output_token_details") or {}).get("reasoning", 0),
                )
    return 0, 0, 0, 0


def expected_response_metadata(run: TracedRun) -> dict[str, Any]:
    for generations in (run.outputs or {}).get("generations", []):
        for generation in generations:
            found = generation.get("message", {}).get("kwargs", {}).get("response_metadata")
            if found:
                return dict(found)
    return {}


def compare_model(run: TracedRun, call: ModelCall) -> list[str]:
    metadata = expected_response_metadata(run)
    model = metadata.get("model_name") or run.name
    found: list[str] = []
    if call.model != model:
        found.append(f"model {call.model!r} != {model!r}")
    ours = (call.input_tokens, call.output_tokens, call.cached_input_tokens, call.reasoning_tokens)
    if ours != expected_usage(run):
        found.append(f"usage {ours} != {expected_usage(run)}")
    if call.finish_reason != metadata.get("finish_reason"):
        found.append(f"finish reason {call.finish_reason!r} != {metadata.get('finish_reason')!r}")
    if not same_error(call.error, run.error) or (call.status == "error") != bool(run.error):
        found.append(f"error {call.status}/{call.error!r} != {run.error!r}")
    # The answering model's price, else the price of the model asked for.
    requested = ((run.extra or {}).get("invocation_params") or {}).get("model")
    price = PRICES.get(call.model) or PRICES.get(requested or "")
    cost = 0.0 if price is None else price.cost(*ours[:3])
    if call.cost != pytest.approx(cost):
        found.append(f"cost {call.cost} != {cost}")
    return found


def expected_output(run: TracedRun) -> str | None:
    if run.error:
        return None
    output = (run.outputs or {}).get("output")
    content = getattr(output, "content", output)
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def compare_tool(run: TracedRun, call: ToolCall) -> list[str]:
    found: list[str] = []
    if call.tool_name != run.name:
        found.append(f"tool {call.tool_name!r} != {run.name!r}")
    if json.loads(call.input) != run.inputs:
        found.append(f"input {call.input!r} != {run.inputs!r}")
    if not same_error(call.error, run.error) or (call.status == "error") != bool(run.error):
        found.append(f"error {call.status}/{call.error!r} != {run.error!r}")
    if run.error is None and call.output != expected_output(run):
        found.append(f"output {call.output!r} != {expected_output(run)!r}")
    requested = (run.extra or {}).get("tool_call_id")
    if requested is not None and call.request_id != requested:
        found.append(f"request id {call.request_id!r} != {requested!r}")
    return found


def compare_interrupted_tool(run: TracedRun, step: RunStep) -> list[str]:
    found: list[str] = []
    ids = list(dict.fromkeys(_INTERRUPT_ID.findall(run.error or "")))  # repr and trace
    if (step.kind, step.name) != ("interrupt", run.name):
        found.append(f"step {step.kind}/{step.name} != interrupt/{run.name}")
    if step.data.get("ids") != ids:
        found.append(f"interrupt ids {step.data.get('ids')} != {ids}")
    if step.data.get("tool_input") != run.inputs:
        found.append(f"interrupted input {step.data.get('tool_input')} != {run.inputs}")
    return found


def mismatches(collector: OrderedCollector, root: TracedRun, ours: Run | None) -> list[str]:
    """How our run differs from the collector's trace of the same invocation (empty: none)."""
    if ours is None:
        return [f"no run recorded for {root.name} {root.id}"]
    found: list[str] = []
    runs = sorted(traced(root), key=lambda run: collector.started[run.id])
    # LLM and tool runs, in the order they started: our calls, in our order.
    theirs = [run for run in runs if run.run_type in ("llm", "chat_model", "tool")]
    node_interrupts = {
        i
        for run in runs
        if run.run_type == "chain" and is_interrupt(run)
        for i in _INTERRUPT_ID.findall(run.error or "")
    }
    tool_interrupts = {
        i
        for run in theirs
        if run.run_type == "tool"
        for i in _INTERRUPT_ID.findall(run.error or "")
    }
    ours_calls = [
        call
        for call in ours.calls()
        if not isinstance(call, RunStep) or call.data.get("tool_input") is not None
    ]
    if len(ours_calls) != len(theirs):
        found.append(f"{len(ours_calls)} calls recorded, the collector saw {len(theirs)}")
    for run, call in zip(theirs, ours_calls, strict=False):
        label = f"{run.run_type} {run.name} #{collector.started[run.id]}"
        if run.run_type == "tool" and is_interrupt(run):
            problems = (
                compare_interrupted_tool(run, call)
                if isinstance(call, RunStep)
                else [f"interrupted tool recorded as {type(call).__name__}"]
            )
        elif run.run_type == "tool":
            problems = (
                compare_tool(run, call)
                if isinstance(call, ToolCall)
                else [f"recorded as {type(call).__name__}"]
            )
        else:
            problems = (
                compare_model(run, call)
                if isinstance(call, ModelCall)
                else [f"recorded as {type(call).__name__}"]
            )
        found += [f"{label}: {problem}" for problem in problems]
    # An interrupt of a node (not of a tool) is one step of ours too.
    steps = {i for step in ours.steps if step.kind == "interrupt" for i in step.data["ids"]}
    if steps != node_interrupts | tool_interrupts:
        found.append(
            f"interrupt steps {sorted(steps)} != {sorted(node_interrupts | tool_interrupts)}"
        )
    # The run itself.
    if ours.external_id != str(root.id):
        found.append(f"external id {ours.external_id} != {root.id}")
    failed = bool(root.error) and not is_interrupt(root)
    status = "failed" if failed else "completed"
    if ours.status != status:
        found.append(f"status {ours.status} != {status}")
    if not same_error(ours.error, root.error if failed else None):
        found.append(f"run error {ours.error!r} != {root.error!r}")
    return found


# ---------------------------------------------------------------------------------------------
# Graphs


def subgraph_app(
    responses: list[BaseMessage], summary: list[BaseMessage]
) -> CompiledStateGraph[Any]:
    """A parent graph: a ReAct agent as its ``research`` node (a subgraph), then ``summarize``,
    a node that asks another model directly."""
    research = react_agent(responses, [weather, population], name="research")
    summarizer = FakeMessagesListChatModel(responses=summary)

    async def summarize(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await summarizer.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("research", research)
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "research")
    builder.add_edge("research", "summarize")
    builder.add_edge("summarize", END)
    return builder.compile(name="trip-planner")


def parallel_turn() -> list[BaseMessage]:
    return [
        calls(
            ("weather", {"city": "Paris"}),
            ("weather", {"city": "Rome"}),
            ("population", {"city": "Paris"}),
            usage_metadata=usage(120, 30, cached=64, reasoning=12),
        ),
        answer("Sunny in Paris and Rome; 2.1 M people live in Paris.", usage(210, 18)),
    ]


def failing_model() -> Iterator[AIMessage | str]:
    yield calls(("weather", {"city": "Oslo"}), usage_metadata=usage(40, 9))
    raise ConnectionError("model endpoint unreachable")


# ---------------------------------------------------------------------------------------------
# Our handler next to the collector


class Recording:
    """Our handler and LangChain's collector on the same invocations; ``check`` compares them."""

    def __init__(self, handler: AgentsCoreCallbackHandler) -> None:
        self.handler = handler
        self.collector = OrderedCollector()
        #: Our runs, in the order of the collector's traces (``check``).
        self.runs: list[Run] = []

    def config(self, thread_id: str) -> Any:
        return {
            "configurable": {"thread_id": thread_id},
            "callbacks": [self.collector, self.handler],
        }

    async def __aenter__(self) -> Recording:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert await asyncio.to_thread(self.handler.force_flush, 60)

    async def check(self) -> Tally:
        """Every trace of the collector matches our run of it; what was compared."""
        tally, problems = await self.compare()
        assert problems == []
        stats = self.handler.stats()
        assert (stats.dropped, stats.failed, stats.pending) == (0, 0, 0)
        return tally

    async def compare(self) -> tuple[Tally, list[str]]:
        """Every trace of the collector against our run of it: what was compared, what differs."""
        runs, sessions, agents = RunsRepository(), SessionsRepository(), AgentsRepository()
        tally, problems = Tally(), []
        self.runs = []
        for root in self.collector.traced_runs:
            ours = await runs.find_by_external_id(str(root.id), source="langgraph")
            problems += mismatches(self.collector, root, ours)
            tally.add(root)
            if ours is None:
                continue
            self.runs.append(ours)
            agent = await agents.find_by_id(ours.agent_id)
            if agent.name != root.name:
                problems.append(f"agent {agent.name!r} != {root.name!r}")
            thread_id = (root.extra or {}).get("metadata", {}).get("thread_id")
            session = await sessions.find_by_external_id(thread_id, namespace=NAMESPACE)
            if session is None or session.id != ours.session_id:
                problems.append(f"run {ours.id} is not in the session of thread {thread_id}")
        return tally, problems


Recorder = Callable[..., Recording]


@pytest_asyncio.fixture
async def recorder(backend: str, request: pytest.FixtureRequest) -> AsyncIterator[Recorder]:
    """Makes recordings whose handler (of a given class) writes to the test's database: the
    wire server's through a URI of its own, since the writer writes from its own thread."""
    handlers: list[AgentsCoreCallbackHandler] = []

    def make(kind: type[AgentsCoreCallbackHandler] = AgentsCoreCallbackHandler) -> Recording:
        if backend == "wire":
            wire_uri: str = request.getfixturevalue("wire_uri")
            database = default_connection().database.name
            handler = kind.from_uri(wire_uri, database=database, prices=PRICES)
        else:
            handler = kind(prices=PRICES)
        handlers.append(handler)
        return Recording(handler)

    yield make
    for handler in handlers:
        assert await asyncio.to_thread(handler.shutdown, 60)


@pytest.fixture
def rec(recorder: Recorder) -> Recording:
    return recorder()


# ---------------------------------------------------------------------------------------------
# The proof, graph by graph


@dataclass
class Tally:
    """What one test compared."""

    invocations: int = 0
    llm_runs: int = 0
    tool_runs: int = 0

    def add(self, root: TracedRun) -> None:
        self.invocations += 1
        for run in traced(root):
            self.llm_runs += run.run_type in ("llm", "chat_model")
            self.tool_runs += run.run_type == "tool"


def thread() -> str:
    return f"thread-{uuid.uuid4().hex[:10]}"


async def test_react_agent_with_parallel_tool_calls(rec: Recording) -> None:
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    async with rec:
        result = await agent.ainvoke(
            {"messages": [("user", "Paris or Rome?")]}, rec.config(thread())
        )
    assert result["messages"][-1].content.startswith("Sunny in Paris")
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (1, 2, 3)
    (run,) = rec.runs
    assert [type(call).__name__ for call in run.calls()] == [
        "ModelCall",
        "ToolCall",
        "ToolCall",
        "ToolCall",
        "ModelCall",
    ]
    assert run.tokens == 120 + 30 + 210 + 18
    assert run.cost == pytest.approx(
        PRICES["fake-4o"].cost(120, 30, 64) + PRICES["fake-4o"].cost(210, 18)
    )


async def test_a_tool_that_raises_is_an_error_of_its_call(rec: Recording) -> None:
    """Handled by the ``ToolNode`` (the model is told, the run completes), then unhandled (the
    run fails with the tool's error)."""
    handled = react_agent(
        [
            calls(
                ("inventory", {"sku": "B-12"}),
                ("weather", {"city": "Lyon"}),
                usage_metadata=usage(50, 12),
            ),
            answer("The warehouse is offline; Lyon is sunny.", usage(90, 11)),
        ],
        ToolNode([inventory, weather], handle_tool_errors=True),
        name="stock-agent",
    )
    unhandled = react_agent(
        [calls(("inventory", {"sku": "B-13"}), usage_metadata=usage(30, 7))],
        [inventory],
        name="stock-agent",
    )
    async with rec:
        await handled.ainvoke({"messages": [("user", "B-12 in stock?")]}, rec.config(thread()))
        with pytest.raises(ValueError, match="warehouse offline for B-13"):
            await unhandled.ainvoke({"messages": [("user", "B-13?")]}, rec.config(thread()))
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (2, 3, 3)
    first, second = rec.runs
    assert first.status == "completed"
    assert second.status == "failed"
    assert [(c.tool_name, c.status, c.error) for c in first.tool_calls] == [
        ("inventory", "error", "ValueError: warehouse offline for B-12"),
        ("weather", "success", None),
    ]
    assert second.error == "ValueError: warehouse offline for B-13"


async def test_a_model_that_raises_fails_the_run(rec: Recording) -> None:
    model = GenericFakeChatModel(messages=failing_model())

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([weather]))
    builder.add_edge(START, "agent")
    builder.add_edge("agent", "tools")
    builder.add_edge("tools", "agent")
    graph: CompiledStateGraph[Any] = builder.compile(name="flaky-agent")
    async with rec:
        with pytest.raises(ConnectionError):
            await graph.ainvoke({"messages": [("user", "Oslo?")]}, rec.config(thread()))
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (1, 2, 1)
    (run,) = rec.runs
    assert run.status == "failed"
    assert run.error == "ConnectionError: model endpoint unreachable"
    assert [c.status for c in run.model_calls] == ["success", "error"]


async def test_an_interrupt_and_its_resumption_are_two_runs_of_one_session(rec: Recording) -> None:
    """A tool that calls ``interrupt()`` (in a ReAct agent) and a node that does
    (``tests/_langgraph_app``), each resumed by a later invocation, with ``AgentsCoreSaver``
    keeping the thread: the session of the runs is the saver's thread."""
    saver = AgentsCoreSaver()
    agent = react_agent(
        [
            calls(("approval", {"question": "Refund 42 EUR?"}), usage_metadata=usage(60, 14)),
            answer("Refund approved.", usage(95, 5)),
        ],
        [approval],
        name="refund-agent",
        checkpointer=saver,
    )
    node_app = app.build([*app.FIRST_TURN, *app.AFTER_APPROVAL], saver)
    tool_thread, node_thread = thread(), thread()
    async with rec:
        first = await agent.ainvoke(
            {"messages": [("user", "Refund A-17")]}, rec.config(tool_thread)
        )
        assert first["__interrupt__"][0].value == {"question": "Refund 42 EUR?"}
        await agent.ainvoke(Command(resume="approved"), rec.config(tool_thread))
        await node_app.ainvoke({"messages": [("user", "Refund A-17?")]}, rec.config(node_thread))
        await node_app.ainvoke(Command(resume="yes"), rec.config(node_thread))
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (4, 5, 3)
    asked, resumed, node_asked, node_resumed = rec.runs
    assert [c.kind for c in asked.calls() if isinstance(c, RunStep)] == ["interrupt"]
    assert asked.status == "completed"
    assert asked.tool_calls == []
    (step,) = asked.steps
    assert (step.name, step.data["values"]) == ("approval", [{"question": "Refund 42 EUR?"}])
    assert [(c.tool_name, c.output) for c in resumed.tool_calls] == [("approval", "approved")]
    (node_step,) = node_asked.steps
    assert (node_step.name, node_step.data["values"]) == (
        "approve",
        [{"question": "Approve the refund of 42 EUR?"}],
    )
    assert node_resumed.steps == []
    for thread_id, runs in (
        (tool_thread, [asked, resumed]),
        (node_thread, [node_asked, node_resumed]),
    ):
        session = await SessionsRepository().find_by_external_id(thread_id, namespace=NAMESPACE)
        assert session is not None
        assert {run.session_id for run in runs} == {session.id}
        listed = await RunsRepository().list_by_session(session.id)
        assert {run.id for run in listed} == {run.id for run in runs}
        # The checkpointer keeps the same thread's state.
        state = await saver.aget_tuple({"configurable": {"thread_id": session.external_id}})
        assert state is not None


async def test_parallel_interrupts_are_one_step_each(rec: Recording) -> None:
    """Two tools interrupted at once (reported again together by their node and the graph):
    one step each, in the tools' places; the resumption answers both."""
    agent = react_agent(
        [
            calls(
                ("approval", {"question": "Refund 42 EUR?"}),
                ("approval", {"question": "Refund 7 EUR?"}),
                usage_metadata=usage(70, 20),
            ),
            answer("Both refunds approved.", usage(120, 6)),
        ],
        [approval],
        name="refund-agent",
        checkpointer=AgentsCoreSaver(),
    )
    thread_id = thread()
    async with rec:
        first = await agent.ainvoke({"messages": [("user", "Two refunds")]}, rec.config(thread_id))
        answers = {i.id: f"yes to {i.value['question']}" for i in first["__interrupt__"]}
        await agent.ainvoke(Command(resume=answers), rec.config(thread_id))
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (2, 2, 4)
    asked, resumed = rec.runs
    assert [type(c).__name__ for c in asked.calls()] == ["ModelCall", "RunStep", "RunStep"]
    questions = [value["question"] for step in asked.steps for value in step.data["values"]]
    assert sorted(questions) == ["Refund 42 EUR?", "Refund 7 EUR?"]
    assert sorted(c.output or "" for c in resumed.tool_calls) == [
        "yes to Refund 42 EUR?",
        "yes to Refund 7 EUR?",
    ]


async def test_a_subgraph_is_part_of_its_parents_run(rec: Recording) -> None:
    graph = subgraph_app(parallel_turn(), [answer("Go to Rome.", usage(300, 4, cached=256))])
    async with rec:
        await graph.ainvoke({"messages": [("user", "Plan my trip")]}, rec.config(thread()))
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (1, 3, 3)
    (run,) = rec.runs
    assert [type(c).__name__ for c in run.calls()] == [
        "ModelCall",
        "ToolCall",
        "ToolCall",
        "ToolCall",
        "ModelCall",
        "ModelCall",
    ]
    agent = await AgentsRepository().find_by_id(run.agent_id)
    assert agent.name == "trip-planner"
    assert set(agent.tools) == {"weather", "population"}


async def test_streamed_invocations_are_recorded_like_invoked_ones(rec: Recording) -> None:
    """``astream`` (updates and messages, with subgraphs), ``astream_events`` (v2) of a ReAct
    agent, and a model streaming its tokens (``GenericFakeChatModel``) in a graph."""
    streamed = subgraph_app(parallel_turn(), [answer("Go to Rome.", usage(300, 4))])
    evented = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    tokens = GenericFakeChatModel(messages=iter(["Rome is sunny today"]))

    async def talk(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await tokens.ainvoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("talk", talk)
    builder.add_edge(START, "talk")
    builder.add_edge("talk", END)
    chatty: CompiledStateGraph[Any] = builder.compile(name="chatty")
    async with rec:
        chunks = [
            chunk
            async for chunk in streamed.astream(
                {"messages": [("user", "Plan my trip")]},
                rec.config(thread()),
                stream_mode=["updates", "messages"],
                subgraphs=True,
            )
        ]
        events = [
            event["event"]
            async for event in evented.astream_events(
                {"messages": [("user", "Paris or Rome?")]}, rec.config(thread()), version="v2"
            )
        ]
        pieces = [
            event["data"]["chunk"].content
            async for event in chatty.astream_events(
                {"messages": [("user", "Weather?")]}, rec.config(thread()), version="v2"
            )
            if event["event"] == "on_chat_model_stream"
        ]
    assert chunks
    assert "on_tool_end" in events
    assert "".join(pieces) == "Rome is sunny today"
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (3, 6, 6)


async def test_concurrent_and_synchronous_invocations_are_runs_of_their_own(
    rec: Recording,
) -> None:
    """Five invocations at once through one handler, then a synchronous ``invoke``: each is its
    own run, each matching its trace. (The synchronous agent asks for one tool at a time: tool
    calls that LangGraph runs in threads of its pool have no order between two handlers.)"""
    agents = [
        react_agent(parallel_turn(), [weather, population], name="travel-agent") for _ in range(5)
    ]
    one_at_a_time = react_agent(
        [
            calls(("weather", {"city": "Nice"}), usage_metadata=usage(30, 6)),
            calls(("population", {"city": "Nice"}), usage_metadata=usage(45, 7)),
            answer("Sunny, and 340,000 people.", usage(60, 9)),
        ],
        [weather, population],
        name="travel-agent",
    )
    async with rec:
        await asyncio.gather(
            *(
                agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, rec.config(thread()))
                for agent in agents
            )
        )
        config = rec.config(thread())
        await asyncio.to_thread(one_at_a_time.invoke, {"messages": [("user", "Nice?")]}, config)
    tally = await rec.check()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (6, 13, 17)
    assert len({run.session_id for run in rec.runs}) == 6


# ---------------------------------------------------------------------------------------------
# The comparison fails when our handler drops or alters a call


class DroppingHandler(AgentsCoreCallbackHandler):
    """Leaves the second tool call out."""

    tools_seen = 0

    def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
        self.tools_seen += 1
        if self.tools_seen != 2:
            super().on_tool_start(*args, **kwargs)


class AlteringHandler(AgentsCoreCallbackHandler):
    """Records one output token more on every model call, and a tool output with a typo."""

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        altered = response.model_copy(deep=True)
        generation = altered.generations[0][0]
        assert isinstance(generation, ChatGeneration)
        assert isinstance(generation.message, AIMessage)
        if generation.message.usage_metadata:
            generation.message.usage_metadata["output_tokens"] += 1
        super().on_llm_end(altered, **kwargs)

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        if getattr(output, "content", None) == "sunny in Rome":
            output = output.model_copy(update={"content": "sunny in Rom"})
        super().on_tool_end(output, **kwargs)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            DroppingHandler,
            [
                "4 calls recorded, the collector saw 5",
                "tool 'population' != 'weather'",
                "recorded as ModelCall",
            ],
        ),
        (
            AlteringHandler,
            [
                "usage (120, 31, 64, 12) != (120, 30, 64, 12)",
                "output 'sunny in Rom' != 'sunny in Rome'",
                "usage (210, 19, 0, 0) != (210, 18, 0, 0)",
            ],
        ),
    ],
)
async def test_the_comparison_catches_a_dropped_or_altered_call(
    recorder: Recorder, kind: type[AgentsCoreCallbackHandler], expected: list[str]
) -> None:
    rec = recorder(kind)
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    async with rec:
        await agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, rec.config(thread()))
    tally, problems = await rec.compare()
    assert (tally.invocations, tally.llm_runs, tally.tool_runs) == (1, 2, 3)
    for problem in expected:
        assert any(problem in found for found in problems), (problem, problems)


# ---------------------------------------------------------------------------------------------
# The views


async def test_a_recorded_langgraph_run_renders_in_the_session_tree(rec: Recording) -> None:
    """LangGraph keeps the conversation in its checkpoints, so the session has runs and no
    messages: the tree shows the runs' model and tool calls all the same."""
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    thread_id = thread()
    async with rec:
        await agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, rec.config(thread_id))
    session = await SessionsRepository().find_by_external_id(thread_id, namespace=NAMESPACE)
    assert session is not None
    runs = await RunsRepository().list_by_session(session.id)
    text = rendered(render_session_tree(session, runs))
    lines = [line.strip() for line in text.splitlines()]
    assert sum("fake-4o" in line for line in lines) == 2, text
    assert sum("weather" in line for line in lines) == 2, text
    assert sum("population" in line for line in lines) == 1, text
    assert "sunny in Rome" in text


async def test_a_recorded_langgraph_run_shows_on_its_session_page(rec: Recording) -> None:
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    thread_id = thread()
    async with rec:
        await agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, rec.config(thread_id))
    session = await SessionsRepository().find_by_external_id(thread_id, namespace=NAMESPACE)
    assert session is not None
    (run,) = await RunsRepository().list_by_session(session.id)
    transport = httpx.ASGITransport(app=create_app(host="127.0.0.1", port=8000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        page = (await http.get(f"/sessions/{session.id}")).text
        run_page = (await http.get(f"/runs/{run.id}")).text
    assert "No messages." not in page
    assert f'href="/runs/{run.id}"' in page
    assert "no messages recorded" in page
    assert run_page.count("weather") >= 2
    assert "population" in run_page
    assert "fake-4o" in run_page


async def test_a_recorded_langgraph_run_exports_as_opentelemetry_spans(rec: Recording) -> None:
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    async with rec:
        await agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, rec.config(thread()))
    await rec.check()
    (run,) = rec.runs
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_run(run, tracer=provider.get_tracer("test"), agent_name="travel-agent")
    provider.shutdown()
    placed = {
        int(str((span.attributes or {})[CALL_INDEX_ATTRIBUTE])): span.name
        for span in exporter.get_finished_spans()
        if span.parent is not None
    }
    assert [placed[index] for index in sorted(placed)] == [
        "chat fake-4o",
        "execute_tool weather",
        "execute_tool weather",
        "execute_tool population",
        "chat fake-4o",
    ]


def rendered(renderable: object) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


# ---------------------------------------------------------------------------------------------
# Sessions of their own, and never in the graph's way


async def recorded_alone(rec: Recording, model: Runnable[Any, Any]) -> tuple[TracedRun, Run]:
    """A chat model invoked alone ("Hi"), recorded: LangChain's trace of it and our run, which
    agree."""
    async with rec:
        await model.ainvoke("Hi", {"callbacks": [rec.collector, rec.handler]})
    (root,) = rec.collector.traced_runs
    run = await RunsRepository().find_by_external_id(str(root.id), source="langchain")
    assert mismatches(rec.collector, root, run) == []
    assert run is not None
    return root, run


async def test_an_invocation_without_a_thread_gets_a_session_of_its_own(rec: Recording) -> None:
    """A chat model invoked alone (LangChain, no graph, no ``thread_id``): a run of one model
    call, in a session of its own named by the run's id."""
    model = FakeMessagesListChatModel(responses=[answer("Hello.", usage(5, 2))])
    root, run = await recorded_alone(rec, model)
    session = await SessionsRepository().find_by_external_id(str(root.id), namespace=RUN_NAMESPACE)
    assert session is not None
    assert session.id == run.session_id
    agent = await AgentsRepository().find_by_id(run.agent_id)
    assert agent.name == "FakeMessagesListChatModel"


async def test_a_model_that_answers_as_a_dated_snapshot_is_priced_as_the_one_asked_for(
    rec: Recording,
) -> None:
    """Asked for ``fake-4o`` (priced), the provider answers as its snapshot
    ``fake-4o-2024-08-06`` (not priced): the call keeps the answering model's name and is
    priced as the model asked for, not recorded at cost 0 without a price."""
    snapshot = AIMessage(
        content="Hello.",
        usage_metadata=usage(1000, 200, cached=400),
        response_metadata={"model_name": "fake-4o-2024-08-06", "finish_reason": "stop"},
    )
    model = FakeMessagesListChatModel(responses=[snapshot]).bind(model="fake-4o")
    _, run = await recorded_alone(rec, model)
    (call,) = run.model_calls
    price = PRICES["fake-4o"]
    assert (call.model, call.price) == ("fake-4o-2024-08-06", price)
    assert call.cost == pytest.approx(price.cost(1000, 200, 400))


class TwoChoices(BaseChatModel):
    """A chat model asked for two choices (OpenAI's ``n=2``): one request, whose usage
    LangChain's OpenAI-compatible models put on every choice's message."""

    @property
    def _llm_type(self) -> str:
        return "two-choices"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(
            generations=[
                ChatGeneration(message=answer(text, usage(1000, 200, cached=400)))
                for text in ("Hello.", "Hi.")
            ]
        )


async def test_a_call_of_several_choices_counts_its_usage_once(rec: Recording) -> None:
    _, run = await recorded_alone(rec, TwoChoices())
    (call,) = run.model_calls
    assert (call.input_tokens, call.output_tokens, call.cached_input_tokens) == (1000, 200, 400)
    assert call.cost == pytest.approx(PRICES["fake-4o"].cost(1000, 200, 400))


async def test_a_callback_that_fails_never_reaches_the_graph(
    rec: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    """A tool output that cannot be read (neither text nor JSON): the callback logs it once and
    the run is recorded without it (that tool call did not finish, as far as we know)."""

    class Unreadable:
        def __str__(self) -> str:
            raise RuntimeError("unreadable")

    handler, root, child = rec.handler, uuid.uuid4(), uuid.uuid4()
    async with rec:
        handler.on_chain_start({}, {}, run_id=root, name="graph", metadata={"thread_id": "t-x"})
        for _ in range(2):
            handler.on_tool_start({"name": "lookup"}, "A-1", run_id=child, parent_run_id=root)
            handler.on_tool_end(Unreadable(), run_id=child, parent_run_id=root)
        handler.on_chain_end({}, run_id=root)
    run = await RunsRepository().find_by_external_id(str(root), source="langchain")
    assert run is not None
    assert [(c.tool_name, c.status, c.error) for c in run.tool_calls] == [
        ("lookup", "error", UNFINISHED),
        ("lookup", "error", UNFINISHED),
    ]
    failures = [r for r in caplog.records if "on_tool_end failed" in r.getMessage()]
    assert len(failures) == 1


async def test_a_database_that_is_down_never_slows_or_breaks_the_graph() -> None:
    """Nothing listens at the URI: the graph's result is the same, the run is counted as failed
    by the writer (in the background), and nothing is raised."""
    handler = AgentsCoreCallbackHandler.from_uri(
        "mongodb://127.0.0.1:9/?serverSelectionTimeoutMS=200", retries=0
    )
    agent = react_agent(parallel_turn(), [weather, population], name="travel-agent")
    config: Any = {"configurable": {"thread_id": thread()}, "callbacks": [handler]}
    try:
        result = await agent.ainvoke({"messages": [("user", "Paris or Rome?")]}, config)
        assert result["messages"][-1].content.startswith("Sunny in Paris")
        assert await asyncio.to_thread(handler.force_flush, 30)
        stats = handler.stats()
        assert (stats.submitted, stats.written, stats.failed) == (1, 0, 1)
    finally:
        assert await asyncio.to_thread(handler.shutdown, 30)


async def test_what_the_layer_would_refuse_is_bounded_before_it_is_written(
    rec: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    """An interrupt's value of 100 KB (steps keep 16 KB at most) and a ``thread_id`` no session
    can carry (a line break): the run is written all the same, the value cut, the thread's run
    in a session of its own (logged once)."""
    handler, root, node = rec.handler, uuid.uuid4(), uuid.uuid4()
    huge = Interrupt(value={"draft": "x" * 100_000}, id="i-1")
    async with rec:
        handler.on_chain_start({}, {}, run_id=root, name="g", metadata={"thread_id": "a\nb"})
        handler.on_chain_start({}, {}, run_id=node, parent_run_id=root, name="review")
        handler.on_chain_error(GraphInterrupt((huge,)), run_id=node, parent_run_id=root)
        handler.on_chain_end({}, run_id=root)
    run = await RunsRepository().find_by_external_id(str(root), source="langchain")
    assert run is not None
    (step,) = run.steps
    assert (step.kind, step.name, step.data["ids"], step.data["truncated"]) == (
        "interrupt",
        "review",
        ["i-1"],
        True,
    )
    assert step.data["values"].startswith('[{"draft": "xxx')
    session = await SessionsRepository().find_by_external_id(str(root), namespace=RUN_NAMESPACE)
    assert session is not None
    assert session.id == run.session_id
    assert sum("thread_id" in r.getMessage() for r in caplog.records) == 1


async def test_beyond_the_open_invocations_bound_a_run_is_dropped_and_counted_once(
    rec: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two invocations open (the bound, lowered), a third is not followed: counted as one
    dropped run, however many callbacks run under it; the two are recorded."""
    monkeypatch.setattr(handler_module, "MAX_OPEN_INVOCATIONS", 2)
    handler = rec.handler
    open_roots = [uuid.uuid4(), uuid.uuid4()]
    third, children = uuid.uuid4(), [uuid.uuid4() for _ in range(3)]
    async with rec:
        for root in open_roots:
            handler.on_chain_start({}, {}, run_id=root, name="graph")
        handler.on_chain_start({}, {}, run_id=third, name="graph")
        for child in children:
            handler.on_tool_start({"name": "lookup"}, "A-1", run_id=child, parent_run_id=third)
            handler.on_tool_end("found", run_id=child, parent_run_id=third)
        handler.on_chain_end({}, run_id=third)
        for root in open_roots:
            handler.on_chain_end({}, run_id=root)
    stats = handler.stats()
    assert (stats.submitted, stats.written, stats.dropped) == (2, 2, 1)
    runs = RunsRepository()
    assert await runs.find_by_external_id(str(third), source="langchain") is None
    for root in open_roots:
        assert await runs.find_by_external_id(str(root), source="langchain") is not None
