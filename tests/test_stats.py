"""StatsRepository: per-day totals kept as runs finish (run_days), on both backends."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest

from agents_core.db import (
    FinishedRun,
    FinishedToolCall,
    InvalidInputError,
    InvalidStateError,
    ModelCall,
    ModelCallStatus,
    NewToolCall,
    RunsRepository,
    StatsRepository,
    ToolCallResult,
    ToolCallsRepository,
    ToolCallStatus,
    get_database,
)
from agents_core.db.documents import bucket_bounds, bucket_of, utcnow
from agents_core.db.repositories.stats import percentile
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")

DAY = date(2026, 11, 30)
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def at(ms: float, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, milliseconds=ms)


def framework_run(
    external_id: str,
    *,
    agent_id: object,
    session_id: object,
    day: int = 0,
    took_ms: float = 1_000,
    failed: bool = False,
    part: str | None = None,
) -> FinishedRun:
    return FinishedRun(
        source="stats-test",
        external_id=external_id,
        session_id=session_id,
        agent_id=agent_id,
        status="failed" if failed else "completed",
        error="boom" if failed else None,
        started_at=at(0, day),
        completed_at=at(took_ms, day),
        part=part,
        calls=[
            ModelCall(
                model="gpt-a",
                started_at=at(1, day),
                duration_ms=400,
                input_tokens=100,
                output_tokens=20,
                cost=0.5,
            ),
            FinishedToolCall(
                tool_name="lookup",
                input="{}",
                output="ok",
                started_at=at(500, day),
                duration_ms=40,
                status=ToolCallStatus.error if failed else ToolCallStatus.success,
            ),
        ],
    )


async def test_a_runners_run_counts_on_its_day_once() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("stat-runner")
    run = await runs.start(session, agent)
    call = ModelCall(
        model="gpt-b", started_at=utcnow(), duration_ms=250, input_tokens=7, output_tokens=3
    )
    (tool,) = await runs.record_model_call(run.id, call, tool_calls=[NewToolCall("t", "{}")])
    await ToolCallsRepository().complete_many([ToolCallResult(tool.id, "out", "success", 12.0)])
    failing = call.model_copy(update={"status": ModelCallStatus.error, "error": "x"})
    done = await runs.complete(run.id, "completed", model_call=failing)
    today = done.started_at.date()
    overview = await stats.overview(today, today)
    assert (overview.total.runs, overview.total.failed, overview.total.tokens) == (1, 0, 20)
    (model,) = overview.models
    assert (model.label, model.count, model.failed, model.tokens) == ("gpt-b", 2, 1, 20)
    (used,) = overview.tools
    assert (used.label, used.count, used.failed) == ("t", 1, 0)
    (by_agent,) = overview.agents
    assert (by_agent.key, by_agent.label, by_agent.count) == (str(agent.id), "stat-runner", 1)
    # Usage added after the end counts once more; a second end is refused and adds nothing.
    await runs.update_usage(run.id, 5, 0.25)
    with pytest.raises(InvalidStateError):
        await runs.complete(run.id, "failed")
    again = await stats.overview(today, today)
    assert (again.total.runs, again.total.tokens, again.total.cost) == (1, 25, 0.25)
    assert again.days[-1].runs == 1


async def test_failed_and_abandoned_runs_and_the_error_rate() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("flaky")
    for status in ("completed", "failed", "completed"):
        await runs.complete((await runs.start(session, agent)).id, status)
    abandoned = await runs.mark_abandoned((await runs.start(session, agent)).id)
    today = abandoned.started_at.date()
    overview = await stats.overview(today, today)
    assert (overview.total.runs, overview.total.failed) == (4, 2)
    assert overview.total.error_rate == 0.5
    assert overview.agents[0].error_rate == 0.5


async def test_framework_runs_count_once_and_parts_add_their_calls() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("framework")
    given = [
        framework_run("a", agent_id=agent.id, session_id=session.id),
        framework_run("b", agent_id=agent.id, session_id=session.id, failed=True),
        framework_run("c", agent_id=agent.id, session_id=session.id, day=1, part="p1"),
    ]
    await runs.insert_finished(given)
    await runs.insert_finished(given)  # a retry of a batch that landed adds nothing
    later = framework_run("c", agent_id=agent.id, session_id=session.id, day=1, part="p2")
    await runs.insert_finished([later, later])  # a second part, given twice
    overview = await stats.overview(DAY, DAY + timedelta(days=1))
    first, second = overview.days
    assert (first.day, first.runs, first.failed, first.tokens, first.cost) == (
        "2026-11-30",
        2,
        1,
        240,
        1.0,
    )
    assert (second.runs, second.tokens, second.cost) == (1, 240, 1.0)  # one run, two parts
    (model,) = overview.models
    assert (model.count, model.tokens, model.cost) == (4, 480, 2.0)
    (tool,) = overview.tools
    assert (tool.count, tool.failed) == (4, 1)
    assert (overview.total.runs, overview.total.failed) == (3, 1)


async def test_percentiles_come_from_the_histogram_within_a_bucket() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("timed")
    durations = [100.0] * 50 + [1_000.0] * 45 + [10_000.0] * 5
    await runs.insert_finished(
        [
            framework_run(f"t{i}", agent_id=agent.id, session_id=session.id, took_ms=ms)
            for i, ms in enumerate(durations)
        ]
    )
    day = (await stats.overview(DAY, DAY)).days[0]
    assert day.p50_ms is not None
    assert day.p95_ms is not None
    low, high = bucket_bounds(bucket_of(100.0))
    assert low <= day.p50_ms < high
    low, high = bucket_bounds(bucket_of(1_000.0))
    assert low <= day.p95_ms < high
    assert abs(day.p95_ms - 1_000.0) / 1_000.0 < 0.1


def test_buckets_cover_every_duration() -> None:
    assert bucket_of(0) == bucket_of(-5) == bucket_of(float("nan")) == 0
    for ms in (1.5, 7.0, 100.0, 12_345.6, 3.6e6):
        low, high = bucket_bounds(bucket_of(ms))
        assert low <= ms < high
        assert high / low < 1.2
    assert bucket_of(float("inf")) == bucket_of(1e30)
    assert percentile({}, 0.5) is None


async def test_rebuild_recounts_what_the_writes_counted() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("rebuilt")
    await runs.insert_finished(
        [
            framework_run(f"r{i}", agent_id=agent.id, session_id=session.id, failed=i % 3 == 0)
            for i in range(7)
        ]
    )
    live = await stats.overview(DAY, DAY)
    await get_database()["run_days"].delete_many({})
    assert (await stats.overview(DAY, DAY)).total.runs == 0
    assert await stats.rebuild(DAY, DAY) == 7
    assert await stats.overview(DAY, DAY) == live


async def test_runs_finishing_at_once_are_all_counted() -> None:
    runs, stats = RunsRepository(), StatsRepository()
    session, agent = await make_session(), await make_agent("racer")
    started = [await runs.start(session, agent) for _ in range(20)]
    await asyncio.gather(*(runs.complete(run.id, "completed") for run in started))
    today = started[0].started_at.date()
    assert (await stats.overview(today, today)).total.runs == 20


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (DAY, DAY - timedelta(days=1)),
        (DAY - timedelta(days=400), DAY),
        ("2026-11-30", DAY),
        (DAY, None),
    ],
)
async def test_garbage_ranges_are_refused(since: object, until: object) -> None:
    with pytest.raises(InvalidInputError):
        await StatsRepository().overview(since, until)  # type: ignore[arg-type]
