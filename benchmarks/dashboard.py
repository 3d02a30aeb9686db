"""The trace view's pages across sessions as the database grows: the overview and the run list.

``python -m benchmarks --only dashboard`` (``--quick``: 2,000 runs; else 100,000). Runs are
stored the way a framework's are (``RunsRepository.insert_finished``, 1,000 a batch: what the
OpenAI Agents SDK's processor writes), spread evenly over the last 30 days, 8 agents, 4 models
and 6 tools, each with 2 model calls and 3 tool calls; their day totals are kept by those
writes as they would be in production. Then, through the ASGI app (what ``agents-core serve``
runs, no network), wall time per request: ``/overview`` (14 and 30 days), ``/api/overview``,
``/runs`` (newest first, and one agent's) and ``/runs?sort=cost`` (ranked among the newest
2,000); ``StatsRepository.overview`` alone too. Then as many messages (one in 100 mentions a refund,
one in 10,000 order 4242) and ``MessagesRepository.search`` for each and for a phrase found
nowhere, and ``/search``. Medians of ``SAMPLES`` requests after one
warm-up. The server is the embedded SecantusDB (in memory) unless ``MONGODB_URI`` is set.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from agents_core.db import (
    AgentsRepository,
    CreateAgentDTO,
    FinishedRun,
    FinishedToolCall,
    MessagesRepository,
    ModelCall,
    RunsRepository,
    SessionsRepository,
    StatsRepository,
    close_db,
    init_db,
)
from agents_core.trace.web import create_app

__all__ = ["FULL_RUNS", "QUICK_RUNS", "DashboardRecord", "measure_dashboard", "print_dashboard"]

FULL_RUNS = 100_000
QUICK_RUNS = 2_000
SAMPLES = 15
DAYS = 30
_BATCH = 1_000
_MODELS = ("gpt-4.1", "gpt-4.1-mini", "o4-mini", "claude-sonnet")
_TOOLS = ("search", "lookup_order", "refund", "weather", "calculator", "send_email")


@dataclass(frozen=True, slots=True)
class DashboardRecord:
    op: str
    runs: int
    median_ms: float
    p95_ms: float


async def measure_dashboard(
    client: AsyncMongoClient[Any], runs: int, progress: Callable[[str], None]
) -> list[DashboardRecord]:
    name = f"bench_dashboard_{uuid.uuid4().hex[:8]}"
    connection = await init_db(client=client, database=name, replace=True)
    try:
        agents = [
            await AgentsRepository().create(CreateAgentDTO(name=f"agent-{n}")) for n in range(8)
        ]
        sessions = [
            await SessionsRepository().create(f"session {n}", user_id=f"user-{n % 50}")
            for n in range(500)
        ]
        now = datetime.now(UTC)
        rng = random.Random(7)
        repository = RunsRepository()
        started = time.perf_counter()
        for first in range(0, runs, _BATCH):
            batch = [
                _run(n, rng, now, agents, sessions) for n in range(first, min(first + _BATCH, runs))
            ]
            await repository.insert_finished(batch)
            if (first // _BATCH) % 10 == 9:
                progress(f"dashboard: {first + _BATCH:,} of {runs:,} runs stored")
        progress(f"dashboard: {runs:,} runs stored in {time.perf_counter() - started:.0f} s")
        stats = StatsRepository()
        records: list[DashboardRecord] = []
        since = (now - timedelta(days=DAYS - 1)).date()

        async def timed(op: str, call: Callable[[], Awaitable[Any]]) -> None:
            await call()  # warm-up
            times = []
            for _ in range(SAMPLES):
                began = time.perf_counter()
                await call()
                times.append((time.perf_counter() - began) * 1000)
            times.sort()
            records.append(
                DashboardRecord(
                    op, runs, statistics.median(times), times[int(0.95 * (len(times) - 1))]
                )
            )

        await timed("StatsRepository.overview (30 days)", lambda: stats.overview(since, now.date()))
        transport = httpx.ASGITransport(app=create_app(connection, host="127.0.0.1", port=8000))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:

            async def get(path: str) -> None:
                answer = await http.get(path)
                answer.raise_for_status()

            for op, path in (
                ("GET /overview (14 days)", "/overview"),
                ("GET /overview?days=30", "/overview?days=30"),
                ("GET /api/overview?days=30", "/api/overview?days=30"),
                ("GET /runs (newest 50)", "/runs"),
                ("GET /runs?agent=… (one agent)", f"/runs?agent={agents[3].id}"),
                ("GET /runs?sort=cost (newest 2,000 ranked)", "/runs?sort=cost"),
            ):
                await timed(op, lambda path=path: get(path))  # type: ignore[misc]
            await _seed_messages(client[name], runs, rng, now, sessions)
            progress(f"dashboard: {runs:,} messages stored")
            messages = MessagesRepository()
            for op, phrase in (
                ("MessagesRepository.search (1 in 100 match)", "refund"),
                ("MessagesRepository.search (1 in 10,000 match)", "order 4242"),
                ("MessagesRepository.search (no match)", "no such phrase"),
            ):
                await timed(
                    f"{op}, {messages_label(runs)}",
                    lambda phrase=phrase: messages.search(phrase),  # type: ignore[misc]
                )
            await timed(
                f"GET /search?q=refund, {messages_label(runs)}", lambda: get("/search?q=refund")
            )
        return records
    finally:
        await close_db()
        await client.drop_database(name)


def _run(
    n: int, rng: random.Random, now: datetime, agents: list[Any], sessions: list[Any]
) -> FinishedRun:
    start = now - timedelta(seconds=rng.randrange(DAYS * 86_400))
    calls: list[ModelCall | FinishedToolCall] = []
    offset = 0.0
    for step in range(2):
        took = rng.lognormvariate(6.5, 0.6)
        model = _MODELS[rng.randrange(len(_MODELS))]
        calls.append(
            ModelCall(
                model=model,
                started_at=start + timedelta(milliseconds=offset),
                duration_ms=took,
                input_tokens=rng.randrange(200, 4_000),
                output_tokens=rng.randrange(20, 600),
                cost=rng.random() / 100,
            )
        )
        offset += took
        if step == 0:
            for _ in range(3):
                tool_took = rng.lognormvariate(4.0, 1.0)
                calls.append(
                    FinishedToolCall(
                        tool_name=_TOOLS[rng.randrange(len(_TOOLS))],
                        input='{"q": 1}',
                        output="ok",
                        started_at=start + timedelta(milliseconds=offset),
                        duration_ms=tool_took,
                        status="error" if rng.random() < 0.03 else "success",
                    )
                )
                offset += tool_took
    failed = rng.random() < 0.05
    return FinishedRun(
        source="bench",
        external_id=f"run-{n}",
        session_id=sessions[rng.randrange(len(sessions))].id,
        agent_id=agents[rng.randrange(len(agents))].id,
        status="failed" if failed else "completed",
        error="model refused" if failed else None,
        started_at=start,
        completed_at=start + timedelta(milliseconds=offset + 5),
        calls=calls,
    )


def messages_label(count: int) -> str:
    return f"{count:,} messages"


async def _seed_messages(
    db: Any, count: int, rng: random.Random, now: datetime, sessions: list[Any]
) -> None:
    """``count`` messages over the last 30 days in the sessions (raw inserts, as the scale
    benchmark seeds): one in 100 mentions a refund, one in 10,000 order 4242."""
    seqs = dict.fromkeys((session.id for session in sessions), 0)
    for first in range(0, count, 5_000):
        batch = []
        for n in range(first, min(first + 5_000, count)):
            session = sessions[rng.randrange(len(sessions))].id
            seqs[session] += 1
            text = f"message {n}: how do I reset my password?"
            if n % 100 == 7:
                text = f"message {n}: I want a refund for my last invoice"
            if n % 10_000 == 4_242:
                text = f"message {n}: where is order 4242?"
            batch.append(
                {
                    "session_id": session,
                    "seq": seqs[session],
                    "role": "user",
                    "content": text,
                    "created_at": now - timedelta(seconds=rng.randrange(DAYS * 86_400)),
                }
            )
        await db["messages"].insert_many(batch)
    for session, last in seqs.items():
        await db["sessions"].update_one({"_id": session}, {"$set": {"last_seq": last}})


def print_dashboard(console: Console, records: list[DashboardRecord]) -> None:
    table = Table(title="The trace view across sessions: wall time per request (ASGI, no network)")
    for column in ("op", "runs stored", "median ms", "p95 ms"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for record in records:
        table.add_row(
            record.op, f"{record.runs:,}", f"{record.median_ms:,.1f}", f"{record.p95_ms:,.1f}"
        )
    console.print(table)
