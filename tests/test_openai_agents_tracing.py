"""AgentsCoreTracingProcessor: OpenAI Agents SDK traces recorded as runs, on both backends.

Every recording is checked with the same checker the SDK's own suites run under
(``tests_frameworks/openai_agents/checker.py``), against the spans a processor of ours saw;
the checker is shown to catch a recording that drops or alters a span. The slow tests at the
end show that a database that stops answering never holds the agent up.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    RunConfig,
    Runner,
    custom_span,
    function_tool,
    generation_span,
    input_guardrail,
    response_span,
    trace,
)
from agents.exceptions import MaxTurnsExceeded
from agents.testing import ModelStep, ScriptedModel
from agents.tracing import (
    Span,
    Trace,
    TracingProcessor,
    function_span,
    mcp_tools_span,
    set_trace_processors,
    turn_span,
)
from agents.usage import Usage
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseUsage,
)
from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from rich.console import Console

from agents_core.db import (
    AgentsRepository,
    CallKind,
    MessagesRepository,
    ModelCallStatus,
    Price,
    Run,
    RunsRepository,
    RunStatus,
    SessionsRepository,
    Settings,
    StepStatus,
    ToolCallStatus,
    default_connection,
)
from agents_core.embedded import EmbeddedServer
from agents_core.integrations.openai_agents import (
    NAMESPACE,
    AgentsCoreSession,
    AgentsCoreTracingProcessor,
)
from agents_core.integrations.recording import WriterStats
from agents_core.trace import group_turns, render_session_tree, run_timeline, turn_steps
from agents_core.trace.otel import record_run
from agents_core.trace.web import create_app
from tests_frameworks.openai_agents.checker import SOURCE, Comparison, compare

PRICES = {
    "gpt-test": Price(input_per_million=2.0, output_per_million=8.0, cached_input_per_million=0.5)
}


# --- what the SDK reported: a processor of ours, next to the one under test ------------------


class Collector(TracingProcessor):
    """The traces and ended spans the SDK reported, the spans in their start order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.traces: list[Trace] = []
        self._order: dict[str, int] = {}
        self._spans: list[Span[Any]] = []

    def on_trace_start(self, trace: Trace) -> None:
        with self._lock:
            self.traces.append(trace)

    def on_trace_end(self, trace: Trace) -> None:
        pass

    def on_span_start(self, span: Span[Any]) -> None:
        with self._lock:
            self._order.setdefault(span.span_id, len(self._order))

    def on_span_end(self, span: Span[Any]) -> None:
        with self._lock:
            self._spans.append(span)

    @property
    def spans(self) -> list[Span[Any]]:
        with self._lock:
            return sorted(self._spans, key=lambda span: self._order[span.span_id])

    def shutdown(self) -> None:
        pass

    def force_flush(self) -> None:
        pass


@dataclass
class Traced:
    processor: AgentsCoreTracingProcessor
    collector: Collector = field(default_factory=Collector)

    async def runs(self) -> dict[str, Run | None]:
        """Flush; the run recorded for each trace the collector saw."""
        self.processor.force_flush(timeout=30)
        repository = RunsRepository()
        return {
            seen.trace_id: await repository.find_by_external_id(seen.trace_id, source=SOURCE)
            for seen in self.collector.traces
        }

    async def check(self) -> tuple[Comparison, dict[str, Run | None]]:
        runs = await self.runs()
        return compare(self.collector.traces, self.collector.spans, runs), runs


def processor_for(backend: str, request: pytest.FixtureRequest) -> AgentsCoreTracingProcessor:
    """On the mock, the writer uses its injected client from its own thread; on the wire
    backend that client is bound to the tests' loop, so the writer connects by URI."""
    connection = default_connection()
    if backend == "mock":
        return AgentsCoreTracingProcessor(connection, prices=PRICES)
    uri = request.getfixturevalue("wire_uri")
    return AgentsCoreTracingProcessor.from_uri(
        uri, database=connection.database.name, prices=PRICES
    )


@pytest.fixture
def traced(backend: str, request: pytest.FixtureRequest) -> Iterator[Traced]:
    made = Traced(processor_for(backend, request))
    set_trace_processors([made.processor, made.collector])
    try:
        yield made
    finally:
        set_trace_processors([])
        made.processor.shutdown(timeout=30)


# --- an agent with tools, a guardrail and a handoff ------------------------------------------


def usage(input_tokens: int, output_tokens: int, cached: int = 0) -> Usage:
    return Usage(
        requests=1,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
        input_tokens_details=InputTokensDetails(cached_tokens=cached, cache_write_tokens=0),
        output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
    )


def text(content: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg",
        type="message",
        role="assistant",
        status="completed",
        content=[ResponseOutputText(text=content, type="output_text", annotations=[])],
    )


def call(name: str, arguments: str, call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"fc_{call_id}", call_id=call_id, type="function_call", name=name, arguments=arguments
    )


@function_tool
def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


@function_tool
def boom() -> str:
    """Always fails."""
    raise ValueError("kaboom")


@input_guardrail
def polite(context: Any, agent: Any, input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={"checked": True}, tripwire_triggered=False)


def support_agents() -> Agent[Any]:
    billing = Agent(
        name="billing",
        model=ScriptedModel(
            [{"output": [text("Refund sent.")], "usage": usage(7, 3)}], emit_traces=True
        ),
    )
    return Agent(
        name="triage",
        model=ScriptedModel(
            [
                {
                    "output": [call("add", '{"a": 1, "b": 2}', "c1"), call("boom", "{}", "c2")],
                    "usage": usage(100, 20, cached=40),
                },
                {"output": [call("transfer_to_billing", "{}", "c3")], "usage": usage(50, 5)},
            ],
            emit_traces=True,
        ),
        tools=[add, boom],
        handoffs=[billing],
        input_guardrails=[polite],
    )


@pytest.mark.usefixtures("backend")
async def test_a_run_is_recorded_as_its_spans_say_next_to_its_conversation(
    traced: Traced,
) -> None:
    session = AgentsCoreSession("conversation-7", user_id="u-7")
    result = await Runner.run(
        support_agents(),
        "Where is my refund?",
        session=session,
        run_config=RunConfig(group_id="conversation-7", trace_metadata={"user_id": "u-7"}),
    )
    assert result.final_output == "Refund sent."
    comparison, runs = await traced.check()
    assert comparison.problems == []
    assert comparison.traces == 1
    [run] = [run for run in runs.values() if run is not None]
    # Next to the messages of the same conversation.
    core = await session.core_session()
    assert core is not None
    assert run.session_id == core.id
    assert await RunsRepository().list_by_session(core.id) == [run]
    assert len(await MessagesRepository().find_by_session(core.id, 50)) >= 2
    # The agents, their tools enabled; the steps and calls in the SDK's order.
    triage = await AgentsRepository().find_by_name("triage")
    billing = await AgentsRepository().find_by_name("billing")
    assert triage is not None
    assert billing is not None
    assert (run.agent_id, triage.tools, billing.tools) == (triage.id, ["add", "boom"], [])
    assert [getattr(step, "kind", type(step).__name__) for step in run.calls()] == [
        "agent",
        "guardrail",
        "ModelCall",
        "ToolCall",
        "ToolCall",
        "ModelCall",
        "handoff",
        "agent",
        "ModelCall",
    ]
    assert [step.name for step in run.steps] == ["triage", "polite", "triage → billing", "billing"]
    assert run.steps[1].data == {"name": "polite", "triggered": False}
    # Usage from the turns (ScriptedModel leaves it there), a failed tool with its error.
    assert [(c.input_tokens, c.output_tokens, c.cached_input_tokens) for c in run.model_calls] == [
        (100, 20, 40),
        (50, 5, 0),
        (7, 3, 0),
    ]
    assert run.tokens == 185
    added, failed = run.tool_calls
    assert (added.tool_name, added.input, added.output) == ("add", '{"a": 1, "b": 2}', "3")
    assert failed.status == ToolCallStatus.error
    assert failed.error is not None
    assert failed.error.startswith("Error running tool (non-fatal)")
    assert run.status == RunStatus.completed
    assert (run.source, run.external_id) == (SOURCE, traced.collector.traces[0].trace_id)


@pytest.mark.usefixtures("backend")
async def test_a_run_without_a_group_is_recorded_in_the_session_it_kept_its_items_in(
    traced: Traced,
) -> None:
    """No RunConfig: the run's AgentsCoreSession names its conversation and its user."""
    session = AgentsCoreSession("conversation-8", user_id="u-8")
    agent = Agent(name="plain", model=ScriptedModel([{"output": [text("Hello.")]}] * 3))
    await Runner.run(agent, "Hi", session=session)
    await Runner.run(agent, "Hi again", session=session, run_config=RunConfig(group_id="other"))
    await Runner.run(
        agent, "Hi at last", session=session, run_config=RunConfig(group_id="conversation-8")
    )
    comparison, runs = await traced.check()
    assert comparison.problems == []
    first, elsewhere, grouped = (runs[seen.trace_id] for seen in traced.collector.traces)
    core = await session.core_session()
    assert core is not None
    assert first is not None
    assert grouped is not None
    assert [run.id for run in await RunsRepository().list_by_session(core.id)] == [
        first.id,
        grouped.id,
    ]
    # A group naming another conversation wins (without its user: the trace gave none).
    other = await SessionsRepository().find_by_external_id("other", namespace=NAMESPACE)
    assert other is not None
    assert elsewhere is not None
    assert (elsewhere.session_id, other.user_id) == (other.id, None)
    titles = {s.title for s in await SessionsRepository().list_active()}
    assert titles == {"Hi", "Agent workflow"}  # the other: titled by the processor, as before


@pytest.mark.usefixtures("backend")
async def test_spans_made_by_hand_prices_and_a_trace_without_a_group(traced: Traced) -> None:
    with trace("Nightly report") as made:
        with generation_span(
            model="gpt-test",
            usage={
                "input_tokens": 1000,
                "output_tokens": 200,
                "input_tokens_details": {"cached_tokens": 400},
                "output_tokens_details": {"reasoning_tokens": 50},
            },
        ):
            pass
        with response_span() as responded:
            responded.span_data.usage = {"input_tokens": 5, "output_tokens": 1}
        with function_span("lookup", input='{"q": 1}') as looked_up:
            looked_up.span_data.output = {"rows": 2}  # what a tool returned, not a string
        with function_span("fragile", input="{}") as fragile:
            fragile.set_error({"message": "Timed out", "data": {"after_s": 30}})
        with mcp_tools_span(server="files", result=["read", "write"]):
            pass
        with custom_span("note", {"when": object(), "$schema": {"a.b": [1, 2**70]}}):
            pass
    comparison, runs = await traced.check()
    assert comparison.problems == []
    run = runs[made.trace_id]
    assert run is not None
    gpt, other = run.model_calls
    price = PRICES["gpt-test"]
    assert (gpt.model, gpt.cached_input_tokens, gpt.reasoning_tokens) == ("gpt-test", 400, 50)
    assert (gpt.cost, gpt.price) == (price.cost(1000, 200, 400), price)
    assert (other.model, other.cost, other.price) == ("unknown", 0.0, None)
    assert run.cost == price.cost(1000, 200, 400)
    lookup, fragile_call = run.tool_calls
    assert lookup.output == "{'rows': 2}"
    assert (fragile_call.status, fragile_call.error) == (
        ToolCallStatus.error,
        'Timed out: {"after_s": 30}',
    )
    listed, note = run.steps
    assert (listed.kind, listed.name, listed.data["result"]) == (
        "mcp_tools",
        "list tools files",
        ["read", "write"],
    )
    assert note.data["data"]["$schema"] == {"a.b": [1, str(2**70)]}  # kept, as JSON holds it
    assert note.data["data"]["when"].startswith("<object object")
    # No group: a session of its own, named after the trace, found by the trace id.
    own = await SessionsRepository().find_by_external_id(
        made.trace_id, namespace="openai-agents-trace"
    )
    assert own is not None
    assert (own.id, own.title) == (run.session_id, "Nightly report")
    assert await AgentsRepository().find_by_name("Nightly report") is not None  # no agent span


@pytest.mark.usefixtures("backend")
async def test_a_turn_whose_retried_call_reported_usage_is_counted_once(traced: Traced) -> None:
    # A model call that failed (a response span with an error, no usage), retried in the same
    # turn: the retry's span carries the call's usage, the turn's usage is that same usage.
    # The failed call must not be given the turn's usage on top.
    with trace("Retried") as made, turn_span(1, "support") as turn:
        with response_span() as failed:
            failed.set_error({"message": "Error getting response", "data": {"status": 500}})
        with generation_span(model="gpt-test", usage={"input_tokens": 1000, "output_tokens": 200}):
            pass
        turn.span_data.usage = {
            "input_tokens": 1000,
            "output_tokens": 200,
            "cached_input_tokens": 0,
        }
    comparison, runs = await traced.check()
    assert comparison.problems == []
    run = runs[made.trace_id]
    assert run is not None
    first, retry = run.model_calls
    assert (first.status, first.input_tokens, first.output_tokens) == (ModelCallStatus.error, 0, 0)
    assert (retry.input_tokens, retry.output_tokens) == (1000, 200)
    assert run.tokens == 1200
    assert run.cost == PRICES["gpt-test"].cost(1000, 200)


@pytest.mark.usefixtures("backend")
async def test_a_response_from_a_dated_snapshot_is_priced_as_its_model(traced: Traced) -> None:
    # The Responses API answers a request for ``gpt-test`` as its snapshot
    # ``gpt-test-2025-04-14``: the call keeps that name, and is priced as ``gpt-test``.
    answered = Response(
        id="resp_1",
        created_at=0,
        model="gpt-test-2025-04-14",
        object="response",
        output=[text("Hi.")],
        parallel_tool_calls=True,
        tool_choice="auto",
        tools=[],
        usage=ResponseUsage(
            input_tokens=1000,
            input_tokens_details=InputTokensDetails(cached_tokens=400, cache_write_tokens=0),
            output_tokens=200,
            output_tokens_details=OutputTokensDetails(reasoning_tokens=0),
            total_tokens=1200,
        ),
    )
    with trace("Snapshot") as made, response_span(response=answered):
        pass
    comparison, runs = await traced.check()
    assert comparison.problems == []
    run = runs[made.trace_id]
    assert run is not None
    (call,) = run.model_calls
    price = PRICES["gpt-test"]
    assert (call.model, call.price) == ("gpt-test-2025-04-14", price)
    assert call.cost == price.cost(1000, 200, 400)


@pytest.mark.usefixtures("backend")
async def test_a_tool_that_outlives_its_trace_is_in_the_run(traced: Traced) -> None:
    # A parallel guardrail's tripwire ends the trace while a tool is still running: the SDK
    # ends the tool's span after the trace. The run waits for it.
    with trace("Tripped") as made:
        with custom_span("guardrail", {"triggered": True}):
            pass
        slow = function_span("slow", input="{}")
        slow.start()
    assert traced.processor.stats().submitted == 0  # not yet: a span is open
    slow.span_data.output = "done"
    slow.finish()
    comparison, runs = await traced.check()
    assert comparison.problems == []
    run = runs[made.trace_id]
    assert run is not None
    assert [(call.tool_name, call.output) for call in run.tool_calls] == [("slow", "done")]
    assert run.call_order == [CallKind.step, CallKind.tool]
    assert traced.processor.dropped_spans == 0


@pytest.mark.usefixtures("backend")
async def test_a_flush_records_an_ended_trace_without_its_open_spans(traced: Traced) -> None:
    with trace("Flushed") as made:
        with custom_span("before"):
            pass
        hanging = function_span("hanging", input="{}")
        hanging.start()
    runs = await traced.runs()  # flushes: the trace ended, its run is written now
    run = runs[made.trace_id]
    assert run is not None
    assert (run.tool_calls, [step.name for step in run.steps]) == ([], ["before"])
    hanging.finish()  # after its run was written: counted, never a second run
    assert traced.processor.dropped_spans == 1
    assert traced.processor.stats().submitted == 1


@pytest.mark.usefixtures("backend")
async def test_a_run_that_fails_is_recorded_failed(traced: Traced) -> None:
    failing = Agent(
        name="fragile",
        model=ScriptedModel([ModelStep.raise_error(ValueError("model down"))], emit_traces=True),
    )
    with pytest.raises(ValueError, match="model down"):
        await Runner.run(failing, "hi")
    looping = Agent(
        name="looping",
        model=ScriptedModel(
            [{"output": [call("add", '{"a": 1, "b": 1}', f"l{n}")]} for n in range(3)]
        ),
        tools=[add],
    )
    with pytest.raises(MaxTurnsExceeded):
        await Runner.run(looping, "loop", max_turns=2)
    comparison, runs = await traced.check()
    assert comparison.problems == []
    first, second = (runs[seen.trace_id] for seen in traced.collector.traces)
    assert first is not None
    assert second is not None
    assert (first.status, first.error) == (RunStatus.failed, "Error in agent run: model down")
    assert first.model_calls[0].status == ModelCallStatus.error
    assert (second.status, second.error) == (
        RunStatus.failed,
        'Max turns exceeded: {"max_turns": 2}',
    )


@pytest.mark.usefixtures("backend")
async def test_an_agent_used_as_a_tool_that_fails_fails_its_tool_call_not_the_run(
    traced: Traced,
) -> None:
    # The inner agent's model raises: its agent span has the error, its tool call (a
    # non-fatal error) tells the outer agent, which answers anyway. The run completed.
    inner = Agent(
        name="inner",
        model=ScriptedModel([ModelStep.raise_error(ValueError("inner down"))], emit_traces=True),
    )
    outer = Agent(
        name="outer",
        model=ScriptedModel(
            [
                {"output": [call("ask_inner", '{"input": "q"}', "i1")]},
                {"output": [text("Answered anyway.")]},
            ],
            emit_traces=True,
        ),
        tools=[inner.as_tool(tool_name="ask_inner", tool_description="Ask the inner agent.")],
    )
    result = await Runner.run(outer, "hi")
    assert result.final_output == "Answered anyway."
    comparison, runs = await traced.check()
    assert comparison.problems == []
    (run,) = runs.values()
    assert run is not None
    assert (run.status, run.error) == (RunStatus.completed, None)
    (asked,) = run.tool_calls
    assert (asked.tool_name, asked.status) == ("ask_inner", ToolCallStatus.error)


@pytest.mark.usefixtures("backend")
async def test_a_resumed_run_continues_its_trace_in_one_run(traced: Traced) -> None:
    @function_tool(needs_approval=True)
    def refund(amount: int) -> str:
        """Refund an amount."""
        return f"refunded {amount}"

    agent = Agent(
        name="cashier",
        model=ScriptedModel(
            [
                {"output": [call("refund", '{"amount": 5}', "r1")], "usage": usage(10, 2)},
                {"output": [text("Done.")], "usage": usage(12, 1)},
            ]
        ),
        tools=[refund],
    )
    first = await Runner.run(agent, "refund me")
    state = first.to_state()
    state.approve(first.interruptions[0])
    resumed = await Runner.run(agent, state)
    assert resumed.final_output == "Done."
    comparison, runs = await traced.check()
    assert comparison.problems == []
    assert len(traced.collector.traces) == 1  # the SDK resumes the same trace
    [run] = runs.values()
    assert run is not None
    assert [type(call).__name__ for call in run.calls()] == [
        "RunStep",  # the agent
        "ModelCall",  # the turn's usage: the model left no span (emit_traces off)
        "ToolCall",  # the refund asked for, awaiting approval
        "RunStep",  # the agent, resumed in the same trace
        "ToolCall",  # the approved refund
        "ModelCall",
    ]
    assert run.tokens == 25
    assert [call.output for call in run.tool_calls] == [None, "refunded 5"]
    assert run.steps[0].status == StepStatus.success


@pytest.mark.usefixtures("backend")
async def test_runs_from_another_thread_and_its_loop(traced: Traced) -> None:
    """The SDK calls processors from the agent's thread: here three, each with its own loop."""

    def run_in_a_thread(n: int) -> str:
        agent = Agent(name="threaded", model=ScriptedModel([{"output": [text(f"hi {n}")]}]))
        return str(asyncio.run(Runner.run(agent, f"hello {n}")).final_output)

    results = await asyncio.gather(*(asyncio.to_thread(run_in_a_thread, n) for n in range(3)))
    assert results == ["hi 0", "hi 1", "hi 2"]
    comparison, runs = await traced.check()
    assert comparison.problems == []
    assert comparison.traces == 3
    assert all(run is not None for run in runs.values())


# --- every view shows a framework run, its steps too ------------------------------------------


@pytest.mark.usefixtures("backend")
async def test_a_recorded_run_shows_in_every_view(traced: Traced) -> None:
    session = AgentsCoreSession("conversation-view")
    await Runner.run(
        support_agents(),
        "Where is my refund?",
        session=session,
        run_config=RunConfig(group_id="conversation-view"),
    )
    [run] = [run for run in (await traced.runs()).values() if run is not None]
    core = await session.core_session()
    assert core is not None
    # The waterfall and the turn: the steps in their place among the calls.
    assert [bar.kind for bar in run_timeline(run).bars] == [
        "step", "step", "model", "tool", "tool", "model", "step", "step", "model"
    ]  # fmt: skip
    assert run_timeline(run).bars[6].name == "handoff triage → billing"
    stored = await SessionsRepository().find_by_id(core.id)
    [turn] = group_turns(stored.messages, [run])
    kinds = [step.kind for step in turn_steps(turn)]
    assert kinds.count("step") == 4
    assert kinds[0] == "user"
    # The terminal tree.
    console = Console(width=200, record=True)
    console.print(render_session_tree(stored, [run]))
    tree = console.export_text()
    assert "handoff triage → billing" in tree
    assert "guardrail polite" in tree
    assert "4 step(s)" in tree
    # OpenTelemetry: a span per step, in the run's order.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    record_run(run, tracer=provider.get_tracer("test"), agent_name="triage")
    names = [span.name for span in exporter.get_finished_spans()]
    assert "handoff triage → billing" in names
    assert names.count("execute_tool add") == 1
    # The web view: the run's page and the session's.
    transport = httpx.ASGITransport(app=create_app(host="127.0.0.1", port=8000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        run_page = (await http.get(f"/runs/{run.id}")).text
        session_page = (await http.get(f"/sessions/{core.id}")).text
    assert 'data-kind="step"' in run_page
    assert 'id="steps"' in run_page
    assert "triage → billing" in run_page
    assert "step-framework" in session_page
    assert "Guardrail" in session_page


# --- the checker fails when a recording drops or alters a span --------------------------------


def altered(run: Run, **changes: Any) -> Run:
    return run.model_copy(update=changes)


@pytest.mark.usefixtures("backend")
async def test_the_checker_fails_a_recording_that_drops_or_alters_a_span(traced: Traced) -> None:
    await Runner.run(support_agents(), "Where is my refund?")
    runs = await traced.runs()
    [(trace_id, run)] = runs.items()
    assert run is not None
    traces, spans = traced.collector.traces, traced.collector.spans
    assert compare(traces, spans, runs).problems == []

    added, failed = run.tool_calls
    order = list(run.call_order)
    without_tool = [kind for n, kind in enumerate(order) if n != order.index(CallKind.tool)]
    broken = {
        "no run": None,
        "a tool call dropped": altered(run, tool_calls=[failed], call_order=without_tool),
        "a model call dropped": altered(
            run,
            model_calls=run.model_calls[1:],
            call_order=[kind for n, kind in enumerate(order) if n != order.index(CallKind.model)],
        ),
        "tokens altered": altered(
            run,
            model_calls=[
                run.model_calls[0].model_copy(update={"input_tokens": 99}),
                *run.model_calls[1:],
            ],
        ),
        "output altered": altered(
            run, tool_calls=[added.model_copy(update={"output": "4"}), failed]
        ),
        "input altered": altered(
            run, tool_calls=[added.model_copy(update={"input": "{}"}), failed]
        ),
        "name altered": altered(
            run, tool_calls=[added.model_copy(update={"tool_name": "sum"}), failed]
        ),
        "an error dropped": altered(
            run,
            tool_calls=[added, failed.model_copy(update={"status": "success", "error": None})],
        ),
        "a step dropped": altered(run, steps=run.steps[1:], call_order=order[1:]),
        "the order changed": altered(run, call_order=[*order[1:], order[0]]),
        "a failure where the spans say none": altered(
            run, status=RunStatus.failed, error="Error in agent run: nope"
        ),
    }
    for what, recording in broken.items():
        assert compare(traces, spans, {trace_id: recording}).problems, what


class DroppingProcessor(AgentsCoreTracingProcessor):
    """A broken processor: it loses every function span."""

    def on_span_end(self, span: Span[Any]) -> None:
        if span.span_data.type != "function":
            super().on_span_end(span)


async def test_the_checker_fails_a_processor_that_drops_spans(mock_db: str) -> None:
    broken = Traced(DroppingProcessor(default_connection()))
    set_trace_processors([broken.processor, broken.collector])
    try:
        await Runner.run(support_agents(), "Where is my refund?")
        comparison, _ = await broken.check()
    finally:
        set_trace_processors([])
        broken.processor.shutdown(timeout=30)
    assert comparison.problems
    assert any("tool calls recorded for 2 function spans" in p for p in comparison.problems)


# --- the database unreachable never holds the agent up ---------------------------------------


def quick_agent(name: str = "quick") -> Agent[Any]:
    return Agent(name=name, model=ScriptedModel([{"output": [text("ok")], "usage": usage(3, 1)}]))


async def test_a_server_that_never_answers_does_not_hold_the_agent_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The writer waits on a server that accepts connections and never answers: every turn
    returns all the same, its run still pending (so the agent did not wait for it); once the
    server is gone, the runs are counted as failed and logged once."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        processor = AgentsCoreTracingProcessor.from_uri(
            f"mongodb://127.0.0.1:{port}/x", settings=Settings(server_selection_timeout_ms=500)
        )
        set_trace_processors([processor])
        try:
            with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
                for n in range(3):
                    result = await Runner.run(quick_agent(), f"turn {n}")
                    assert result.final_output == "ok"
                    stats = processor.stats()
                    assert (stats.submitted, stats.written, stats.failed) == (n + 1, 0, 0)
        finally:
            set_trace_processors([])
    # The server gone: the writes fail, are counted, and the failure is logged once.
    with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
        processor.force_flush(timeout=60)
        processor.shutdown(timeout=60)
    assert processor.stats() == WriterStats(submitted=3, failed=3)
    assert len(caplog.records) == 1
    assert "not written" in caplog.records[0].getMessage()


@pytest.mark.slow
async def test_the_database_stopped_mid_run_never_breaks_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A server of our own: a turn is recorded; then it freezes (SIGSTOP) and the next turns
    return with their runs pending; then it is killed, and those runs are counted as failed,
    logged once, the agent never told."""
    server = EmbeddedServer(tmp_path / "db", shared=False)
    await asyncio.to_thread(server.start)
    processor = AgentsCoreTracingProcessor.from_uri(
        server.uri,
        database="stopped",
        settings=Settings(server_selection_timeout_ms=1000, socket_timeout_ms=1000),
    )
    set_trace_processors([processor])
    try:
        await Runner.run(quick_agent(), "before")
        processor.force_flush(timeout=30)
        assert processor.stats() == WriterStats(submitted=1, written=1)
        assert server._process is not None
        os.kill(server._process.pid, signal.SIGSTOP)
        with caplog.at_level(logging.WARNING, logger="agents_core.integrations"):
            for n in range(3):
                assert (await Runner.run(quick_agent(), f"frozen {n}")).final_output == "ok"
            pending = processor.stats()
            await asyncio.to_thread(server._process.kill)
            await asyncio.to_thread(server.stop)
            processor.force_flush(timeout=60)
    finally:
        set_trace_processors([])
        processor.shutdown(timeout=60)
        if server._process is not None and server._process.poll() is None:
            server._process.kill()
        server.stop()
    assert (pending.submitted, pending.written, pending.failed) == (4, 1, 0)
    assert processor.stats() == WriterStats(submitted=4, written=1, failed=3)
    assert len(caplog.records) == 1
