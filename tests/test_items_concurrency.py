"""Batches, pops, clears and external ids under concurrency, on the wire server (the mock's
engine is synchronous, so racing there proves nothing)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from agents_core.db import MessagesRepository, SessionsRepository, get_database
from tests.helpers import make_session

pytestmark = [
    pytest.mark.usefixtures("profiled_backend"),
    pytest.mark.parametrize("profiled_backend", ["wire", "wire-mongodb"], indirect=True),
]

BATCHES = 20
BATCH = 5


def _batch(n: int) -> list[dict[str, Any]]:
    return [{"role": "user", "content": f"b{n}-{i}", "batch": n, "i": i} for i in range(BATCH)]


def _check_whole_batches(items: list[dict[str, Any]]) -> None:
    """Every batch shown is whole, in order and contiguous (never interleaved)."""
    position = 0
    while position < len(items):
        batch = items[position]["batch"]
        assert [item.get("batch") for item in items[position : position + BATCH]] == [batch] * BATCH
        assert [item["i"] for item in items[position : position + BATCH]] == list(range(BATCH))
        position += BATCH


async def test_concurrent_batches_never_interleave_and_readers_never_see_part_of_one() -> None:
    session = await make_session()
    repo = MessagesRepository()
    seen: list[list[dict[str, Any]]] = []
    done = asyncio.Event()
    reading = asyncio.Event()

    async def reader() -> None:
        while not done.is_set():
            seen.append(await repo.find_items(session.id))
            seen.append(await repo.find_items(session.id, limit=7))
            if len(seen) >= 4:  # both readers are at it: the writers may start
                reading.set()

    async def writers() -> None:
        # The readers are under way first: a server that appends fast (one $inc per batch)
        # could otherwise finish before they read twice.
        await reading.wait()
        try:
            await reading.wait()
            await asyncio.gather(
                *(repo.append_items(session.id, _batch(n)) for n in range(BATCHES))
            )
        finally:
            done.set()

    await asyncio.gather(reader(), reader(), writers())
    final = await repo.find_items(session.id)
    assert len(final) == BATCHES * BATCH
    _check_whole_batches(final)
    assert {item["batch"] for item in final} == set(range(BATCHES))
    # Reads were under way while the batches were written (the writers waited for the readers
    # to start), whatever the speeds of the two.
    assert len(seen) > 4
    for snapshot in seen:
        if len(snapshot) == 7:  # the latest 7 may begin inside a batch: its tail, then whole ones
            first = snapshot[0]["batch"]
            head = [item for item in snapshot if item["batch"] == first]
            assert [item["i"] for item in head] == list(range(BATCH - len(head), BATCH))
            assert snapshot[: len(head)] == head
            _check_whole_batches(snapshot[len(head) :])
        else:
            _check_whole_batches(snapshot)


async def test_concurrent_pops_never_return_the_same_item() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, [{"n": n} for n in range(30)])
    popped = await asyncio.gather(*(repo.pop_last(session.id) for _ in range(40)))
    items = [message.item for message in popped if message is not None]
    assert sorted(item["n"] for item in items) == list(range(30))  # type: ignore[index]
    assert popped.count(None) == 10
    assert await repo.find_items(session.id) == []


async def test_pops_racing_appends_lose_no_append() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, [{"n": n} for n in range(20)])
    appended = [[{"n": 100 + 2 * k}, {"n": 101 + 2 * k}] for k in range(10)]
    results = await asyncio.gather(
        *(repo.pop_last(session.id) for _ in range(15)),
        *(repo.append_items(session.id, batch) for batch in appended),
    )
    popped = [r.item["n"] for r in results[:15] if r is not None]  # type: ignore[union-attr,index]
    assert len(popped) == len(set(popped)) == 15
    remaining = [item["n"] for item in await repo.find_items(session.id)]
    everything = list(range(20)) + [item["n"] for batch in appended for item in batch]
    assert sorted(remaining + popped) == sorted(everything)


async def test_racing_get_or_create_of_one_external_id_makes_one_session() -> None:
    repo = SessionsRepository()
    sessions = await asyncio.gather(
        *(repo.get_or_create_by_external_id("conv", namespace="race") for _ in range(20))
    )
    assert len({session.id for session in sessions}) == 1
    assert await get_database()["sessions"].count_documents({"external_id": "conv"}) == 1
    assert await get_database()["session_external_ids"].count_documents({}) == 1


async def test_racing_completions_of_a_mapping_left_halfway_make_one_session() -> None:
    # A creator died after inserting the mapping, before inserting the session it names.
    named = ObjectId()
    await get_database()["session_external_ids"].insert_one(
        {"external_namespace": "race", "user_id": None, "external_id": "c", "session_id": named}
    )
    repo = SessionsRepository()
    sessions = await asyncio.gather(
        *(repo.get_or_create_by_external_id("c", namespace="race") for _ in range(20))
    )
    assert {session.id for session in sessions} == {named}
    assert await get_database()["sessions"].count_documents({"external_id": "c"}) == 1


async def test_a_clear_racing_appends_leaves_only_whole_later_batches() -> None:
    session = await make_session()
    repo = MessagesRepository()
    await repo.append_items(session.id, _batch(0))
    results = await asyncio.gather(
        *(repo.append_items(session.id, _batch(n)) for n in range(1, 6)),
        repo.clear(session.id),
        *(repo.append_items(session.id, _batch(n)) for n in range(6, 11)),
    )
    floor = results[5]
    assert isinstance(floor, int)
    remaining = await repo.find_items(session.id)
    _check_whole_batches(remaining)
    assert 0 not in {item["batch"] for item in remaining}
    stored = await repo.find_by_session(session.id, 100)
    assert all(message.seq > floor for message in stored)
