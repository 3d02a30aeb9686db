"""MessagesRepository contract, on both backends."""

from __future__ import annotations

import random

import pytest
from bson import ObjectId

from agents_core.db import (
    InvalidIdError,
    InvalidInputError,
    Message,
    MessageRole,
    MessagesRepository,
    NotFoundError,
    SessionsRepository,
    get_database,
)
from agents_core.db.documents import utcnow
from tests.helpers import Clock, make_session

pytestmark = pytest.mark.usefixtures("backend")


async def test_create_assigns_increasing_seq_and_bumps_session(clock: Clock) -> None:
    session = await make_session()
    clock.advance()
    repo = MessagesRepository()
    messages = [
        await repo.create(session.id, role, text)
        for role, text in [
            ("system", "s"),
            (MessageRole.user, "u"),
            ("assistant", "a"),
            ("tool", "t"),
        ]
    ]
    assert [m.seq for m in messages] == [1, 2, 3, 4]
    assert [m.role for m in messages] == list(MessageRole)
    assert all(isinstance(m, Message) and m.session_id == session.id for m in messages)
    reloaded = await SessionsRepository().find_by_id(session.id, message_limit=0)
    assert reloaded.updated_at == messages[-1].created_at == clock.now > session.updated_at
    assert reloaded.last_seq == 4


async def test_find_by_session_returns_latest_in_conversation_order() -> None:
    session = await make_session()
    repo = MessagesRepository()
    for i in range(1, 8):
        await repo.create(session.id, "user", f"m{i}")
    latest = await repo.find_by_session(session.id, 3)
    assert [m.content for m in latest] == ["m5", "m6", "m7"]
    assert [m.content for m in await repo.find_by_session(str(session.id), 100)] == [
        f"m{i}" for i in range(1, 8)
    ]


async def test_find_by_session_sorts_whatever_order_the_server_holds() -> None:
    """Messages stored out of order (as concurrent writers may) still come back by seq."""
    session = await make_session()
    seqs = list(range(1, 21))
    random.Random(7).shuffle(seqs)
    documents = [
        {
            "_id": ObjectId(),
            "session_id": session.id,
            "seq": seq,
            "role": "user",
            "content": f"m{seq}",
            "created_at": utcnow(),
        }
        for seq in seqs
    ]
    database = get_database()
    await database["messages"].insert_many(documents)
    await database["sessions"].update_one({"_id": session.id}, {"$set": {"last_seq": 20}})
    latest = await MessagesRepository().find_by_session(session.id, 5)
    assert [m.seq for m in latest] == [16, 17, 18, 19, 20]
    last = await MessagesRepository().get_last_message(session.id)
    assert last is not None
    assert last.seq == 20


async def test_reads_fill_holes_left_by_failed_appends() -> None:
    session = await make_session()
    repo = MessagesRepository()
    for i in range(1, 6):
        await repo.create(session.id, "user", f"m{i}")
    # An append that reserved seq 6 and 7 but failed before its insert leaves a hole.
    await get_database()["sessions"].update_one({"_id": session.id}, {"$inc": {"last_seq": 2}})
    await repo.create(session.id, "user", "m8")
    assert [m.seq for m in await repo.find_by_session(session.id, 3)] == [4, 5, 8]
    last = await repo.get_last_message(session.id)
    assert last is not None
    assert last.content == "m8"


async def test_get_last_message() -> None:
    session = await make_session()
    repo = MessagesRepository()
    assert await repo.get_last_message(session.id) is None
    await repo.create(session.id, "user", "first")
    await repo.create(session.id, "assistant", "second")
    last = await repo.get_last_message(str(session.id))
    assert last is not None
    assert (last.content, last.role, last.seq) == ("second", MessageRole.assistant, 2)


async def test_messages_of_one_session_do_not_leak_into_another() -> None:
    one, two = await make_session("one"), await make_session("two")
    await MessagesRepository().create(one.id, "user", "for one")
    await MessagesRepository().create(two.id, "user", "for two")
    assert [m.content for m in await MessagesRepository().find_by_session(two.id, 10)] == [
        "for two"
    ]


async def test_unknown_session_raises_not_found_everywhere() -> None:
    repo = MessagesRepository()
    missing = ObjectId()
    with pytest.raises(NotFoundError):
        await repo.create(missing, "user", "hi")
    with pytest.raises(NotFoundError):
        await repo.find_by_session(missing, 10)
    with pytest.raises(NotFoundError):
        await repo.get_last_message(missing)
    assert await get_database()["messages"].count_documents({}) == 0


async def test_idempotency_key_returns_the_first_message() -> None:
    session = await make_session()
    repo = MessagesRepository()
    first = await repo.create(session.id, "user", "hello", idempotency_key="turn-1")
    again = await repo.create(session.id, "user", "hello", idempotency_key="turn-1")
    other = await repo.create(session.id, "user", "hello", idempotency_key="turn-2")
    assert again.id == first.id
    assert again.seq == 1
    assert other.seq == 2
    assert await get_database()["messages"].count_documents({"session_id": session.id}) == 2


async def test_a_repeat_takes_over_a_key_whose_first_writer_died(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agents_core.db.repositories import messages as messages_module

    monkeypatch.setattr(messages_module, "_KEYED_WAIT_S", 0.05)
    session = await make_session()
    # The first writer reserved seq 1 for "k" and died before inserting its message.
    await get_database()["sessions"].update_one(
        {"_id": session.id},
        {"$inc": {"last_seq": 1}, "$push": {"recent_idempotency_keys": "k"}},
    )
    message = await MessagesRepository().create(session.id, "user", "retry", idempotency_key="k")
    assert (message.seq, message.content) == (2, "retry")
    again = await MessagesRepository().create(session.id, "user", "retry", idempotency_key="k")
    assert again.id == message.id


async def test_repeats_of_old_keys_are_caught_by_the_unique_index() -> None:
    session = await make_session()
    repo = MessagesRepository()
    first = await repo.create(session.id, "user", "old", idempotency_key="k-0")
    for i in range(1, 70):  # pushes "k-0" out of the session's remembered keys
        await repo.create(session.id, "user", f"m{i}", idempotency_key=f"k-{i}")
    again = await repo.create(session.id, "user", "old", idempotency_key="k-0")
    assert again.id == first.id
    assert await get_database()["messages"].count_documents({"session_id": session.id}) == 70
    assert (await SessionsRepository().find_by_id(session.id)).last_seq == 70  # no seq used
    assert (await repo.create(session.id, "user", "next")).seq == 71


async def test_tool_messages_link_their_tool_call() -> None:
    session = await make_session()
    call_id = f"{ObjectId()}-{ObjectId()}"
    message = await MessagesRepository().create(session.id, "tool", "42", tool_call_id=call_id)
    assert message.tool_call_id == call_id
    (stored,) = await MessagesRepository().find_by_session(session.id, 1)
    assert stored.tool_call_id == call_id
    with pytest.raises(InvalidIdError):
        await MessagesRepository().create(session.id, "tool", "42", tool_call_id="nope")


async def test_content_over_the_limit_is_refused_and_empty_content_accepted() -> None:
    session = await make_session()
    with pytest.raises(InvalidInputError):
        await MessagesRepository().create(session.id, "user", "é" * (512 * 1024 + 1))
    assert (await MessagesRepository().create(session.id, "assistant", "")).content == ""
