"""Costs of the conversation lifecycle operations on a wire server (``docs/lifecycle.md``).

    .venv/bin/python -m benchmarks.lifecycle            # SecantusDB of its own, in memory (~3 min)
    .venv/bin/python -m benchmarks.lifecycle --quick    # small sizes: checks that it runs
    MONGODB_URI=... .venv/bin/python -m benchmarks.lifecycle

Measures, per operation: commands per call (command monitoring), median wall time over a few
calls, and for message pages the server's ``totalDocsExamined`` (``explain``) of the messages
``find`` that the repository sends, next to the same page read as sort + limit (what a bounded
range avoids). Sizes: message pages at 1,000 and 100,000 messages; a fork of a 10,000-message
session; session listings of 1,000 and 10,000 sessions of one user; delete; a retention sweep.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

from agents_core.db import MessagesRepository, SessionsRepository, close_db, init_db
from agents_core.db.retention import sweep
from agents_core.embedded import EmbeddedServer
from agents_core.testing.commands import CommandCounter
from benchmarks.raw import RawLayer

CONTENT = "x" * 250


@contextmanager
def _server() -> Iterator[str]:
    if uri := os.environ.get("MONGODB_URI"):
        yield uri
        return
    with EmbeddedServer(data_dir=None) as server:
        yield server.uri + "?retryWrites=false"


async def _seed_session(raw: RawLayer, messages: int, user_id: str | None = None) -> ObjectId:
    session = raw.session_document("bench", user_id, last_seq=messages)
    await raw.sessions.insert_one(session)
    now = datetime.now(UTC)
    for start in range(1, messages + 1, 500):  # SecantusDB inserts small batches faster
        batch = [
            raw.message_document(session["_id"], seq, "user", CONTENT, now)
            for seq in range(start, min(start + 500, messages + 1))
        ]
        await raw.messages.insert_many(batch, ordered=False)
    return ObjectId(session["_id"])


async def _measure(
    counter: CommandCounter, call: Callable[[], Awaitable[object]], repeat: int
) -> tuple[list[str], float]:
    """The commands of one call, and the median wall time (ms) of ``repeat`` calls."""
    with counter.recording() as names:
        await call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await call()
        times.append((time.perf_counter() - started) * 1000)
    return list(names), statistics.median(times)


async def _examined(raw: RawLayer, query: dict[str, Any], sort: int, limit: int) -> int:
    explained = await raw.db.command(
        "explain",
        {"find": "messages", "filter": query, "sort": {"seq": sort}, "limit": limit},
        verbosity="executionStats",
    )
    return int(explained.get("executionStats", {}).get("totalDocsExamined", -1))


def _row(name: str, names: list[str], ms: float, extra: str = "") -> None:
    print(f"| {name} | {len(names)} ({', '.join(names)}) | {ms:,.1f} ms | {extra} |", flush=True)


async def run(uri: str, quick: bool) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, tz_aware=True, event_listeners=[counter])
    database = f"bench_lifecycle_{uuid.uuid4().hex[:8]}"
    await init_db(client=client, database=database)
    raw = RawLayer(client[database])
    messages, sessions = MessagesRepository(), SessionsRepository()
    repeat = 3 if quick else 15
    sizes = (100, 1_000) if quick else (1_000, 100_000)
    fork_size = 500 if quick else 10_000
    listing_sizes = (100, 300) if quick else (1_000, 10_000)
    print("| operation | commands | median wall | server examined / note |")
    print("| --- | --- | --- | --- |")
    try:
        for size in sizes:
            sid = await _seed_session(raw, size)
            mid = size // 2
            names, ms = await _measure(
                counter, partial(messages.find_page, sid, before=mid), repeat
            )
            bounded = {"session_id": sid, "seq": {"$gt": mid - 51, "$lte": mid - 1}}
            examined = await _examined(raw, bounded, -1, 50)
            _row(f"find_page(before=mid, limit=50), {size:,} messages", names, ms, f"{examined}")
            names, ms = await _measure(counter, partial(messages.find_page, sid, after=mid), repeat)
            _row(f"find_page(after=mid, limit=50), {size:,} messages", names, ms)
            names, ms = await _measure(counter, partial(messages.find_page, sid), repeat)
            _row(f"find_page(limit=50) (latest), {size:,} messages", names, ms)
            unbounded = {"session_id": sid, "seq": {"$lt": mid}}
            started = time.perf_counter()
            await raw.messages.find(unbounded).sort("seq", -1).limit(50).to_list()
            naive_ms = (time.perf_counter() - started) * 1000
            examined = await _examined(raw, unbounded, -1, 50)
            print(
                f"| the same page as sort+limit (raw), {size:,} messages | 1 | "
                f"{naive_ms:,.1f} ms | {examined} |",
                flush=True,
            )

        sid = await _seed_session(raw, fork_size)
        forks = []
        for _ in range(3):
            with counter.recording() as names:
                started = time.perf_counter()
                forks.append(await sessions.fork(sid))
                ms = (time.perf_counter() - started) * 1000
            _row(f"fork, {fork_size:,} messages", [f"{len(names)} commands"], ms)
        with counter.recording() as names:
            started = time.perf_counter()
            await sessions.delete(forks[0].id)
            ms = (time.perf_counter() - started) * 1000
        _row(f"delete, {fork_size:,} messages, no runs", names, ms)

        for count in listing_sizes:
            user = f"user-{count}"
            for start in range(0, count, 500):
                await raw.sessions.insert_many(
                    [
                        raw.session_document(f"s{i}", user)
                        for i in range(start, min(start + 500, count))
                    ]
                )
            names, ms = await _measure(
                counter, partial(sessions.list_by_user, user, limit=50), repeat
            )
            _row(f"list_by_user first page (limit=50), {count:,} sessions", names, ms)
            first = await sessions.list_by_user(user, limit=50)
            names, ms = await _measure(
                counter,
                partial(sessions.list_by_user, user, limit=50, cursor=first.next_cursor),
                repeat,
            )
            _row(f"list_by_user next page (limit=50), {count:,} sessions", names, ms)
            names, ms = await _measure(
                counter, partial(sessions.list_active, user_id=user, limit=50), repeat
            )
            _row(f"list_active (limit=50, unpaged), {count:,} sessions", names, ms)

        idle = [await _seed_session(raw, 10, "idle") for _ in range(100)]
        with counter.recording() as names:
            started = time.perf_counter()
            result = await sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2))
            ms = (time.perf_counter() - started) * 1000
        total = (
            await raw.sessions.count_documents({}),
            len(idle),
        )
        _row(
            "retention sweep, every session idle",
            [f"{len(names)} commands"],
            ms,
            f"removed {result.removed} (of {total[0] + result.removed} sessions)",
        )
    finally:
        await close_db()
        await client.drop_database(database)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    with _server() as uri:
        asyncio.run(run(uri, args.quick))


if __name__ == "__main__":
    main()
