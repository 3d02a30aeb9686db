"""RunsRepository.insert_finished and find_by_external_id (framework runs), on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents_core.db import (
    CallKind,
    FinishedRun,
    FinishedToolCall,
    InvalidInputError,
    ModelCall,
    ModelCallStatus,
    Price,
    Run,
    RunsRepository,
    RunStatus,
    RunStep,
    Settings,
    StepStatus,
    ToolCallStatus,
    default_connection,
    get_database,
)
from agents_core.db.limits import MAX_MODEL_CALLS_PER_RUN
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
    [run_id] = await RunsRepository().insert_finished([run])
    stored = await RunsRepository().find_by_id(run_id)
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
    assert await RunsRepository().find_by_external_id("trace_1", source="test-framework") == stored
    assert await RunsRepository().find_by_external_id("trace_1", source="other") is None
    assert await RunsRepository().list_by_session(run.session_id) == [stored]


async def test_inserting_a_run_again_stores_it_once() -> None:
    """A retry after a network error (the first insert may have landed) is no error and no
    second run: the run's _id is derived from its source and external id."""
    first, second = await finished("trace_a"), await finished("trace_b")
    runs = RunsRepository()
    [id_a] = await runs.insert_finished([first])
    stored_a = await runs.find_by_id(id_a)
    again = await runs.insert_finished([first, second])
    assert again[0] == id_a
    assert await get_database()["runs"].count_documents({}) == 2
    assert await runs.find_by_id(id_a) == stored_a
    stored_b = await runs.find_by_external_id("trace_b", source="test-framework")
    assert stored_b is not None
    assert stored_b.id == again[1]


async def test_a_failed_run_keeps_its_error() -> None:
    run = (await finished()).model_copy(update={"status": RunStatus.failed, "error": "Max turns"})
    [run_id] = await RunsRepository().insert_finished([run])
    stored = await RunsRepository().find_by_id(run_id)
    assert (stored.status, stored.error) == (RunStatus.failed, "Max turns")
    errored = ModelCall(
        model="m", started_at=at(1), duration_ms=1, status=ModelCallStatus.error, error="boom"
    )
    [other] = await RunsRepository().insert_finished([await finished("t2", [errored])])
    assert (await RunsRepository().find_by_id(other)).model_calls[0].error == "boom"


async def test_large_tool_text_is_spilled_and_read_back() -> None:
    big = "x" * (Settings().payload_inline_max_bytes + 1)
    call = FinishedToolCall(tool_name="dump", input="{}", output=big, started_at=at(1))
    runs, run = RunsRepository(), await finished("big", [call])
    [run_id] = await runs.insert_finished([run])
    raw = await get_database()["runs"].find_one({"_id": run_id})
    assert raw is not None
    assert raw["tool_calls"][0]["output"] == ""
    assert raw["tool_calls"][0]["output_payload"]["size"] == len(big)
    read = await runs.find_by_external_id("big", source="test-framework")
    assert read is not None
    assert read.tool_calls[0].output == big
    # Again (a retry): the chunks are not duplicated.
    await runs.insert_finished([run])
    chunks = await get_database()["payload_chunks"].count_documents({"run_id": run_id})
    assert chunks == 1


async def test_the_inline_budget_spills_text_beyond_it() -> None:
    settings = default_connection().settings
    size = settings.payload_inline_max_bytes
    count = settings.run_inline_budget_bytes // size + 2
    calls: list[ModelCall | FinishedToolCall | RunStep] = [
        FinishedToolCall(tool_name="t", input="y" * size, started_at=at(n)) for n in range(count)
    ]
    [run_id] = await RunsRepository().insert_finished([await finished("budget", calls)])
    raw = await get_database()["runs"].find_one({"_id": run_id})
    assert raw is not None
    stored = Run.model_validate(raw)
    spilled = [call for call in stored.tool_calls if call.input_payload is not None]
    assert len(spilled) == 2
    assert [call.input for call in stored.tool_calls if call.input_payload is None] == [
        "y" * size
    ] * (count - 2)


async def test_an_empty_batch_sends_nothing() -> None:
    assert await RunsRepository().insert_finished([]) == []


async def test_a_run_in_parts_is_one_run_its_parts_appended_in_order() -> None:
    """An SDK run resumed after an interruption continues its trace: its part is appended."""
    first = (await finished("resumed")).model_copy(update={"part": "span_1"})
    later_calls: list[ModelCall | FinishedToolCall | RunStep] = [
        FinishedToolCall(tool_name="approve", input="{}", output="ok", started_at=at(200)),
        ModelCall(model="gpt-x", started_at=at(210), duration_ms=1, input_tokens=5),
    ]
    second = first.model_copy(
        update={
            "part": "span_9",
            "calls": later_calls,
            "status": RunStatus.failed,
            "error": "Max turns",
            "completed_at": at(300),
        }
    )
    runs = RunsRepository()
    [run_id] = await runs.insert_finished([first])
    assert await runs.insert_finished([second, first, second]) == [run_id] * 3  # retries
    stored = await runs.find_by_id(run_id)
    kinds = ["RunStep", "ModelCall", "ToolCall", "ToolCall", "RunStep", "ModelCall"]
    assert [type(call).__name__ for call in stored.calls()] == [*kinds, "ToolCall", "ModelCall"]
    assert stored.tokens == 127 + 5
    assert (stored.status, stored.error, stored.completed_at) == (
        RunStatus.failed,
        "Max turns",
        at(300).replace(microsecond=at(300).microsecond // 1000 * 1000),
    )
    assert stored.started_at == (await finished("x")).started_at.replace(microsecond=123000)
    assert len({call.id for call in stored.tool_calls}) == 3
    assert await get_database()["runs"].count_documents({}) == 1


async def test_both_parts_in_one_batch() -> None:
    first = (await finished("batch")).model_copy(update={"part": "a"})
    second = first.model_copy(update={"part": "b", "calls": first.calls[:2]})
    runs = RunsRepository()
    await runs.insert_finished([first, second])
    stored = await runs.find_by_external_id("batch", source="test-framework")
    assert stored is not None
    assert len(stored.calls()) == len(first.calls) + 2


async def test_a_part_beyond_the_budget_is_spilled_and_beyond_a_cap_refused() -> None:
    settings = default_connection().settings
    size = settings.payload_inline_max_bytes
    fill: list[ModelCall | FinishedToolCall | RunStep] = [
        FinishedToolCall(tool_name="t", input="y" * size, started_at=at(n))
        for n in range(settings.run_inline_budget_bytes // size)
    ]
    first = (await finished("full", fill)).model_copy(update={"part": "a"})
    more = first.model_copy(update={"part": "b", "calls": fill[:1]})
    runs = RunsRepository()
    await runs.insert_finished([first])
    await runs.insert_finished([more])
    stored = await runs.find_by_external_id("full", source="test-framework")
    assert stored is not None
    assert len(stored.tool_calls) == len(fill) + 1
    assert stored.tool_calls[-1].input == "y" * size  # read back from payload_chunks
    raw = await get_database()["runs"].find_one({"_id": stored.id})
    assert raw is not None
    assert raw["tool_calls"][-1]["input_payload"] is not None
    call = ModelCall(model="m", started_at=T0, duration_ms=1)
    full = first.model_copy(update={"part": "c", "calls": [call] * MAX_MODEL_CALLS_PER_RUN})
    await runs.insert_finished([full])  # the cap reached
    with pytest.raises(InvalidInputError) as info:
        await runs.insert_finished([first.model_copy(update={"part": "d", "calls": [call]})])
    assert info.value.field == "calls"
    after = await runs.find_by_external_id("full", source="test-framework")
    assert after is not None
    assert len(after.model_calls) == MAX_MODEL_CALLS_PER_RUN
