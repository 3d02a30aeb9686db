"""Races that lose or invent history, and bad input (issue 25, the data layer), on both backends.

Each test is one finding, played in a fixed order: the racing writer or reader is injected at
the step where the race hurt (a collection method patched to run it there), so the mock, whose
engine is synchronous, sees it as surely as the wire server. ``tests/test_history_races_wire.py``
runs the same races for real, concurrently, on the wire server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import bson
import pytest
from bson import ObjectId
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, OperationFailure

from agents_core.db import (
    DatabaseError,
    DatabaseUnavailableError,
    InvalidInputError,
    MessagesRepository,
    NotFoundError,
    RunsRepository,
    SessionsRepository,
    get_database,
    validation,
)
from agents_core.db.errors import translate, translate_errors
from agents_core.db.limits import MAX_ITEM_BYTES
from agents_core.db.repositories import _lifecycle
from agents_core.db.repositories import messages as messages_module
from agents_core.db.retention import SweepResult, sweep
from agents_core.integrations.openai_agents import AgentsCoreSession
from tests.helpers import make_agent, make_session

pytestmark = pytest.mark.usefixtures("backend")

sessions = SessionsRepository()
messages = MessagesRepository()
runs = RunsRepository()


def said(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


async def count(collection: str, query: dict[str, Any]) -> int:
    found: int = await get_database()[collection].count_documents(query)
    return found


async def last_seq(session_id: ObjectId) -> int:
    return (await sessions.find_by_id(session_id, message_limit=0)).last_seq


@pytest.fixture
def patched() -> Iterator[list[tuple[Any, str, Any]]]:
    """Collection methods patched for one test (``(class, name, original)``), restored after."""
    undo: list[tuple[Any, str, Any]] = []
    yield undo
    for owner, name, original in reversed(undo):
        setattr(owner, name, original)


def patch_collection(undo: list[tuple[Any, str, Any]], name: str, replacement: Any) -> Any:
    """Replace ``name`` on the collection class of the backend; returns the original."""
    owner = type(get_database()["messages"])
    original = getattr(owner, name)
    undo.append((owner, name, original))
    setattr(owner, name, replacement)
    return original


# ---------------------------------------------------------------------------------------------
# D1: runs outlive their session's deletion


async def test_a_run_started_after_the_deletion_swept_the_runs_is_refused_and_removed(
    patched: list[tuple[Any, str, Any]],
) -> None:
    session = await make_session()
    agent = await make_agent()
    await runs.start(session, agent)
    late: list[object] = []

    async def delete_many(collection: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        if collection.name == "messages" and not late:
            # The deletion has swept the runs; a runner that read the session before it starts
            # a run now (the runner's path takes the records it read).
            try:
                late.append(await runs.start(session, agent))
            except NotFoundError as exc:
                late.append(exc)
        return await original(collection, query, *args, **kwargs)

    original = patch_collection(patched, "delete_many", delete_many)
    assert await sessions.delete(session.id) is True
    assert len(late) == 1
    assert isinstance(late[0], NotFoundError), late
    assert late[0].entity == "session"
    # Nothing the session owned is left, and nothing is readable by its own id.
    assert await count("runs", {"session_id": session.id}) == 0


async def test_runs_for_a_deleted_or_missing_session_raise_and_leave_nothing() -> None:
    session = await make_session()
    agent = await make_agent()
    assert await sessions.delete(session.id) is True
    with pytest.raises(NotFoundError) as started:
        await runs.start(session, agent)  # a late writer with the record it read before
    assert started.value.entity == "session"
    with pytest.raises(NotFoundError):
        await runs.create(session.id, agent.id)
    with pytest.raises(NotFoundError):
        await runs.create(ObjectId(), agent.id)
    assert await count("runs", {}) == 0


async def test_a_run_started_while_its_session_is_being_deleted_is_refused() -> None:
    session = await make_session()
    agent = await make_agent()

    def crash(step: str) -> None:  # a deletion that stopped right after sweeping the runs
        if step == "chunks-deleted":
            raise RuntimeError(f"crash after {step}")

    await runs.start(session, agent)
    _lifecycle.after_step = crash
    try:
        with pytest.raises(RuntimeError):
            await sessions.delete(session.id)
    finally:
        _lifecycle.after_step = None
    with pytest.raises(NotFoundError):
        await runs.start(session, agent)
    with pytest.raises(NotFoundError):
        await runs.create(session.id, agent.id)
    assert await count("runs", {"session_id": session.id}) == 0
    assert await sessions.delete(session.id) is True
    assert await count("runs", {"session_id": session.id}) == 0


async def test_a_run_whose_writer_died_before_its_check_is_removed_by_retention(
    patched: list[tuple[Any, str, Any]],
) -> None:
    agent = await make_agent()
    live = await make_session()
    kept = await runs.start(live, agent)
    session = await make_session()
    assert await sessions.delete(session.id) is True
    died: list[str] = []

    async def find_one(collection: Any, *args: Any, **kwargs: Any) -> Any:
        if collection.name == "sessions" and not died:  # the writer dies before its check
            died.append("check")
            raise RuntimeError("killed")
        return await original(collection, *args, **kwargs)

    original = patch_collection(patched, "find_one", find_one)
    with pytest.raises(RuntimeError):
        await runs.start(session, agent)  # a late writer, with the record it read before
    [orphan] = await get_database()["runs"].find({"session_id": session.id}).to_list()
    await get_database()["payload_chunks"].insert_one(
        {"payload_id": ObjectId(), "run_id": orphan["_id"], "n": 0, "data": b"x"}
    )
    result = await sweep(timedelta(days=1))
    assert result == SweepResult(removed=0, resumed=0, kept=0)
    assert await count("runs", {"session_id": session.id}) == 0
    assert await count("payload_chunks", {"run_id": orphan["_id"]}) == 0
    assert (await runs.find_by_id(kept.id)).id == kept.id  # a running run of a live session


# ---------------------------------------------------------------------------------------------
# D2: a fork cut inside a batch hides messages, which then reappear


async def test_a_fork_inside_a_batch_is_refused_and_leaves_no_fork() -> None:
    source = await make_session(user_id="forks")
    await messages.append_items(source.id, [said("q1")])
    await messages.append_items(source.id, [said("a0"), said("a1"), said("a2")])  # seq 2-4
    for inside in (2, 3):
        with pytest.raises(InvalidInputError) as refused:
            await sessions.fork(source.id, at_seq=inside)
        assert refused.value.field == "at_seq"
    assert await count("sessions", {"forked_from": source.id}) == 0
    assert await count("messages", {"session_id": {"$ne": source.id}}) == 0
    # At either edge of the batch the fork is what the source showed there.
    before = await sessions.fork(source.id, at_seq=1)
    assert await messages.find_items(before.id) == [said("q1")]
    whole = await sessions.fork(source.id, at_seq=4)
    assert await messages.find_items(whole.id) == [said(t) for t in ("q1", "a0", "a1", "a2")]
    await messages.append_items(before.id, [said("new")])
    assert await messages.find_items(before.id) == [said("q1"), said("new")]


def _stored(session_id: ObjectId, seq: int, end: int, text: str) -> dict[str, Any]:
    """A batch message as ``append_items`` stores it (the seq of the batch's last message)."""
    return {
        "_id": ObjectId(),
        "session_id": session_id,
        "seq": seq,
        "role": "user",
        "content": text,
        "item": said(text),
        "batch_end_seq": end,
    }


async def test_a_later_append_never_shows_older_messages_of_a_batch_that_never_completed() -> None:
    source = await make_session()
    await messages.append_items(source.id, [said("q1")])
    # A batch of seq 2-4 whose writer stopped after two messages: the source never shows it.
    await get_database()["sessions"].update_one({"_id": source.id}, {"$inc": {"last_seq": 3}})
    await get_database()["messages"].insert_many(
        [_stored(source.id, 2, 4, "a0"), _stored(source.id, 3, 4, "a1")]
    )
    for at_seq in (2, 3, 4):
        fork = await sessions.fork(source.id, at_seq=at_seq)
        assert await messages.find_items(fork.id) == [said("q1")]
        appended = await messages.append_items(fork.id, [said("new")])
        assert appended[0].seq == at_seq + 1
        assert await messages.find_items(fork.id) == [said("q1"), said("new")]


# ---------------------------------------------------------------------------------------------
# D3: a fork below the cleared point loses its own messages


async def test_a_fork_below_the_cleared_point_shows_its_own_messages() -> None:
    source = await make_session()
    await messages.append_items(source.id, [said(f"m{i}") for i in range(1, 6)])
    assert await messages.clear(source.id) == 5
    for at_seq in (0, 3, 5):
        fork = await sessions.fork(source.id, at_seq=at_seq)
        assert fork.cleared_through_seq == at_seq
        assert await messages.find_items(fork.id) == []
        await messages.append_items(fork.id, [said("mine")])
        assert await messages.find_items(fork.id) == [said("mine")]
        stored = await sessions.find_by_id(fork.id)
        assert [m.content for m in stored.messages] == ["mine"]
    # Above the cleared point the floor is the source's.
    await messages.append_items(source.id, [said("m6"), said("m7")])
    above = await sessions.fork(source.id)
    assert above.cleared_through_seq == 5
    assert await messages.find_items(above.id) == [said("m6"), said("m7")]
    assert await count("messages", {"session_id": above.id}) == 2  # nothing cleared is copied


# ---------------------------------------------------------------------------------------------
# D4: a fork racing a clear is torn


async def test_a_fork_that_a_clear_overtakes_is_empty_never_torn(
    patched: list[tuple[Any, str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_lifecycle, "FORK_WINDOW", 7)
    source = await make_session()
    for i in range(1, 31):  # one batch each (one batch of 30 would hide a torn copy of itself)
        await messages.append_items(source.id, [said(f"m{i}")])
    cleared: list[int] = []

    async def insert_many(collection: Any, documents: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(collection, documents, *args, **kwargs)
        if not cleared:  # the first window is copied: the clear comes now
            cleared.append(await messages.clear(source.id))
        return result

    original = patch_collection(patched, "insert_many", insert_many)
    fork = await sessions.fork(source.id)
    assert cleared == [30]
    assert (fork.last_seq, fork.cleared_through_seq) == (30, 30)
    assert await messages.find_items(fork.id) == []
    assert (await sessions.find_by_id(fork.id)).messages == []
    appended = await messages.append_items(fork.id, [said("after")])
    assert appended[0].seq == 31
    assert await messages.find_items(fork.id) == [said("after")]


# ---------------------------------------------------------------------------------------------
# F1: a retried append must not duplicate; idempotency keys on batches


async def test_a_batch_retried_with_its_key_returns_the_first_and_stores_nothing_more() -> None:
    session = await make_session()
    turn = [said("q"), {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}]
    first = await messages.append_items(session.id, turn, idempotency_key="turn-1")
    assert [m.seq for m in first] == [1, 2]
    again = await messages.append_items(str(session.id), turn, idempotency_key="turn-1")
    assert again == first
    assert await last_seq(session.id) == 2
    assert await messages.find_items(session.id) == turn
    # Another key is another batch; a plain create with the key of a batch is that batch's.
    other = await messages.append_items(session.id, [said("next")], idempotency_key="turn-2")
    assert [m.seq for m in other] == [3]
    assert await messages.find_items(session.id) == [*turn, said("next")]
    assert (await messages.create(session.id, "user", "x", idempotency_key="turn-2")) == other[0]
    # The same key with a batch of another length is refused, never half returned.
    with pytest.raises(InvalidInputError) as refused:
        await messages.append_items(session.id, [said("q")], idempotency_key="turn-1")
    assert refused.value.field == "idempotency_key"
    with pytest.raises(InvalidInputError):
        await messages.append_items(session.id, [*turn, said("more")], idempotency_key="turn-1")
    assert await last_seq(session.id) == 3
    with pytest.raises(InvalidInputError):
        await messages.append_items(session.id, turn, idempotency_key={"$ne": None})  # type: ignore[arg-type]


async def test_an_append_that_looked_failed_is_not_duplicated_by_its_retry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    session = await make_session()
    turn = [said(f"i{i}") for i in range(5)]
    real_insert = messages_module._insert_batch

    async def frozen(*args: Any, **kwargs: Any) -> None:
        await real_insert(*args, **kwargs)  # the server wrote the batch...
        raise AutoReconnect("timed out")  # ...but its answer never came back

    monkeypatch.setattr(messages_module, "_insert_batch", frozen)
    with pytest.raises(DatabaseUnavailableError):
        await messages.append_items(session.id, turn, idempotency_key="turn-1")
    monkeypatch.undo()
    again = await messages.append_items(session.id, turn, idempotency_key="turn-1")
    assert [m.seq for m in again] == [1, 2, 3, 4, 5]
    assert [m.item for m in again] == turn
    assert await messages.find_items(session.id) == turn
    assert await last_seq(session.id) == 5
    assert await count("messages", {"session_id": session.id}) == 5


async def test_the_sdk_session_retries_a_batch_with_its_key() -> None:
    sdk = AgentsCoreSession("retried")
    turn: list[Any] = [said("a"), said("b")]
    await sdk.add_items(turn, idempotency_key="turn-1")
    await sdk.add_items(turn, idempotency_key="turn-1")
    assert await sdk.get_items() == turn
    core = await sdk.core_session()
    assert core is not None
    assert core.last_seq == 2


# ---------------------------------------------------------------------------------------------
# B1, B2: bad items are refused before anything is written

LONE = "cut emoji \ud83d"


@pytest.mark.parametrize(
    "item",
    [
        {"role": "assistant", "content": LONE},
        {"type": "message", "content": [{"type": "output_text", "text": LONE}]},
        {LONE: "in a key"},
        {"a.b": {"$ref": {"\udc00": 1}}},  # an escaped name around it
        {"role": "user", "content": "fine", "nested": [[["\ud800"]]]},
    ],
)
async def test_an_item_with_a_lone_surrogate_is_refused_before_anything_is_written(
    item: dict[str, Any],
) -> None:
    session = await make_session()
    with pytest.raises(InvalidInputError) as refused:
        await messages.append_items(session.id, [said("fine"), item])
    assert refused.value.field == "item"
    assert "surrogate" in str(refused.value)
    assert await last_seq(session.id) == 0
    assert await count("messages", {}) == 0


async def test_an_item_too_large_for_a_document_is_refused_before_anything_is_written() -> None:
    session = await make_session()
    with pytest.raises(InvalidInputError) as refused:
        await messages.append_items(session.id, [said("x" * (17 * 1024 * 1024))])
    assert refused.value.field == "item"
    # The readable text beside the item counts too, and so do a call id and a type.
    with pytest.raises(InvalidInputError):
        await messages.append_items(
            session.id, [{"type": "t", "call_id": "c" * (MAX_ITEM_BYTES // 2 + 1)}]
        )
    assert await last_seq(session.id) == 0
    assert await count("messages", {}) == 0


def stored_size(item: dict[str, Any]) -> int:
    """Bytes of BSON the fields that store ``item`` take (what the limit bounds)."""
    return len(bson.encode(validation.items([item])[0]))


@pytest.mark.bulk
async def test_an_item_at_the_size_limit_is_stored_and_one_byte_more_is_refused() -> None:
    session = await make_session()
    # Beyond 4,096 characters the readable text stops growing: one byte per character then.
    base = stored_size(said("y" * 10_000)) - 10_000
    fits = said("y" * (MAX_ITEM_BYTES - base))
    assert stored_size(fits) == MAX_ITEM_BYTES
    stored = await messages.append_items(session.id, [fits])
    assert stored[0].item == fits
    assert await messages.find_items(session.id) == [fits]
    with pytest.raises(InvalidInputError):
        await messages.append_items(session.id, [said("y" * (MAX_ITEM_BYTES - base + 1))])
    assert await last_seq(session.id) == 1


async def test_the_sdk_session_refuses_bad_items_before_creating_its_session() -> None:
    sdk = AgentsCoreSession("bad-first")
    batches: list[list[Any]] = [[said(LONE)], [{"k\ud800": 1}], [said("z" * (17 * 1024 * 1024))]]
    for bad in batches:
        with pytest.raises(InvalidInputError):
            await sdk.add_items(bad)
    assert await sdk.core_session() is None
    assert await count("sessions", {}) == 0
    assert await count("messages", {}) == 0


# ---------------------------------------------------------------------------------------------
# I1: no raw driver dict reaches a user


CLUSTER_TIME = {
    "clusterTime": 7,
    "signature": {"hash": b"\x01" * 20, "keyId": 7_300_000_000_000_000_000},
}


@pytest.mark.parametrize(
    ("driver_error", "kept"),
    [
        (
            OperationFailure(
                "unknown operator: $foo",
                2,
                {
                    "ok": 0,
                    "errmsg": "unknown operator: $foo",
                    "code": 2,
                    "$clusterTime": CLUSTER_TIME,
                },
            ),
            "unknown operator: $foo (code 2)",
        ),
        (
            BulkWriteError(
                {
                    "writeErrors": [
                        {"index": 0, "code": 10334, "errmsg": "object to insert too large"}
                    ],
                    "nInserted": 0,
                    "$clusterTime": CLUSTER_TIME,
                }
            ),
            "object to insert too large (code 10334)",
        ),
        (
            DuplicateKeyError(
                "E11000 duplicate key error collection: t.agents index: name_unique",
                11000,
                {"errmsg": "E11000 duplicate key error", "$clusterTime": CLUSTER_TIME},
            ),
            "E11000 duplicate key error",
        ),
    ],
)
def test_driver_errors_keep_the_servers_message_and_code_and_drop_its_dict(
    driver_error: Exception, kept: str
) -> None:
    translated = translate(driver_error)
    assert isinstance(translated, DatabaseError)
    text = str(translated)
    assert kept in text
    for raw in ("full error", "$clusterTime", "signature", "keyId", "{"):
        assert raw not in text, text


async def test_a_server_error_reaches_the_caller_without_the_servers_reply() -> None:
    @translate_errors
    async def refused() -> None:
        await get_database()["messages"].find_one({"seq": {"$bogus": 1}})

    with pytest.raises(DatabaseError) as raised:
        await refused()
    text = str(raised.value)
    assert text.startswith("MongoDB error: ")
    assert "$bogus" in text  # the server's own words (each server words it its way)
    assert "full error" not in text
    assert "{" not in text
