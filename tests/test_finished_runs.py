"""RunsRepository.insert_finished and find_by_external_id (framework runs), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents_core.db import (
    CallKind,
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    ModelCallStatus,
    Price,
    RunsRepository,
    RunStatus,
    RunStep,
    Settings,
    StepStatus,
    ToolCallStatus,
    default_connection,
    get_database,
)
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")

T0 = datetime(2026, 11, 30, 9, 0, 0, 123456, tzinfo=UTC)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


async def finished(
    external_id: str = "trace_1", calls: list[ModelCall | FinishedToolCall | RunStep] | None = None
) -> FinishedRun:
    session, agent = await make_session(), await make_agent(f"agent-{external_id}")
    return FinishedRun(
        source="test-framework",
        external_id=external_id,
        session_id=session.id,
        agent_id=agent.id,
        started_at=at(0),
        completed_at=at(90),
        calls=calls if calls is not None else sample_calls(),
    )


def sample_calls() -> list[ModelCall | FinishedToolCall | RunStep]:
    price = Price(input_per_million=1.0, output_per_million=2.0)
    return [
        RunStep(kind="agent", name="triage", started_at=at(0), data={"tools": ["lookup"]}),
        ModelCall(
            model="gpt-x",
            started_at=at(1),
            duration_ms=10.5,
            input_tokens=100,
            output_tokens=20,
            cached_input_tokens=40,
            reasoning_tokens=5,
            cost=price.cost(100, 20, 40),
            price=price,
        ),
        FinishedToolCall(
            tool_name="lookup",
            input='{"order": 42}',
            output="shipped",
            started_at=at(12),
            duration_ms=3.0,
        ),
        FinishedToolCall(
            tool_name="refund",
            input="{}",
            output="An error occurred while running the tool.",
            status=ToolCallStatus.error,
            error="Error running tool (non-fatal): boom",
            started_at=at(12),
            duration_ms=1.0,
        ),
        RunStep(
            kind="handoff",
            name="triage → billing",
            started_at=at(20),
            duration_ms=0.0,
            data={"from_agent": "triage", "to_agent": "billing", "$schema": {"a.b": 1}},
        ),
        ModelCall(model="gpt-x", started_at=at(21), duration_ms=5.0, input_tokens=7),
    ]


async def test_a_finished_run_is_one_document_with_its_calls_in_order() -> None:
    run = await finished()
    [stored] = await RunsRepository().insert_finished([run])
    assert stored.status == RunStatus.completed
    assert (stored.source, stored.external_id) == ("test-framework", "trace_1")
    assert stored.call_order == [
        CallKind.step,
        CallKind.model,
        CallKind.tool,
        CallKind.tool,
        CallKind.step,
        CallKind.model,
    ]
    assert [type(call).__name__ for call in stored.calls()] == [
        "RunStep",
        "ModelCall",
        "ToolCall",
        "ToolCall",
        "RunStep",
        "ModelCall",
    ]
    assert stored.tokens == 127
    assert stored.cost == pytest.approx(
        Price(input_per_million=1, output_per_million=2).cost(100, 20, 40)
    )
    lookup, refund = stored.tool_calls
    assert (lookup.status, lookup.output, lookup.error) == (ToolCallStatus.success, "shipped", None)
    assert (refund.status, refund.error) == (
        ToolCallStatus.error,
        "Error running tool (non-fatal): boom",
    )
    assert lookup.completed_at == lookup.started_at + timedelta(milliseconds=3)
    assert lookup.id.startswith(f"{stored.id}-")
    handoff = stored.steps[1]
    assert handoff.data == {"from_agent": "triage", "to_agent": "billing", "$schema": {"a.b": 1}}
    assert handoff.status == StepStatus.success
    # Times are kept to the millisecond, as BSON stores them.
    assert stored.started_at == datetime(2026, 11, 30, 9, 0, 0, 123000, tzinfo=UTC)
    read = await RunsRepository().find_by_id(stored.id)
    assert read == stored
    assert await RunsRepository().find_by_external_id("trace_1", source="test-framework") == stored
    assert await RunsRepository().find_by_external_id("trace_1", source="other") is None
    assert await RunsRepository().list_by_session(run.session_id) == [stored]


async def test_inserting_a_run_again_stores_it_once() -> None:
    """A retry after a network error (the first insert may have landed) is no error and no
    second run: the run's _id is derived from its source and external id."""
    first, second = await finished("trace_a"), await finished("trace_b")
    runs = RunsRepository()
    [stored_a] = await runs.insert_finished([first])
    again = await runs.insert_finished([first, second])
    assert [run.id for run in again] == [stored_a.id, again[1].id]
    assert await get_database()["runs"].count_documents({}) == 2
    assert await runs.find_by_external_id("trace_b", source="test-framework") == again[1]


async def test_a_failed_run_keeps_its_error() -> None:
    run = (await finished()).model_copy(update={"status": RunStatus.failed, "error": "Max turns"})
    [stored] = await RunsRepository().insert_finished([run])
    assert (stored.status, stored.error) == (RunStatus.failed, "Max turns")
    errored = ModelCall(
        model="m", started_at=at(1), duration_ms=1, status=ModelCallStatus.error, error="boom"
    )
    [other] = await RunsRepository().insert_finished([await finished("t2", [errored])])
    assert other.model_calls[0].error == "boom"


async def test_large_tool_text_is_spilled_and_read_back() -> None:
    big = "x" * (Settings().payload_inline_max_bytes + 1)
    call = FinishedToolCall(tool_name="dump", input="{}", output=big, started_at=at(1))
    runs, run = RunsRepository(), await finished("big", [call])
    [stored] = await runs.insert_finished([run])
    assert stored.tool_calls[0].output == ""
    assert stored.tool_calls[0].output_payload is not None
    read = await runs.find_by_external_id("big", source="test-framework")
    assert read is not None
    assert read.tool_calls[0].output == big
    # Again (a retry): the chunks are not duplicated.
    await runs.insert_finished([run])
    chunks = await get_database()["payload_chunks"].count_documents({"run_id": stored.id})
    assert chunks == 1


async def test_the_inline_budget_spills_text_beyond_it() -> None:
    settings = default_connection().settings
    size = settings.payload_inline_max_bytes
    count = settings.run_inline_budget_bytes // size + 2
    calls: list[ModelCall | FinishedToolCall | RunStep] = [
        FinishedToolCall(tool_name="t", input="y" * size, started_at=at(n)) for n in range(count)
    ]
    [stored] = await RunsRepository().insert_finished([await finished("budget", calls)])
    spilled = [call for call in stored.tool_calls if call.input_payload is not None]
    assert len(spilled) == 2
    assert [call.input for call in stored.tool_calls if call.input_payload is None] == [
        "y" * size
    ] * (count - 2)


async def test_an_empty_batch_sends_nothing() -> None:
    assert await RunsRepository().insert_finished([]) == []
