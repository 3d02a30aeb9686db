"""Appends and tool-call completions as the database grows: 100, 10,000 and 100,000.

``python -m benchmarks --only scale`` (also part of the full run; ``--quick`` stops at 1,000).
Each size is seeded by raw ``insert_many`` on one database that grows between sizes; then the
repositories append a message to sessions picked at random among all of them (a connection
that has not seen them: read, compare-and-set, insert), and complete a pending tool call of
runs picked at random (runs of 10 calls: 100,000 calls are 10,000 runs). Beside each, the same
write as ``findAndModify`` (what the layer sent before), to show what it replaced. Wall time per
call, medians; the server is the embedded SecantusDB unless ``MONGODB_URI`` is set.
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient, ReturnDocument
from rich.console import Console
from rich.table import Table

from agents_core.db import MessagesRepository, ToolCallsRepository, close_db, init_db
from benchmarks.raw import RawLayer

__all__ = ["FULL_SIZES", "QUICK_SIZES", "ScaleRecord", "measure_scale", "print_scale"]

FULL_SIZES = (100, 10_000, 100_000)
QUICK_SIZES = (100, 1_000)
#: Tool calls per seeded run.
CALLS_PER_RUN = 10
#: Timed calls per op and size.
SAMPLES = 40
_BATCH = 5_000


@dataclass(frozen=True, slots=True)
class ScaleRecord:
    op: str
    size: int
    median_ms: float
    before_median_ms: float


async def measure_scale(
    client: AsyncMongoClient[Any], sizes: tuple[int, ...], progress: Callable[[str], None]
) -> list[ScaleRecord]:
    name = f"bench_scale_{uuid.uuid4().hex[:8]}"
    db = client[name]
    raw = RawLayer(db)
    await init_db(client=client, database=name, replace=True)
    records: list[ScaleRecord] = []
    sessions: list[ObjectId] = []
    runs: list[ObjectId] = []
    try:
        for size in sizes:
            progress(f"scale: seeding {size:,} sessions and {size:,} tool calls")
            sessions += await _seed_sessions(raw, size - len(sessions))
            runs += await _seed_runs(raw, size // CALLS_PER_RUN - len(runs))
            records += await _measure_size(raw, size, sessions, runs)
    finally:
        await close_db()
        await client.drop_database(name)
    return records


async def _measure_size(
    raw: RawLayer, size: int, sessions: list[ObjectId], runs: list[ObjectId]
) -> list[ScaleRecord]:
    messages, calls = MessagesRepository(), ToolCallsRepository()
    append = await _median(lambda: messages.create(random.choice(sessions), "user", "hello"))
    before_append = await _median(lambda: _append_before(raw, random.choice(sessions)))
    # Two timed series of SAMPLES calls (and a warm-up each) on pending calls of random runs.
    pending = await _pending_calls(raw, random.sample(runs, min(len(runs), SAMPLES * 3)))
    complete = await _median(lambda: calls.complete(pending.pop(), "ok", "success", 1.0))
    before_complete = await _median(lambda: _complete_before(raw, pending.pop()))
    return [
        ScaleRecord("messages.create", size, append, before_append),
        ScaleRecord("tool_calls.complete", size, complete, before_complete),
    ]


def print_scale(console: Console, records: list[ScaleRecord]) -> None:
    table = Table(title="Scale: one write as the database grows (wall ms per call, medians)")
    for column in ("op", "sessions / tool calls", "ms", "findAndModify ms (before)"):
        table.add_column(column, justify="left" if column == "op" else "right")
    for record in records:
        table.add_row(
            record.op,
            f"{record.size:,}",
            f"{record.median_ms:.2f}",
            f"{record.before_median_ms:.2f}",
        )
    console.print(table)
    for op in sorted({r.op for r in records}):
        mine = [r for r in records if r.op == op]
        growth = mine[-1].median_ms / mine[0].median_ms
        before = mine[-1].before_median_ms / mine[0].before_median_ms
        console.print(
            f"{op}: {mine[-1].size:,} / {mine[0].size:,} = {growth:.2f}x (findAndModify: "
            f"{before:.2f}x)"
        )


async def _median(call: Callable[[], Awaitable[object]]) -> float:
    await call()  # warm-up
    times = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


async def _seed_sessions(raw: RawLayer, count: int) -> list[ObjectId]:
    documents = [raw.session_document("scale", f"u{n % 97}") for n in range(count)]
    for start in range(0, len(documents), _BATCH):
        await raw.sessions.insert_many(documents[start : start + _BATCH])
    return [document["_id"] for document in documents]


async def _seed_runs(raw: RawLayer, count: int) -> list[ObjectId]:
    documents = []
    for _ in range(count):
        run = raw.run_document(ObjectId(), ObjectId())
        run["tool_calls"] = [
            raw.tool_call_document(run["_id"], "t", "{}") for _ in range(CALLS_PER_RUN)
        ]
        documents.append(run)
    for start in range(0, len(documents), _BATCH):
        await raw.runs.insert_many(documents[start : start + _BATCH])
    return [document["_id"] for document in documents]


async def _pending_calls(raw: RawLayer, runs: list[ObjectId]) -> list[str]:
    found = await raw.runs.find({"_id": {"$in": runs}}, {"tool_calls": 1}).to_list()
    pending = [
        call["id"] for run in found for call in run["tool_calls"] if call["status"] == "pending"
    ]
    random.shuffle(pending)
    return pending


async def _append_before(raw: RawLayer, session_id: ObjectId) -> None:
    now = datetime.now(UTC)
    reserved = await raw.sessions.find_one_and_update(
        {"_id": session_id},
        {"$inc": {"last_seq": 1}, "$set": {"updated_at": now}},
        projection={"last_seq": 1, "_id": 0},
        return_document=ReturnDocument.AFTER,
    )
    assert reserved is not None
    await raw.messages.insert_one(
        raw.message_document(session_id, reserved["last_seq"], "user", "hello", now)
    )


async def _complete_before(raw: RawLayer, call_id: str) -> None:
    run_id = ObjectId(call_id[:24])
    done = await raw.runs.find_one_and_update(
        {"_id": run_id, "tool_calls": {"$elemMatch": {"id": call_id, "status": "pending"}}},
        {"$set": {"tool_calls.$[call].status": "success", "tool_calls.$[call].output": "ok"}},
        array_filters=[{"call.id": call_id}],
        projection={"_id": 0, "tool_calls": {"$elemMatch": {"id": call_id}}},
        return_document=ReturnDocument.AFTER,
    )
    assert done is not None
