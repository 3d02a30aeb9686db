"""Races that lose or invent history (issue 25), run concurrently on the wire server.

The mock's engine is synchronous, so these run on the wire backend only. Each round races real
writers against a deletion, a sweep or a clear; the checks hold whatever the interleaving (they
do not rest on timing to pass), and the rounds are enough for the interleavings that broke
before to come up. ``tests/test_history_races.py`` plays the same races in a fixed order on
both backends.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import (
    Agent,
    DatabaseUnavailableError,
    MessagesRepository,
    NotFoundError,
    Run,
    RunsRepository,
    Session,
    SessionsRepository,
    Settings,
    close_db,
    get_database,
)
from agents_core.db.repositories import lifecycle
from agents_core.db.retention import sweep
from tests.helpers import HANG_GUARD_S, make_agent, make_session

pytestmark = pytest.mark.wire_only
#: The races run on the wire server of the suite (a fresh database each).
on_the_wire_server = pytest.mark.usefixtures("wire_db")

sessions = SessionsRepository()
messages = MessagesRepository()
runs = RunsRepository()


async def keep_starting(
    start: Callable[[], Awaitable[Run]], stop: asyncio.Event, running: asyncio.Event
) -> int:
    """Start runs until one is refused, or until ``stop`` (then once more: a late writer);
    ``running`` is set once a run has started."""
    started = 0
    while True:
        late = stop.is_set()
        try:
            await start()
        except NotFoundError:
            return started
        started += 1
        running.set()
        if late:
            return started
        await asyncio.sleep(0)


async def race_runs_against(
    removal: Callable[[Session], Awaitable[object]], rounds: int
) -> tuple[int, int]:
    """Writers start runs (the runner's path and ``create``) while ``removal`` removes the
    session; afterwards no run of it may exist. Returns runs started and writers refused."""
    agent: Agent = await make_agent()
    started = refused = 0
    for _ in range(rounds):
        session = await make_session()
        await runs.start(session, agent)
        stop, running = asyncio.Event(), asyncio.Event()

        async def by_record(session: Session = session) -> Run:  # the runner's path
            return await runs.start(session, agent)

        async def by_ids(session: Session = session) -> Run:
            return await runs.create(session.id, agent.id)

        writers = [
            asyncio.create_task(keep_starting(by_record if i % 2 == 0 else by_ids, stop, running))
            for i in range(6)
        ]
        # The writers are at it (one run started, the others in flight), however fast: remove.
        await asyncio.wait_for(running.wait(), HANG_GUARD_S)
        await removal(session)
        stop.set()
        counts = await asyncio.gather(*writers)
        started += sum(counts)
        refused += len(writers)  # every writer ends refused, or after one start past the end
        left = await get_database()["runs"].find({"session_id": session.id}).to_list()
        assert left == [], f"{len(left)} runs outlived their session"
        with pytest.raises(NotFoundError):
            await runs.start(session, agent)
    return started, refused


@pytest.mark.slow
@on_the_wire_server
async def test_runs_started_racing_a_deletion_never_outlive_it() -> None:
    started, _ = await race_runs_against(lambda s: sessions.delete(s.id), rounds=8)
    assert started > 0


@pytest.mark.slow
@on_the_wire_server
async def test_runs_started_racing_retention_never_outlive_their_session() -> None:
    later = datetime.now(UTC) + timedelta(days=2)

    async def swept(session: Session) -> None:
        await sweep(timedelta(days=1), now=later)
        assert await get_database()["sessions"].count_documents({"_id": session.id}) == 0

    started, _ = await race_runs_against(swept, rounds=6)
    assert started > 0


@pytest.mark.slow
@pytest.mark.bulk  # 6,000 messages written: left out of the mongoeco run (docs/wire-servers.md)
@on_the_wire_server
async def test_a_fork_racing_a_clear_is_whole_or_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lifecycle, "FORK_WINDOW", 20)  # many windows: the clear lands between
    outcomes: list[str] = []
    for delay in (0.0, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2, 0.3):
        source = await make_session()
        # Single messages, as a runner appends them (a batch would hide a torn copy of itself).
        await get_database()["messages"].insert_many(
            [
                {"session_id": source.id, "seq": seq, "role": "user", "content": f"m{seq}"}
                for seq in range(1, 301)
            ]
        )
        await get_database()["sessions"].update_one({"_id": source.id}, {"$set": {"last_seq": 300}})

        async def clear_later(session_id: ObjectId = source.id, delay: float = delay) -> int:
            await asyncio.sleep(delay)
            return await messages.clear(session_id)

        fork, _ = await asyncio.gather(sessions.fork(source.id), clear_later())
        shown = await messages.find_items(fork.id)
        page = await messages.find_page(fork.id, limit=1000)
        assert [{"role": m.role.value, "content": m.content} for m in page] == shown
        assert len(shown) in (0, 300), f"a torn fork: {len(shown)} of 300 messages"
        outcomes.append("whole" if shown else "empty")
        # Its own appends show after whatever it holds, never anything older.
        await messages.append_items(fork.id, [{"role": "user", "content": "mine"}])
        assert (await messages.find_items(fork.id))[-1] == {"role": "user", "content": "mine"}
        assert len(await messages.find_items(fork.id)) == len(shown) + 1
    print(f"[races] fork vs clear: {outcomes}")


# ---------------------------------------------------------------------------------------------
# F1 on a server that freezes during an append: the retry with its key stores nothing more


@pytest.mark.slow
async def test_a_batch_that_a_frozen_server_wrote_late_is_not_duplicated_by_its_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents_core.db.repositories import messages as messages_module
    from tests.test_faults import kill, start

    settings = Settings(server_selection_timeout_ms=1000, socket_timeout_ms=1000)
    server = await start(tmp_path / "db", settings=settings)
    assert server._process is not None
    pid = server._process.pid
    real_insert = messages_module._insert_batch

    async def freeze_then_insert(*args: Any, **kwargs: Any) -> None:
        os.kill(pid, signal.SIGSTOP)  # the seq range is reserved; the insert meets a frozen server
        await real_insert(*args, **kwargs)

    try:
        session = await SessionsRepository().create("frozen")
        items = [{"role": "user", "content": f"item {i}"} for i in range(3_000)]
        monkeypatch.setattr(messages_module, "_insert_batch", freeze_then_insert)
        try:
            with pytest.raises(DatabaseUnavailableError):
                await asyncio.wait_for(
                    MessagesRepository().append_items(session.id, items, idempotency_key="t-1"),
                    HANG_GUARD_S,
                )
        finally:
            monkeypatch.undo()
            os.kill(pid, signal.SIGCONT)
        # The caller saw a failure, yet the server writes the batch it had received (wait for
        # it, bounded; if it never came, the retry below writes it).
        collection = get_database()["messages"]
        deadline = asyncio.get_running_loop().time() + HANG_GUARD_S
        while asyncio.get_running_loop().time() < deadline:
            if await collection.count_documents({"session_id": session.id}) == len(items):
                break
            await asyncio.sleep(0.1)
        again = await asyncio.wait_for(
            MessagesRepository().append_items(session.id, items, idempotency_key="t-1"),
            HANG_GUARD_S,
        )
        assert [m.item for m in again] == items
        assert await collection.count_documents({"session_id": session.id}) == len(items)
        assert await MessagesRepository().find_items(session.id) == items
    finally:
        await close_db()
        await asyncio.to_thread(kill, server)
