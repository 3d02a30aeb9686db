"""The trace view across sessions: /overview, /runs and a run beside its replay, on both
backends (the browser checks the same pages in tests_browser/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import ObjectId

from agents_core.db import (
    FinishedRun,
    FinishedToolCall,
    ModelCall,
    RunsRepository,
    SessionsRepository,
    ToolCallStatus,
)
from agents_core.runner import AgentRunner, ModelResponse, ScriptedModel, ToolRegistry
from agents_core.trace.web import create_app
from tests.helpers import make_agent, make_session
from tests.recorded import SCRIPT
from tests.test_web import elements, esc

pytestmark = pytest.mark.usefixtures("backend")

DAY = date(2026, 11, 20)
T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
RANGE = "since=2026-11-20&until=2026-11-22"


@pytest.fixture
async def client(backend: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(host="127.0.0.1", port=8000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        yield http


def run_of(
    n: int,
    *,
    agent: Any,
    session: Any,
    day: int,
    model: str,
    tokens: int,
    cost: float,
    took_ms: float,
    failed: bool = False,
) -> FinishedRun:
    start = T0 + timedelta(days=day, minutes=n)
    return FinishedRun(
        source="dash",
        external_id=f"run-{n}",
        session_id=session.id,
        agent_id=agent.id,
        status="failed" if failed else "completed",
        error="tool broke" if failed else None,
        started_at=start,
        completed_at=start + timedelta(milliseconds=took_ms),
        calls=[
            ModelCall(
                model=model,
                started_at=start,
                duration_ms=took_ms / 2,
                input_tokens=tokens - 10,
                output_tokens=10,
                cost=cost,
            ),
            FinishedToolCall(
                tool_name="lookup",
                input="{}",
                output="x",
                started_at=start,
                duration_ms=took_ms / 4,
                status=ToolCallStatus.error if failed else ToolCallStatus.success,
            ),
        ],
    )


async def seed() -> dict[str, Any]:
    """Nine framework runs over three days, two agents (one with a hostile name), three models
    (one hostile), one user's session among two."""
    alpha, hostile = await make_agent("alpha"), await make_agent(f"agent {SCRIPT}")
    mine = await make_session("mine", user_id="u-1")
    other = await make_session("other", user_id="u-2")
    runs = [
        run_of(
            0, agent=alpha, session=mine, day=0, model="gpt-a", tokens=100, cost=0.1, took_ms=500
        ),
        run_of(
            1, agent=alpha, session=mine, day=0, model="gpt-b", tokens=300, cost=0.9, took_ms=100
        ),
        run_of(
            2,
            agent=hostile,
            session=other,
            day=0,
            model=SCRIPT,
            tokens=50,
            cost=0.05,
            took_ms=900,
            failed=True,
        ),
        run_of(
            3, agent=alpha, session=other, day=1, model="gpt-a", tokens=200, cost=0.2, took_ms=50
        ),
        run_of(
            4, agent=hostile, session=mine, day=1, model="gpt-b", tokens=700, cost=2.0, took_ms=300
        ),
        run_of(
            5, agent=alpha, session=mine, day=2, model="gpt-a", tokens=120, cost=0.12, took_ms=2000
        ),
        run_of(
            6,
            agent=alpha,
            session=other,
            day=2,
            model="gpt-a",
            tokens=80,
            cost=0.08,
            took_ms=10,
            failed=True,
        ),
        run_of(
            7, agent=hostile, session=mine, day=2, model="gpt-b", tokens=900, cost=3.0, took_ms=700
        ),
        run_of(8, agent=alpha, session=mine, day=2, model="gpt-b", tokens=60, cost=0.4, took_ms=40),
    ]
    ids = await RunsRepository().insert_finished(runs)
    return {"alpha": alpha, "hostile": hostile, "runs": runs, "ids": ids, "mine": mine}


async def test_the_overview_draws_what_its_api_says(client: httpx.AsyncClient) -> None:
    seeded = await seed()
    api = (await client.get(f"/api/overview?{RANGE}")).json()
    runs: list[FinishedRun] = seeded["runs"]
    assert api["total"]["runs"] == 9
    assert api["total"]["failed"] == 2
    costs = [call.cost for run in runs for call in run.calls if isinstance(call, ModelCall)]
    assert api["total"]["cost"] == pytest.approx(sum(costs))
    assert [d["runs"] for d in api["days"]] == [3, 2, 4]
    assert [m["label"] for m in api["models"]] == ["gpt-b", "gpt-a", SCRIPT]  # by cost
    page = await client.get(f"/overview?{RANGE}")
    assert page.status_code == 200
    body = page.text
    assert SCRIPT not in body  # a hostile model or agent name is text
    assert esc(SCRIPT) in body
    # Every bar carries the figure it draws, equal to the API's.
    cost_bars = [
        e for e in elements(body, "rect") if e.get("data-label", "").startswith("2026-11-")
    ]
    per_day = {d["day"]: d for d in api["days"]}
    drawn: dict[str, list[float]] = {}
    for bar in cost_bars:
        drawn.setdefault(bar["data-label"], []).append(float(bar["data-value"]))
    for day, values in drawn.items():
        # cost, runs, tokens, error rate: the four day charts, in that order
        expected = per_day[day]
        assert values == pytest.approx(
            [expected["cost"], expected["runs"], expected["tokens"], expected["error_rate"] * 100]
        )
    model_rows = elements(body, "rect", data_kind="p95")
    assert {row["data-label"] for row in model_rows} >= {"gpt-a", "gpt-b", "lookup"}


async def test_overview_parameters_are_checked(client: httpx.AsyncClient) -> None:
    for query in (
        "days=0",
        "days=400",
        "since=2026-13-01",
        "since=20261101",
        "until=2026-11-31",
        "since=2026-11-05&until=2026-11-01",
        "since=2020-01-01&until=2026-01-01",
    ):
        answer = await client.get(f"/api/overview?{query}")
        assert answer.status_code == 400, query
        assert (await client.get(f"/overview?{query}")).status_code == 400
    assert (await client.get("/overview")).status_code == 200  # the last 14 days, empty
    assert (await client.get("/overview?days=7")).status_code == 200


async def test_runs_across_sessions_filtered_sorted_and_paged(client: httpx.AsyncClient) -> None:
    seeded = await seed()
    ids = [str(i) for i in seeded["ids"]]

    async def listed(query: str) -> list[str]:
        answer = await client.get(f"/api/runs?{query}")
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()["runs"]]

    assert await listed(RANGE) == ids[::-1]  # newest first
    # Without a range: read in widening windows of time on SecantusDB, one read on MongoDB.
    assert await listed("") == ids[::-1]
    assert await listed("limit=3") == ids[:-4:-1]
    assert await listed(f"{RANGE}&agent={seeded['alpha'].id}") == [
        ids[i] for i in (8, 6, 5, 3, 1, 0)
    ]
    assert await listed(f"{RANGE}&model=gpt-b") == [ids[i] for i in (8, 7, 4, 1)]
    assert await listed(f"{RANGE}&status=failed") == [ids[6], ids[2]]
    assert await listed("since=2026-11-21&until=2026-11-21") == [ids[4], ids[3]]
    assert await listed(f"{RANGE}&user=u-1") == [ids[i] for i in (8, 7, 5, 4, 1, 0)]
    assert await listed(f"{RANGE}&sort=cost") == [ids[i] for i in (7, 4, 1, 8, 3, 5, 0, 6, 2)]
    assert await listed(f"{RANGE}&sort=tokens") == [ids[i] for i in (7, 4, 1, 3, 5, 0, 6, 8, 2)]
    assert await listed(f"{RANGE}&sort=duration") == [ids[i] for i in (5, 2, 7, 0, 4, 1, 3, 8, 6)]
    for sort in ("newest", "cost"):
        seen: list[str] = []
        cursor = None
        while True:
            query = f"{RANGE}&sort={sort}&limit=2" + (f"&before={cursor}" if cursor else "")
            answer = (await client.get(f"/api/runs?{query}")).json()
            seen += [row["id"] for row in answer["runs"]]
            cursor = answer["next"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(ids)
        assert len(seen) == len(set(seen))
    page = await client.get(f"/runs?{RANGE}&limit=4")
    assert page.status_code == 200
    assert len(elements(page.text, "tr", **{"class": "run-row"})) == 4
    assert SCRIPT not in page.text
    (following,) = elements(page.text, "a", id="next")
    assert "agent" not in following["href"]  # only what was given is carried on
    assert (await client.get(following["href"])).status_code == 200


@pytest.mark.parametrize(
    "query",
    [
        "sort=cheapest",
        "status=done",
        "agent=not-an-id",
        "since=2026-02-30",
        "before=garbage",
        "sort=cost&before=@99999999",
        "sort=cost&before=12_ab",
        "limit=0",
        "model=" + "m" * 600,
    ],
)
async def test_run_listing_parameters_are_checked(client: httpx.AsyncClient, query: str) -> None:
    assert (await client.get(f"/api/runs?{query}")).status_code == 400
    assert (await client.get(f"/runs?{query}")).status_code == 400


async def test_a_run_beside_its_replay(client: httpx.AsyncClient) -> None:
    agent = await make_agent("replayed", tools=["add"])
    session = await make_session()
    await SessionsRepository().set_active_agent(session.id, agent.id)
    tools = ToolRegistry({"add": lambda a, b: a + b})
    original = await AgentRunner(
        ScriptedModel([ModelResponse(text="The answer is 5, said plainly.")]), tools
    ).run(session.id, "add 2 and 3")
    replay = await AgentRunner(ScriptedModel([]), tools).replay(
        original.id,
        model=ScriptedModel([ModelResponse(text="The answer is 6, said <b>boldly</b>.")]),
    )
    run_page = await client.get(f"/runs/{replay.id}")
    (link,) = elements(run_page.text, "a", id="compare")
    assert link["href"] == f"/runs/{original.id}/compare/{replay.id}"
    page = await client.get(link["href"])
    assert page.status_code == 200
    body = page.text
    left, right = (
        elements(body, "svg", id="timeline-left"),
        elements(body, "svg", id="timeline-right"),
    )
    assert left[0]["data-total-ms"] == right[0]["data-total-ms"]  # one axis
    assert "<del>5,</del>" in body
    assert "<ins>6,</ins>" in body
    assert esc("<b>boldly</b>.") in body
    assert "<b>boldly" not in body
    deltas = {row["data-name"] for row in elements(body, "tr", **{"class": "delta delta-same"})}
    assert "Model calls" in deltas
    listing = await client.get("/runs")
    assert f"/runs/{original.id}/compare/{replay.id}" in listing.text
    missing = await client.get(f"/runs/{original.id}/compare/{ObjectId()}")
    assert missing.status_code == 404


async def test_runs_of_one_millisecond_page_without_loss_or_repeat(
    client: httpx.AsyncClient,
) -> None:
    agent, session = await make_agent("burst"), await make_session()
    start = T0 + timedelta(days=40)
    burst = [
        FinishedRun(
            source="burst",
            external_id=f"b{n}",
            session_id=session.id,
            agent_id=agent.id,
            started_at=start if n < 7 else start - timedelta(milliseconds=n),
            completed_at=start + timedelta(seconds=1),
        )
        for n in range(10)
    ]
    ids = {str(i) for i in await RunsRepository().insert_finished(burst)}
    seen: list[str] = []
    cursor = None
    for _ in range(20):
        query = "limit=2" + (f"&before={cursor}" if cursor else "")
        answer = (await client.get(f"/api/runs?{query}")).json()
        seen += [row["id"] for row in answer["runs"]]
        cursor = answer["next"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 10
    assert set(seen) == ids


async def test_runs_filtered_by_their_scores(client: httpx.AsyncClient) -> None:
    seeded = await seed()
    ids = seeded["ids"]
    runs = RunsRepository()
    await runs.add_score(ids[0], "helpful", 0.9, by="reviewer")
    await runs.add_score(ids[1], "helpful", 0.2)
    await runs.add_score(ids[1], "verdict", "pass")
    await runs.add_score(ids[2], "verdict", f"fail {SCRIPT}")

    async def listed(score: str) -> list[str]:
        answer = await client.get("/api/runs", params={"score": score, "since": "2026-11-20"})
        assert answer.status_code == 200, answer.text
        return [row["id"] for row in answer.json()["runs"]]

    first, second, third = (str(i) for i in ids[:3])
    assert await listed("helpful") == [second, first]
    assert await listed("helpful>=0.5") == [first]
    assert await listed("helpful < 0.5") == [second]
    assert await listed("helpful=0.2") == [second]
    assert await listed("verdict:pass") == [second]
    assert await listed(f"verdict:fail {SCRIPT}") == [third]
    assert await listed("nothing") == []
    for bad in ("helpful>=x", "helpful>=nan", ">=1", "a" * 300, "helpful>=1e400"):
        answer = await client.get("/api/runs", params={"score": bad})
        assert answer.status_code == 400, bad
    page = await client.get("/runs", params={"score": "verdict"})
    assert page.status_code == 200
    assert esc(f"verdict: fail {SCRIPT}") in page.text
    assert SCRIPT not in page.text
    shown = (await client.get("/api/runs", params={"score": "verdict:pass"})).json()["runs"][0]
    assert shown["scores"] == [
        {"name": "helpful", "shown": "0.2"},
        {"name": "verdict", "shown": "pass"},
    ]
