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
from agents_core.embedded import database_target
from agents_core.testing.commands import CommandCounter
from benchmarks.raw import RawLayer

CONTENT = "x" * 250


@contextmanager
def _server() -> Iterator[str]:
    """``MONGODB_URI``, else a SecantusDB of our own, in memory (``retryWrites=false``)."""
    with database_target(in_memory=True) as target:
        yield target.uri


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


async def run(uri: str, quick: bool, only: str | None) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient[Any] = AsyncMongoClient(uri, tz_aware=True, event_listeners=[counter])
    phases = {"pages": _pages, "fork": _fork, "listings": _listings, "sweep": _sweep}
    print("| operation | commands | median wall | server examined / note |")
    print("| --- | --- | --- | --- |")
    try:
        for name, phase in phases.items():
            if only is not None and only != name:
                continue
            # Each phase in a fresh database: what one measures does not weigh on the next.
            database = f"bench_lifecycle_{uuid.uuid4().hex[:8]}"
            await init_db(client=client, database=database, replace=True)
            try:
                await phase(counter, RawLayer(client[database]), quick)
            finally:
                await close_db()
                await client.drop_database(database)
    finally:
        await client.close()


async def _pages(counter: CommandCounter, raw: RawLayer, quick: bool) -> None:
    messages = MessagesRepository()
    repeat = 3 if quick else 15
    for size in (100, 1_000) if quick else (1_000, 100_000):
        sid = await _seed_session(raw, size)
        mid = size // 2
        names, ms = await _measure(counter, partial(messages.find_page, sid, before=mid), repeat)
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


async def _fork(counter: CommandCounter, raw: RawLayer, quick: bool) -> None:
    sessions = SessionsRepository()
    size = 500 if quick else 10_000
    sid = await _seed_session(raw, size)
    forks = []
    for _ in range(3):
        with counter.recording() as names:
            started = time.perf_counter()
            forks.append(await sessions.fork(sid))
            ms = (time.perf_counter() - started) * 1000
        _row(f"fork, {size:,} messages", [f"{len(names)} commands"], ms)
    started = time.perf_counter()
    await raw.messages.insert_many(
        [
            raw.message_document(ObjectId(), seq, "user", CONTENT, datetime.now(UTC))
            for seq in range(1, 251)
        ]
    )
    ms = (time.perf_counter() - started) * 1000
    _row("for scale: one raw insert_many of 250 messages", ["insert"], ms)
    with counter.recording() as names:
        started = time.perf_counter()
        await sessions.delete(forks[0].id)
        ms = (time.perf_counter() - started) * 1000
    _row(f"delete, {size:,} messages, no runs", names, ms)


async def _listings(counter: CommandCounter, raw: RawLayer, quick: bool) -> None:
    sessions = SessionsRepository()
    repeat = 3 if quick else 15
    for count in (100, 300) if quick else (1_000, 10_000):
        user = f"user-{count}"
        for start in range(0, count, 500):
            await raw.sessions.insert_many(
                [raw.session_document(f"s{i}", user) for i in range(start, min(start + 500, count))]
            )
        names, ms = await _measure(counter, partial(sessions.list_by_user, user, limit=50), repeat)
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


async def _sweep(counter: CommandCounter, raw: RawLayer, quick: bool) -> None:
    count = 10 if quick else 100
    for _ in range(count):
        await _seed_session(raw, 10, "idle")
    with counter.recording() as names:
        started = time.perf_counter()
        result = await sweep(timedelta(days=1), now=datetime.now(UTC) + timedelta(days=2))
        ms = (time.perf_counter() - started) * 1000
    note = f"removed {result.removed}; {ms / max(result.removed, 1):,.1f} ms per session"
    _row(
        f"retention sweep, {count} idle sessions of 10 messages",
        [f"{len(names)} commands"],
        ms,
        note,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", choices=["pages", "fork", "listings", "sweep"])
    args = parser.parse_args()
    with _server() as uri:
        asyncio.run(run(uri, args.quick, args.only))


if __name__ == "__main__":
    main()
